"""Gembird / EnerGenie USB power strips (SiS-PM, EG-PM2, EG-PMS2) over USB control transfers.

The protocol sispmctl and PDUDaemon speak (vendor 0x04B4, products 0xFD10-0xFD13 and
0xFD15): outlet N is switched with a HID SET_REPORT (``bmRequestType 0x21``, request 9,
value ``0x0300 + 3N``) carrying ``[3N, 0x03 | 0x00, 0, 0, 0]`` and read with a GET_REPORT
(``0xA1``, request 1, same value, 5 bytes; bit 0 of byte 1 is the outlet). The strip's id,
which chooses it, is GET_REPORT value ``0x0301``, 5 bytes written ``aa:bb:cc:dd:ee`` as
``sispmctl -s`` prints it. PDUDaemon's names ``EG-PMS`` and ``EG-PM2`` take that id as
``device`` and switch outlets 1-4.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError, NoSuchOutlet
from pdumqtt.drivers.usb_device import PyUsbDriver

VENDOR = 0x04B4
PRODUCTS = (0xFD10, 0xFD11, 0xFD12, 0xFD13, 0xFD15)
SET_REPORT, GET_REPORT = 0x09, 0x01
OUT, IN = 0x21, 0xA1  # class request to the interface, host to device and back
ID_VALUE = 0x0301
OUTLETS = 4


def outlet_value(outlet: int) -> int:
    return 0x0300 + 3 * outlet


def switch_data(outlet: int, on: bool) -> bytes:
    return bytes([3 * outlet, 0x03 if on else 0x00, 0, 0, 0])


def _strip_id(value: Any) -> str:
    if value == "":
        return ""  # PDUDaemon's default: here, the one strip plugged in
    if not isinstance(value, str) or not re.fullmatch(r"([0-9a-fA-F]{2}:){4}[0-9a-fA-F]{2}", value):
        raise vol.Invalid("expected the strip's id as sispmctl -s prints it, like 01:02:03:04:05")
    return value.lower()


class EnergenieUsb(PyUsbDriver):
    model = "Gembird / EnerGenie USB power strip"
    can_read = True
    vendor_id = VENDOR
    product_ids = PRODUCTS
    device_name = "EnerGenie USB strip"
    options: ClassVar[dict[Any, Any]] = {vol.Optional("serial"): vol.All(_strip_id, vol.Length(min=1))}

    def serial_of(self, core: Any, util: Any, device: Any) -> str:
        got = bytes(device.ctrl_transfer(IN, GET_REPORT, ID_VALUE, 0, 5, self._ms()))
        return ":".join(f"{b:02x}" for b in got)

    def _ms(self) -> int:
        return max(1, int(self.timeout * 1000))

    def _check(self, port: int) -> None:
        if not 1 <= port <= OUTLETS:
            raise NoSuchOutlet(f"outlet {port} does not exist: the strip has outlets 1 to {OUTLETS}")

    def set(self, port: int, on: bool) -> None:
        self._check(port)

        def switch(core: Any, util: Any, device: Any) -> None:
            device.ctrl_transfer(OUT, SET_REPORT, outlet_value(port), 0, switch_data(port, on), self._ms())

        self.transfer(switch, f"switching outlet {port} {'on' if on else 'off'}")

    def get(self, port: int) -> bool:
        self._check(port)

        def read(core: Any, util: Any, device: Any) -> bytes:
            return bytes(device.ctrl_transfer(IN, GET_REPORT, outlet_value(port), 0, 5, self._ms()))

        got = self.transfer(read, f"reading outlet {port}")
        if len(got) < 2:
            raise DriverError(f"the {self.device_name} answered the state of outlet {port} with "
                              f"{got.hex() or 'nothing'}, expected 5 bytes")
        return bool(got[1] & 1)


class EnerGenieUSB(EnergenieUsb):
    """PDUDaemon's ``EG-PMS`` and ``EG-PM2``: the strip's id as ``device``."""

    native_driver = "energenie_usb"
    fixed_ports = OUTLETS
    options: ClassVar[dict[Any, Any]] = {vol.Optional("device", default=""): _strip_id}

    def _serial(self) -> str | None:
        return self.config.get("device") or None
