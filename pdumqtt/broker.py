"""The embedded broker: a mosquitto started from the shipped ``mosquitto.conf``.

Used when the config names no broker and ``--broker`` is not given, so that the demo
and a single-machine lab need nothing but pdumqtt and Debian's mosquitto package.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

INSTALL_HINT = ("install it with `sudo apt-get install mosquitto` (Debian/Ubuntu), "
                "or give a broker with --broker HOST:PORT or mqtt.host in the config")


class BrokerError(Exception):
    """The embedded broker could not be started; the message says what to do."""


def shipped_config() -> str:
    """The text of the ``mosquitto.conf`` that ships with pdumqtt."""
    return resources.files("pdumqtt").joinpath("mosquitto.conf").read_text()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class EmbeddedBroker:
    """A mosquitto child process on 127.0.0.1:``port``; ``stop()`` ends it."""

    def __init__(self, port: int = 1883) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def start(self, timeout: float = 10.0) -> None:
        if _listening(self.port):
            log.warning("something already listens on 127.0.0.1:%d; using it as the broker", self.port)
            return
        exe = os.environ.get("PDUMQTT_MOSQUITTO") or shutil.which(
            "mosquitto", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]))
        if exe is None or not os.access(exe, os.X_OK):
            raise BrokerError(f"no broker given and mosquitto is not installed: {INSTALL_HINT}")
        self._dir = tempfile.TemporaryDirectory(prefix="pdumqtt-broker-")
        conf = Path(self._dir.name) / "mosquitto.conf"
        conf.write_text(re.sub(r"(?m)^listener\s+\d+", f"listener {self.port}", shipped_config()))
        self.process = subprocess.Popen([exe, "-c", str(conf)], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace").strip() if self.process.stderr else ""
                raise BrokerError(f"mosquitto exited at start: {err[-500:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout:g} s")
            time.sleep(0.05)
        log.info("started mosquitto on 127.0.0.1:%d (pid %d)", self.port, self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
