"""Chained Conrad 197720 relay cards on a pty: 4-byte XOR frames, answers ``255 - command``.

``cards`` cards of 8 relays; SETUP to card 1 makes each card answer 254 with its address
and the SETUP frame come back with the address after the last card. A frame for a card
that is not there comes back unchanged (the chain is a loop). Frames with a bad checksum
are ignored and counted in ``bad_frames``. ``option`` is each card's broadcast option at
start. ``failure: garbage`` answers with a bad checksum.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._pty import PtySimulator


def frame(command: int, card: int, data: int) -> bytes:
    return bytes([command, card, data, command ^ card ^ data])


class ConradSimulator(PtySimulator):
    options = {
        vol.Optional("cards", default=1): vol.All(vol.Coerce(int), vol.Range(min=1, max=255)),
        vol.Optional("option", default=1): vol.All(vol.Coerce(int), vol.Range(min=0, max=3)),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.relays = [0] * self.config["cards"]  # one byte of relay bits per card
        self.card_options = [self.config["option"]] * self.config["cards"]
        self.frames: list[bytes] = []  # every good frame received
        self.bad_frames = 0
        self._buf = bytearray()

    def outlet(self, card: int, relay: int) -> bool:
        """Relay ``relay`` (1-8) of card ``card`` (1-based)."""
        return bool(self.relays[card - 1] >> (relay - 1) & 1)

    def receive(self, data: bytes) -> bytes:
        self._buf += data
        out = b""
        while len(self._buf) >= 4:
            command, card, value, check = self._buf[:4]
            del self._buf[:4]
            if command ^ card ^ value != check:
                self.bad_frames += 1
                continue
            self.frames.append(frame(command, card, value))
            out += self._answer(command, card, value)
        if out and self.failure == "garbage":
            out = bytes([out[0], out[1], out[2], out[3] ^ 0xFF]) + out[4:]
        return out

    def _answer(self, command: int, card: int, value: int) -> bytes:
        cards = len(self.relays)
        if command == 1:
            return b"".join(frame(254, card + i, 11) for i in range(cards)) + frame(1, card + cards, value)
        if not 1 <= card <= cards or not 2 <= command <= 8:
            return frame(command, card, value)  # nobody's: it comes round the loop unchanged
        i = card - 1
        if command == 3:
            self.relays[i] = value
        elif command == 5:
            self.card_options[i] = value & 3
        elif command == 6:
            self.relays[i] |= value
        elif command == 7:
            self.relays[i] &= ~value & 0xFF
        elif command == 8:
            self.relays[i] ^= value
        data = self.card_options[i] if command in (4, 5) else self.relays[i]
        return frame(255 - command, card, data)
