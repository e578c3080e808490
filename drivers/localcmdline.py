"""Run a local program per switch, without a shell.

``cmd_on``/``cmd_off``/``cmd_get`` are argument lists (a string is split like a shell
would, once, at start) in which ``{pdu}`` and ``{port}`` are replaced per argument.
The request never reaches a shell: the port is a number the runner resolved from the
config, and it is placed as one argument, whatever it holds.
"""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError


def _argv(value: Any) -> list[str]:
    if isinstance(value, str):
        value = shlex.split(value)
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        raise vol.Invalid("expected a command as a list of arguments (or one string)")
    return value


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
            done = subprocess.run(argv, capture_output=True, timeout=self.timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise DriverError(f"{key}: program not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise DriverError(f"{key}: {argv[0]} still running after {self.timeout:g} s") from None
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip()[-200:]
            raise DriverError(f"{key}: {argv[0]} exited with status {done.returncode}" + (f": {tail}" if tail else ""))
        return done.stdout.decode(errors="replace")

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
