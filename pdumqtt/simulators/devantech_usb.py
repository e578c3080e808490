"""A Devantech USB-RLY module on a pty: one-byte commands, ``0x5B`` reads the states.

``garbage`` answers reads with the states inverted, so a driver that reads back
after switching sees a relay that did not switch. ``0x5A`` answers the module's own id
(as its manual gives it; 0 for the modules whose manual we have not seen) and version 1.
Relay commands beyond the module's count are ignored, as the real modules do not have them.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.drivers.devantech_usb import MODULES
from pdumqtt.simulators._pty import PtySimulator


class DevantechUsbSimulator(PtySimulator):
    options = {vol.Optional("module", default="usb-rly08b"): vol.All(vol.Lower, vol.In(sorted(MODULES)))}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.count = MODULES[self.config["module"]].relays
        self.relays = [False] * self.count
        self._set_all = False

    def receive(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            if self._set_all:  # 0x5C: the byte after it sets every relay
                self._set_all = False
                self.relays = [bool(byte >> i & 1) for i in range(self.count)]
            elif byte == 0x64 or byte == 0x6E:
                self.relays = [byte == 0x64] * self.count
            elif 0x65 <= byte <= 0x64 + self.count:
                self.relays[byte - 0x65] = True
            elif 0x6F <= byte <= 0x6E + self.count:
                self.relays[byte - 0x6F] = False
            elif byte == 0x5B:
                bits = sum(1 << i for i, r in enumerate(self.relays) if r)
                out.append(~bits & 0xFF if self.failure == "garbage" else bits)
            elif byte == 0x5A:
                out += bytes([MODULES[self.config["module"]].module_id or 0, 1])  # module id, software version
            elif byte == 0x5C:
                self._set_all = True
        return bytes(out)
