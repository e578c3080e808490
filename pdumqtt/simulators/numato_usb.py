"""A Numato Lab USB relay module on a pty: echoed ``relay on|off|read N`` commands, ``>`` prompt.

``garbage`` answers with a line the module never sends instead of the echo.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.drivers.numato_usb import SIZES, relay_id
from pdumqtt.simulators._pty import PtySimulator


class NumatoUsbSimulator(PtySimulator):
    options = {vol.Optional("relays", default=8): vol.All(vol.Coerce(int), vol.In(SIZES))}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        count = self.config["relays"]
        self.relays = [False] * count
        self._ids = {relay_id(i, count).lower(): i for i in range(count)}
        self._line = bytearray()

    def receive(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if byte != 0x0D:
                self._line.append(byte)
                continue
            line = self._line.decode("ascii", errors="replace")
            self._line.clear()
            if self.failure == "garbage":
                out += b"\n\rwhat?\n\r>"
                continue
            out += line.encode() + b"\n\r" + self._run(line.split())
        return bytes(out)

    def _run(self, words: list[str]) -> bytes:
        if len(words) == 3 and words[0] == "relay" and words[2].lower() in self._ids:
            index = self._ids[words[2].lower()]
            if words[1] in ("on", "off"):
                self.relays[index] = words[1] == "on"
                return b">"
            if words[1] == "read":
                return (b"on" if self.relays[index] else b"off") + b"\n\r>"
        if words == ["ver"]:
            return b"00000008\n\r>"
        return b">"
