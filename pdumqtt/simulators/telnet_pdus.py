"""Telnet PDUs on loopback: a Gude EPC console, a NETIO KSHELL server and a Synaccess netBooter.

This module owns three line-based telnet dialogues over real TCP sockets (one asyncio
loop each, see ``_aio``), written from the wire sequences PDUDaemon's ``gude1202``,
``netio4`` and ``synaccess`` drivers send and expect, with the outlets in memory
(``outlet(n)``). Shared failure modes (``failure``, settable while running): ``silent``
accepts and never answers, ``garbage`` greets and answers with some other box's shell
prompt (a wrong prompt), ``drop`` hangs up at the first line; a wrong login is refused
as each device does. A simulator restarted after ``stop()`` listens on the same port.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.simulators._aio import StreamSimulator

GARBAGE = b"\r\nBusyBox v1.36 built-in shell\r\n# "  # a wrong prompt: some other box's shell


class _Hangup(Exception):
    pass


class _TelnetPduSimulator(StreamSimulator):
    """Outlets plus a line reader; subclasses speak their dialogue in ``dialogue``."""

    default_outlets: ClassVar[int] = 8
    options: ClassVar[dict[Any, Any]] = {}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        on = self.config["initial"] == "on"
        self.outlets: dict[int, bool] = {n: on for n in range(1, self.config["outlets"] + 1)}
        self.lines: list[str] = []  # every line a client sent, passwords included (tests only)
        self.connections = 0
        self.logouts = 0

    def outlet(self, n: int) -> bool:
        return self.outlets[n]

    def start(self) -> None:
        super().start()
        self.port = self._bound  # back on the same port after a stop(), as a rebooted device is

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.failure == "silent":
            while await reader.read(100):
                pass
            return
        try:
            await self.dialogue(reader, writer)
        except _Hangup:
            pass

    async def say(self, writer: asyncio.StreamWriter, text: str) -> None:
        writer.write(text.encode())
        await writer.drain()

    async def line(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """The next line the client sent (CR, LF or CR LF ended), after the failure modes had their say."""
        raw = await reader.readline()
        if not raw:
            raise _Hangup
        text = raw.replace(b"\x00", b"").decode(errors="replace").strip()
        self.lines.append(text)
        if self.failure == "drop":
            writer.close()
            raise _Hangup
        if self.failure == "garbage":
            writer.write(GARBAGE)
            await writer.drain()
            return await self.line(reader, writer)
        return text

    async def dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def port_number(self, word: str) -> int | None:
        return int(word) if word.isdigit() and int(word) in self.outlets else None


def _common(outlets: int, username: str | None, password: str | None) -> dict[Any, Any]:
    schema: dict[Any, Any] = {
        vol.Optional("outlets", default=outlets): vol.All(int, vol.Range(min=1, max=48)),
        vol.Optional("initial", default="off"): vol.In(["on", "off"]),
    }
    if username is not None:
        schema[vol.Optional("username", default=username)] = str
    if password is not None:
        schema[vol.Optional("password", default=password)] = str
    return schema


class GudeTelnetSimulator(_TelnetPduSimulator):
    """Gude EPC console: no login (unless ``password`` is set, then it asks first), ``port N state set 0|1``."""

    default_port = 23
    options = {**_common(1, None, None), vol.Optional("password", default=""): str}

    async def dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.failure == "garbage":
            await self.say(writer, GARBAGE.decode())
        if self.config["password"]:
            await self.say(writer, "\r\npassword: ")
            if await self.line(reader, writer) != self.config["password"]:
                await self.say(writer, "\r\nwrong password\r\n")
                return
        while True:
            words = (await self.line(reader, writer)).split()
            if words in (["quit"], ["logout"]):
                self.logouts += 1
                return
            if not words:
                continue
            if len(words) == 5 and words[0] == "port" and words[2:4] == ["state", "set"] \
                    and (n := self.port_number(words[1])) and words[4] in ("0", "1"):
                self.outlets[n] = words[4] == "1"
                await self.say(writer, "OK.\r\n")
            elif len(words) == 3 and words[0] == "port" and words[2] == "state" and (n := self.port_number(words[1])):
                await self.say(writer, f"{int(self.outlets[n])}\r\n")
            else:
                await self.say(writer, "Error: unknown command or parameter\r\n")


class NetioKshellSimulator(_TelnetPduSimulator):
    """NETIO KSHELL on TCP 1234: ``100 HELLO``, ``login``, ``port N [0|1]``, ``port list``, ``quit``."""

    default_port = 1234
    options = _common(4, "admin", "admin")

    async def dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.failure == "garbage":
            await self.say(writer, GARBAGE.decode())
        else:
            await self.say(writer, f"100 HELLO {secrets.token_hex(4).upper()} - KSHELL V1.5\r\n")
        logged_in = False
        while True:
            words = (await self.line(reader, writer)).split()
            if not words:
                await self.say(writer, "502 UNKNOWN COMMAND\r\n")
            elif words[0] == "quit":
                self.logouts += 1
                await self.say(writer, "110 BYE\r\n")
                return
            elif words[0] == "login":
                logged_in = words[1:] == [self.config["username"], self.config["password"]]
                await self.say(writer, "250 OK\r\n" if logged_in else "503 INVALID LOGIN\r\n")
            elif words[0] != "port":
                await self.say(writer, "502 UNKNOWN COMMAND\r\n")
            elif not logged_in:
                await self.say(writer, "505 FORBIDDEN\r\n")
            else:
                await self.say(writer, self.port_command(words[1:]) + "\r\n")

    def port_command(self, args: list[str]) -> str:
        if args == ["list"]:
            return "250 " + "".join(str(int(self.outlets[n])) for n in sorted(self.outlets))
        n = self.port_number(args[0]) if args else None
        if n is None or len(args) > 2:
            return "501 INVALID PARAMETR"
        if len(args) == 1:
            return f"250 {int(self.outlets[n])}"
        if args[1] not in ("0", "1", "4"):
            return "501 INVALID PARAMETR"
        self.outlets[n] = (not self.outlets[n]) if args[1] == "4" else args[1] == "1"
        return "250 OK"


class SynaccessTelnetSimulator(_TelnetPduSimulator):
    """Synaccess netBooter Series B: ``>`` prompt, ``login`` (User ID / Password), ``pset N 0|1``, ``exit``."""

    default_port = 23
    options = _common(8, "admin", "admin")

    async def dialogue(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.failure == "garbage":
            await self.say(writer, GARBAGE.decode())
        else:
            await self.say(writer, f"\r\nSynaccess Inc. Telnet Session V6.1.\r\nSystem Model: NP-0{len(self.outlets)}B"
                                   "\r\n>")
        logged_in = False
        while True:
            line = await self.line(reader, writer)
            words = line.split()
            if not words:
                await self.say(writer, "\r\n>")
            elif words[0] == "exit" or words[0] == "logout":
                self.logouts += 1
                return
            elif words[0] == "login":
                await self.say(writer, "\r\nUser ID: ")
                user = await self.line(reader, writer)
                await self.say(writer, "\r\nPassword:")
                password = await self.line(reader, writer)
                logged_in = (user, password) == (self.config["username"], self.config["password"])
                await self.say(writer, "\r\n>" if logged_in else "\r\nInvalid User ID or Password\r\n>")
            elif not logged_in:
                await self.say(writer, "\r\nPlease login first\r\n>")
            elif len(words) == 3 and words[0] == "pset" and (n := self.port_number(words[1])) \
                    and words[2] in ("0", "1"):
                self.outlets[n] = words[2] == "1"
                await self.say(writer, "\r\n>")
            else:
                await self.say(writer, "\r\nInvalid command\r\n>")
