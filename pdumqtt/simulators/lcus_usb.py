"""An LCUS (CH340) relay board on a pty: 4-byte ``A0 ch op sum`` frames, never an answer.

Frames with a bad checksum are ignored and counted in ``bad_frames``, as the board
ignores them.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._pty import PtySimulator


class LcusUsbSimulator(PtySimulator):
    options = {vol.Optional("relays", default=4): vol.All(vol.Coerce(int), vol.Range(min=1, max=8))}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.relays = [False] * self.config["relays"]
        self.bad_frames = 0
        self._buf = bytearray()

    def receive(self, data: bytes) -> bytes:
        self._buf += data
        while len(self._buf) >= 4:
            start = self._buf.find(0xA0)
            if start < 0:
                self._buf.clear()
                break
            del self._buf[:start]
            if len(self._buf) < 4:
                break
            head, channel, op, total = self._buf[:4]
            del self._buf[:4]
            if total != (head + channel + op) & 0xFF or op > 1 or not 1 <= channel <= len(self.relays):
                self.bad_frames += 1
                continue
            self.relays[channel - 1] = op == 1
        return b""
