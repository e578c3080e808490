"""A Devantech dS378/dS2824 on TCP: ASCII lines ``SR n on|off [ms]``, ``GR n``, ``ST``.

``SR`` answers ``Ok``, ``GR`` ``Active``/``Inactive``, anything else ``Fail``; commands
are not case sensitive. ``garbage`` answers every line with ``#?!``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import voluptuous as vol

from pdumqtt.drivers.devantech_ds import BOARDS
from pdumqtt.simulators._aio import StreamSimulator


class DevantechDsSimulator(StreamSimulator):
    default_port = 17123
    options = {vol.Optional("board", default="ds2824"): vol.All(vol.Lower, vol.In(sorted(BOARDS)))}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.relays = [False] * BOARDS[self.config["board"]]
        self.lines: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while raw := await reader.readline():
            line = raw.decode("ascii", errors="replace").strip()
            if not line:
                continue
            self.lines.append(line)
            if await self.misbehave(writer, b"#?!\r\n"):
                continue
            writer.write(self._answer(line.lower().split()).encode() + b"\r\n")
            await writer.drain()

    def _answer(self, words: list[str]) -> str:
        if len(words) in (3, 4) and words[0] == "sr" and words[2] in ("on", "off") and self._relay(words[1]):
            index = int(words[1]) - 1
            on = words[2] == "on"
            self.relays[index] = on
            if len(words) == 4 and words[3].isdigit() and int(words[3]):
                assert self.loop is not None
                self.loop.call_later(int(words[3]) / 1000, self.relays.__setitem__, index, not on)
            return "Ok"
        if len(words) == 2 and words[0] == "gr" and self._relay(words[1]):
            return "Active" if self.relays[int(words[1]) - 1] else "Inactive"
        if words == ["st"]:
            return f"Module Type: {self.config['board']}"
        return "Fail"

    def _relay(self, word: str) -> bool:
        return word.isdigit() and 1 <= int(word) <= len(self.relays)
