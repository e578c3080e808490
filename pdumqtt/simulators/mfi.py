"""A Ubiquiti mFi mPower on ssh (asyncssh server on loopback) holding ``/proc/power/relayN``.

It runs the few shell commands the device's busybox is asked for: ``echo V > FILE``
(also inside ``sh -c '...'``) and ``cat FILE``; the relay files take ``0`` or ``1``.
``relays[n]`` is outlet n+1. Logins are ubnt/ubnt unless set. Failures: ``silent``
hangs every command, ``drop`` closes the connection, ``garbage`` answers ``cat`` with
text that is no relay state and ignores writes.
"""

from __future__ import annotations

import shlex
from typing import Any

import asyncssh
import voluptuous as vol

from pdumqtt.simulators.acme import SshDeviceSimulator, ssh_server_options


class MfiSimulator(SshDeviceSimulator):
    options = {
        **ssh_server_options("ubnt", "ubnt"),
        vol.Optional("outlets", default=3): vol.All(vol.Coerce(int), vol.Range(min=1, max=8)),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.relays = [False] * self.config["outlets"]

    def _relay(self, path: str) -> int | None:
        prefix = "/proc/power/relay"
        if path.startswith(prefix) and path[len(prefix):].isdigit():
            n = int(path[len(prefix):])
            if 1 <= n <= len(self.relays):
                return n - 1
        return None

    async def command(self, process: asyncssh.SSHServerProcess, command: str) -> int:
        try:
            words = shlex.split(command)
        except ValueError:
            process.stderr.write("sh: syntax error: unterminated quoted string\n")
            return 2
        if len(words) == 3 and words[:2] == ["sh", "-c"]:
            return await self.command(process, words[2])
        if words and words[0] == "echo" and ">" in words:
            at = words.index(">")
            if at + 2 != len(words):
                process.stderr.write("sh: syntax error: unexpected redirection\n")
                return 2
            value, path = " ".join(words[1:at]), words[at + 1]
            relay = self._relay(path)
            if relay is None:
                process.stderr.write(f"sh: can't create {path}: nonexistent directory\n")
                return 1
            if value not in ("0", "1"):
                process.stderr.write("sh: write error: Invalid argument\n")
                return 1
            if self.failure != "garbage":
                self.relays[relay] = value == "1"
            return 0
        if len(words) == 2 and words[0] == "cat":
            relay = self._relay(words[1])
            if relay is None:
                process.stderr.write(f"cat: can't open '{words[1]}': No such file or directory\n")
                return 1
            process.stdout.write("BusyBox v1.11.2\n" if self.failure == "garbage" else f"{int(self.relays[relay])}\n")
            return 0
        process.stderr.write(f"sh: {words[0] if words else ''}: not found\n")
        return 127
