"""LCUS relay boards (CH340 USB serial, 1 to 8 channels): 4-byte frames, no answers.

Frame ``A0 channel op sum``: op 1 closes the relay, 0 opens it, sum is the low byte
of the other three. The boards answer nothing, so the driver cannot read a relay
back; a board that is unplugged still shows, as the write fails or the device is gone.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import NoSuchOutlet
from pdumqtt.drivers.serial_relay import SERIAL_OPTIONS, SerialDriver


def frame(channel: int, on: bool) -> bytes:
    op = 1 if on else 0
    return bytes([0xA0, channel, op, (0xA0 + channel + op) & 0xFF])


class LcusUsb(SerialDriver):
    model = "LCUS USB relay board"
    protocol = "serial (4-byte frames)"
    tested_against = "`lcus_usb` simulator (pty pair)"
    can_read = False
    options: ClassVar[dict[Any, Any]] = {
        **SERIAL_OPTIONS,
        vol.Optional("relays", default=8): vol.All(vol.Coerce(int), vol.Range(min=1, max=8)),
        vol.Optional("baudrate", default=9600): vol.All(vol.Coerce(int), vol.Range(min=300, max=921600)),
    }

    def set(self, port: int, on: bool) -> None:
        if not 1 <= port <= self.config["relays"]:
            raise NoSuchOutlet(f"relay {port} does not exist: the board has {self.config['relays']}")
        self.link.exchange(frame(port, on), what=f"switching relay {port}")
