"""A base for serial device simulators on a pseudo-terminal, with unplug and plug.

The device's side is the pty master, served by a thread; the driver opens the slave
through a symlink (``link``, by default in a private temporary folder), as it would
open ``/dev/serial/by-id/...``. ``unplug()`` closes the pty and removes the link, as
pulling the USB cable does: an open port then fails with EIO and opening it fails;
``plug()`` makes a new pty behind the same link. Subclasses implement ``receive``,
which takes the bytes the driver wrote and returns the device's answer.
``failure``: ``None``, ``"silent"`` (no answers), ``"garbage"`` (subclass's wrong
answer), ``"drop"`` (unplug on the next bytes received).
"""

from __future__ import annotations

import os
import select
import shutil
import tempfile
import threading
import tty
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.simulators import Simulator
from pdumqtt.simulators._aio import FAILURES


class PtySimulator(Simulator):
    common_options: ClassVar[dict[Any, Any]] = {
        vol.Optional("link"): vol.All(str, vol.Length(min=1)),
        vol.Optional("failure", default=None): vol.In(FAILURES),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # `pdumqtt sim` validates with `options` alone: it must hold the common keys too.
        super().__init_subclass__(**kwargs)
        cls.options = {**PtySimulator.common_options, **cls.options}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(vol.Schema(self.options)(options))
        self.failure: str | None = self.config["failure"]
        self._tmp: str | None = None
        self.link = self.config.get("link") or ""
        self._master = self._slave = -1
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self.received = bytearray()
        self.lock = threading.Lock()
        self._plug_lock = threading.Lock()

    @property
    def address(self) -> str:
        return self.link

    @property
    def plugged(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if not self.link:
            self._tmp = tempfile.mkdtemp(prefix="pdumqtt-pty-")
            self.link = os.path.join(self._tmp, "tty")
        self.plug()

    def plug(self) -> None:
        with self._plug_lock:
            self._plug()

    def _plug(self) -> None:
        if self.plugged:
            return
        self._master, self._slave = os.openpty()
        # Raw from the start: no echo or line editing before the driver sets its own modes.
        tty.setraw(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        tmp_link = f"{self.link}.new"
        os.symlink(os.ttyname(self._slave), tmp_link)
        os.replace(tmp_link, self.link)
        self._thread = threading.Thread(target=self._serve, name=f"pty-{type(self).__name__}", daemon=True)
        self._thread.start()

    def unplug(self) -> None:
        with self._plug_lock:
            self._unplug()

    def _unplug(self) -> None:
        thread = self._thread
        if thread is None:
            return
        os.write(self._wake_w, b"x")
        if thread is not threading.current_thread():
            thread.join(10)
        self._thread = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = self._wake_r = self._wake_w = -1
        try:
            os.unlink(self.link)
        except FileNotFoundError:
            pass

    def stop(self) -> None:
        self.unplug()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _serve(self) -> None:
        master, wake = self._master, self._wake_r
        while True:
            ready, _, _ = select.select([master, wake], [], [])
            if wake in ready:
                return
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            if self.failure == "drop":
                # The cable comes out mid-conversation, before the driver can see an answer.
                # If another thread holds the lock it is unplugging already (and joining us).
                if self._plug_lock.acquire(blocking=False):
                    try:
                        self._unplug()
                    finally:
                        self._plug_lock.release()
                return
            with self.lock:
                self.received += data
                answer = self.receive(data)
            if answer and self.failure != "silent":
                os.write(master, answer)

    def receive(self, data: bytes) -> bytes:
        """Take bytes from the driver; return the device's answer (may be empty)."""
        raise NotImplementedError
