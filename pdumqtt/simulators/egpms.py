"""An Energenie EG-PMS-LAN on its TCP protocol (port 5000 on the device), 4 sockets.

It sends a fresh random challenge for each ``0x11``, checks the 4-byte answer against
``password``, then sends the encoded socket states (last socket first) and takes 4
encoded commands (1 on, 2 off, 4 leave alone) or a lone byte that ends the session.
A wrong answer is met with a hang-up, as the device does. ``sockets[n]`` is socket n+1;
``logins`` counts good logins, ``refused`` bad ones. Failures: ``silent`` (no
challenge), ``drop``, ``garbage`` (states that decode to no state).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import voluptuous as vol

from pdumqtt.drivers.egpms import SWITCH_OFF, SWITCH_ON, auth_response, decode, encode, password_bytes
from pdumqtt.simulators._aio import StreamSimulator

ON_STATE, OFF_STATE = 0x11, 0x22


class EgPmsSimulator(StreamSimulator):
    options = {vol.Optional("password", default="1"): str}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.sockets = [False] * 4
        self.key = password_bytes(self.config["password"])
        self.logins = 0
        self.refused = 0
        self.commands: list[list[int]] = []

    def _encoded_states(self, challenge: bytes) -> bytes:
        if self.failure == "garbage":
            return bytes(encode(0x55, challenge, self.key) for _ in self.sockets)
        states = [encode(ON_STATE if on else OFF_STATE, challenge, self.key) for on in self.sockets]
        return bytes(reversed(states))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readexactly(1) == b"\x11":
            if self.failure == "silent":
                await asyncio.Event().wait()
            if self.failure == "drop":
                return
            challenge = os.urandom(4)
            writer.write(challenge)
            await writer.drain()
            if await reader.readexactly(4) != auth_response(challenge, self.key):
                self.refused += 1
                return
            self.logins += 1
            writer.write(self._encoded_states(challenge))
            await writer.drain()
            # the device takes what comes in one packet: 4 bytes are commands, anything else ends it
            data = await reader.read(4)
            if len(data) != 4:
                return
            commands = [decode(b, challenge, self.key) for b in reversed(data)]
            self.commands.append(commands)
            for n, command in enumerate(commands):
                if command == SWITCH_ON:
                    self.sockets[n] = True
                elif command == SWITCH_OFF:
                    self.sockets[n] = False
            writer.write(self._encoded_states(challenge))
            await writer.drain()
            await reader.read(1)  # the closing 0x11
            return
