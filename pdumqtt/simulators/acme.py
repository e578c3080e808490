"""A BayLibre ACME on ssh (asyncssh server on loopback) with the dut-switch commands.

:class:`SshDeviceSimulator` is the ssh server other ssh devices share; a device
subclass answers each command in ``command()``.
Serves exec requests and an interactive root shell (prompt ``# ``). The host key is
generated at start unless ``host_key`` names a private key file; ``known_hosts_line()``
gives the line a client's known_hosts needs. Logins: ``username`` with ``password``
and/or the public keys in ``authorized_keys`` (a file or the key text).
``probes[n]`` is the power of probe n+1; ``log`` records each command run.
Failures: ``silent`` hangs every command, ``garbage`` prints nonsense and exits 1,
``drop`` closes the connection when a command arrives.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncssh
import voluptuous as vol

from pdumqtt.simulators._aio import LoopSimulator


def ssh_server_options(username: str, password: str | None = None) -> dict[Any, Any]:
    """The login and host-key options of a simulated ssh device: its user, its password if it has one."""
    return {
        vol.Optional("username", default=username): str,
        (vol.Optional("password") if password is None else vol.Optional("password", default=password)): str,
        vol.Optional("authorized_keys"): str,
        vol.Optional("host_key"): str,
        # Written at start with the line a client's known_hosts needs (for `pdumqtt sim`).
        vol.Optional("known_hosts_file"): str,
    }


class SshDeviceSimulator(LoopSimulator):
    """An ssh server on loopback; ``command()`` answers each command, exec or typed at the prompt."""

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        path = self.config.get("host_key")
        self.host_key = asyncssh.read_private_key(path) if path else asyncssh.generate_private_key("ssh-ed25519")
        self.log: list[str] = []
        self.logins = 0

    def known_hosts_line(self) -> str:
        key = self.host_key.export_public_key("openssh").decode().split()
        return f"[{self.host}]:{self._bound} {key[0]} {key[1]}\n"

    async def serve(self) -> int:
        sim = self
        authorized = self.config.get("authorized_keys")
        if authorized and os.path.exists(authorized):
            with open(authorized) as f:
                authorized = f.read()

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return "password" in sim.config

            def validate_password(self, username: str, password: str) -> bool:
                ok = username == sim.config["username"] and password == sim.config["password"]
                sim.logins += ok
                return ok

            def public_key_auth_supported(self) -> bool:
                return bool(authorized)

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                if username != sim.config["username"] or not authorized:
                    return False
                keys = asyncssh.import_authorized_keys(authorized)
                ok = keys.validate(key, "127.0.0.1", "127.0.0.1") is not None  # {} means no options, still valid
                sim.logins += ok
                return ok

        self._acceptor = await asyncssh.create_server(
            Server, self.host, self.port, server_host_keys=[self.host_key], process_factory=self._process)
        port = self._acceptor.sockets[0].getsockname()[1]
        if "known_hosts_file" in self.config:
            self._bound = port
            with open(self.config["known_hosts_file"], "a") as f:
                f.write(self.known_hosts_line())
        return port

    async def shutdown(self) -> None:
        self._acceptor.close()
        await self._acceptor.wait_closed()

    async def _process(self, process: asyncssh.SSHServerProcess) -> None:
        try:
            if process.command is not None:
                status = await self._execute(process, process.command)
                process.exit(status)
                return
            while True:
                process.stdout.write("# ")
                line = await process.stdin.readline()
                if not line or line.strip() == "exit":
                    process.exit(0)
                    return
                if line.strip():
                    await self._execute(process, line.strip())
        except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged, ConnectionError):
            process.exit(1)

    async def _execute(self, process: asyncssh.SSHServerProcess, command: str) -> int:
        self.log.append(command)
        if self.failure == "silent":
            await asyncio.Event().wait()
        if self.failure == "drop":
            process.channel.get_connection().abort()
            return 255
        return await self.command(process, command)

    async def command(self, process: asyncssh.SSHServerProcess, command: str) -> int:
        """Answer one command on ``process``'s stdout/stderr; return its exit status."""
        raise NotImplementedError


class AcmeSimulator(SshDeviceSimulator):
    options = {
        **ssh_server_options("root"),
        vol.Optional("probes", default=8): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.probes = [False] * self.config["probes"]

    async def command(self, process: asyncssh.SSHServerProcess, command: str) -> int:
        if self.failure == "garbage":
            process.stderr.write("\x1b[31mSegmentation fault\n")
            return 1
        words = command.split()
        verbs = {"dut-switch-on", "dut-switch-off", "dut-hard-reset"}
        if not words or words[0] not in verbs:
            process.stderr.write(f"-sh: {words[0] if words else ''}: not found\n")
            return 127
        if len(words) != 2 or not words[1].isdigit() or not 1 <= int(words[1]) <= len(self.probes):
            process.stderr.write(f"usage: {words[0]} <probe 1..{len(self.probes)}>\n")
            return 1
        probe = int(words[1]) - 1
        if words[0] == "dut-hard-reset":
            self.probes[probe] = False
            await asyncio.sleep(0.05)
            self.probes[probe] = True
        else:
            self.probes[probe] = words[0] == "dut-switch-on"
        return 0
