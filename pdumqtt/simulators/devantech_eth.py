"""A Devantech ETH relay board on TCP: the binary 0x20/0x21/0x24 protocol with optional password.

Relays live in ``relays`` (index 0 = relay 1, True = active). With a ``password`` the
board answers relay commands with 1 (failure) until a connection logs in with ``0x79``;
a login lasts ``unlock_seconds`` of idle time or until ``0x7B``. Reads (``0x24``) are
answered either way. ``logic: NC`` models a load on the normally-closed contact:
``outlet(n)`` is what the load sees, the inverse of the relay. Pulsed commands revert
the relay after the pulse time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import voluptuous as vol

from pdumqtt.drivers.devantech_eth import BOARDS
from pdumqtt.simulators._aio import StreamSimulator


class DevantechEthSimulator(StreamSimulator):
    default_port = 17494
    options = {
        vol.Optional("board", default="eth008"): vol.All(vol.Lower, vol.In(sorted(BOARDS))),
        vol.Optional("password", default=""): str,
        vol.Optional("logic", default="NO"): vol.All(vol.Upper, vol.In(["NO", "NC"])),
        vol.Optional("unlock_seconds", default=30): vol.All(vol.Coerce(float), vol.Range(min=0)),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.board = BOARDS[self.config["board"]]
        self.relays = [False] * self.board.relays
        self.requests: list[bytes] = []
        self.logins = 0
        self.bad_logins = 0
        self.logouts = 0

    def outlet(self, n: int) -> bool:
        """Whether the load on relay ``n`` (1-based) has power."""
        return self.relays[n - 1] != (self.config["logic"] == "NC")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unlocked_until = 0.0
        password = self.config["password"].encode()
        while True:
            command = (await reader.readexactly(1))[0]
            if command in (0x20, 0x21):
                relay, pulse = await reader.readexactly(2)
                self.requests.append(bytes([command, relay, pulse]))
                if await self.misbehave(writer, b"\x55"):
                    continue
                locked = bool(password) and time.monotonic() > unlocked_until
                if locked or not 1 <= relay <= self.board.relays:
                    writer.write(b"\x01")
                else:
                    self._switch(relay, command == 0x20, pulse)
                    writer.write(b"\x00")
            elif command == 0x24:
                self.requests.append(b"\x24")
                if await self.misbehave(writer, b"\x55"):
                    continue
                bits = sum(1 << i for i, r in enumerate(self.relays) if r)
                writer.write(bits.to_bytes(self.board.state_bytes, "little"))
            elif command == 0x79:
                # The password is the rest of what arrived with the command byte.
                given = await asyncio.wait_for(reader.read(64), 2)
                self.requests.append(b"\x79")
                if await self.misbehave(writer, b"\x55"):
                    continue
                if password and given == password:
                    self.logins += 1
                    unlocked_until = time.monotonic() + self.config["unlock_seconds"]
                    writer.write(b"\x01")
                else:
                    self.bad_logins += 1
                    writer.write(b"\x02")
            elif command == 0x7A:
                if not password:
                    writer.write(b"\xff")
                else:
                    left = unlocked_until - time.monotonic()
                    writer.write(bytes([max(0, min(254, int(left)))]) if left > 0 else b"\x00")
            elif command == 0x7B:
                self.logouts += 1
                unlocked_until = 0.0
                writer.write(b"\x00")
            elif command == 0x10:
                writer.write(bytes([self.board.module_id, 1, 1]))
            else:
                continue
            if password and unlocked_until:
                unlocked_until = max(unlocked_until, time.monotonic() + self.config["unlock_seconds"])
            await writer.drain()

    def _switch(self, relay: int, active: bool, pulse: int) -> None:
        self.relays[relay - 1] = active
        if pulse:
            assert self.loop is not None
            self.loop.call_later(pulse / 10, self.relays.__setitem__, relay - 1, not active)
