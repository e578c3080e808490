"""Run a local program per switch, without a shell.

``cmd_on``/``cmd_off``/``cmd_get`` are argument lists (a string is split like a shell
would, once, at start) in which ``{pdu}`` and ``{port}`` are replaced per argument.
The request never reaches a shell: the port is a number the runner resolved from the
config, and it is placed as one argument, whatever it holds.

Each command runs in a process group of its own (a new session). When it outlives
``timeout`` the whole group is killed, so a shell's children go with it; what a command
leaves running in its group when it exits is killed too, and so are the groups still
running when the daemon exits.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import subprocess
import threading
from typing import Any

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError


def _argv(value: Any) -> list[str]:
    if isinstance(value, str):
        value = shlex.split(value)
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise vol.Invalid("expected a command as a list of arguments (or one string)")
    return value


# every process group a command started and that may still run: killed at exit
_groups: set[int] = set()
_groups_lock = threading.Lock()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # already gone
        pass


@atexit.register
def _kill_all_groups() -> None:
    with _groups_lock:
        groups = list(_groups)
        _groups.clear()
    for pgid in groups:
        _kill_group(pgid)


_ON_WORDS = {"on", "1", "true", "yes"}
_OFF_WORDS = {"off", "0", "false", "no"}


class LocalCommandLine(Driver):
    model = "local command"
    native_driver = "localcmdline"  # PDUDaemon's name too; pdumqtt migrate converts its command strings
    protocol = "local program (argv, no shell)"
    tested_against = "real child processes"
    options = {
        vol.Required("cmd_on"): _argv,
        vol.Required("cmd_off"): _argv,
        vol.Optional("cmd_get"): _argv,
    }

    @property
    def can_read(self) -> bool:  # type: ignore[override]
        return "cmd_get" in self.config

    def _run(self, key: str, port: int) -> str:
        argv = [a.replace("{pdu}", self.pdu).replace("{port}", str(port)) for a in self.config[key]]
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except FileNotFoundError:
            raise DriverError(f"{key}: program not found: {argv[0]}") from None
        with _groups_lock:  # its pid is its group's id (start_new_session)
            _groups.add(proc.pid)
        try:
            # until the program exits and its output closes: a child that keeps the output open counts
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.communicate()  # reap it; the group's pipes closed with it
            raise DriverError(f"{key}: {argv[0]} still running after {self.timeout:g} s: "
                              "killed it and its process group") from None
        finally:
            with _groups_lock:
                _groups.discard(proc.pid)
        _kill_group(proc.pid)  # what it left running in its group ends with it
        if proc.returncode != 0:
            tail = stderr.decode(errors="replace").strip()[-200:]
            raise DriverError(f"{key}: {argv[0]} exited with status {proc.returncode}" + (f": {tail}" if tail else ""))
        return stdout.decode(errors="replace")

    def set(self, port: int, on: bool) -> None:
        self._run("cmd_on" if on else "cmd_off", port)

    def get(self, port: int) -> bool:
        if "cmd_get" not in self.config:
            return super().get(port)
        words = self._run("cmd_get", port).split()
        word = words[0].lower() if words else ""
        if word in _ON_WORDS:
            return True
        if word in _OFF_WORDS:
            return False
        raise DriverError(f"cmd_get printed {word[:20]!r}, expected on or off")
