"""Cheap V-USB HID relay boards (``USBRelay1`` ... ``USBRelay8``) over USB control transfers.

The boards (vendor 0x16C0, product 0x05DF, shared by every V-USB gadget, so only those
whose product string is ``USBRelay<n>`` count; ``n`` is their relay count) have one
8-byte feature report: GET_REPORT (``bmRequestType 0xA0``, request 1, value 0x0300)
answers the 5-character serial in bytes 0-4 and the relays as bits of byte 7; SET_REPORT
(``0x20``, request 9, value 0x0300) with ``[0xFF, N]`` closes relay N and ``[0xFD, N]``
opens it, as PDUDaemon sends it. ``invert`` is for loads on the normally-closed contact.
PDUDaemon's name is ``vusbhid``, with ``serial`` and ``invert``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError, NoSuchOutlet
from pdumqtt.drivers.usb_device import PyUsbDriver, serial_or_empty, serial_text

VENDOR, PRODUCT = 0x16C0, 0x05DF
OUT, IN = 0x20, 0xA0  # class request to the device
SET_REPORT, GET_REPORT = 0x09, 0x01
FEATURE_REPORT_0 = 0x0300  # report type 3 (feature) << 8 | report id 0
CLOSE, OPEN = 0xFF, 0xFD
MAX_RELAYS = 8  # USBRelay1 to USBRelay8


class VusbRelay(PyUsbDriver):
    model = "V-USB HID relay board"
    can_read = True
    vendor_id = VENDOR
    product_ids = (PRODUCT,)
    device_name = "USBRelay board"
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("serial"): serial_text,
        vol.Optional("invert", default=False): vol.Boolean(),
    }

    def _ms(self) -> int:
        return max(1, int(self.timeout * 1000))

    def _report(self, device: Any) -> bytes:
        return bytes(device.ctrl_transfer(IN, GET_REPORT, FEATURE_REPORT_0, 0, 8, self._ms()))

    def is_candidate(self, util: Any, device: Any) -> bool:
        return self._relays(util, device) > 0  # other V-USB gadgets share the ids

    def serial_of(self, core: Any, util: Any, device: Any) -> str:
        return self._report(device)[:5].decode(errors="replace")

    @staticmethod
    def _relays(util: Any, device: Any) -> int:
        product = util.get_string(device, device.iProduct) or ""
        count = product[8:]
        return int(count) if product.startswith("USBRelay") and count.isdigit() else 0

    def _relay_board(self, util: Any, device: Any, port: int) -> None:
        relays = self._relays(util, device)
        if not 1 <= port <= relays:
            raise NoSuchOutlet(f"relay {port} does not exist: the board has relays 1 to {relays}")

    def set(self, port: int, on: bool) -> None:
        closed = on != self.config["invert"]

        def switch(core: Any, util: Any, device: Any) -> None:
            self._relay_board(util, device, port)
            device.ctrl_transfer(OUT, SET_REPORT, FEATURE_REPORT_0, 0, bytes([CLOSE if closed else OPEN, port]),
                                 self._ms())

        self.transfer(switch, f"switching relay {port} {'on' if on else 'off'}")

    def get(self, port: int) -> bool:
        def read(core: Any, util: Any, device: Any) -> bytes:
            self._relay_board(util, device, port)
            return self._report(device)

        got = self.transfer(read, f"reading relay {port}")
        if len(got) < 8:
            raise DriverError(f"the {self.device_name} answered its report with {len(got)} bytes, expected 8")
        return bool(got[7] >> (port - 1) & 1) != self.config["invert"]


class VUSBHID(VusbRelay):
    """PDUDaemon's ``vusbhid``: ``serial`` (default: the one board) and ``invert``."""

    native_driver = "vusb_relay"
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("serial", default=""): serial_or_empty,
        vol.Optional("invert", default=False): vol.Boolean(),
    }

    @classmethod
    def ports_for(cls, options: dict[str, Any]) -> tuple[int, str] | None:
        return MAX_RELAYS, (f"as many as a USBRelay{MAX_RELAYS}, the largest board (its USB product string, "
                            "USBRelay<n>, gives its count): set it; relays it lacks are refused, and the probe "
                            "skips them")
