"""Cleware USB-Switch 4 and USB-Switch 8 over USB HID (vendor 0x0D50).

Cleware's report layout, as its USBaccess library and PDUDaemon write it (report id 0
first): the 4-way switch (product 0x0008, "switch1" firmware) takes ``[0, 0, 0x10+N-1, 1|0]``;
the 8-way one (0x0030, "contact00") takes ``[0, 3, state_hi, state_lo, mask_hi, mask_lo]``
with mask ``1 << (N-1)`` and state the mask (on) or 0. Neither is read back. The device is
chosen by its serial number as Cleware's tools print it, in decimal (the USB serial string
is hex); newer switches all report USB serial 0x63813 and keep their real one in EEPROM
bytes 8-14, hex digits read one by one with ``[0, 2, address]`` (the answer carries the
address at byte 4 and the digit at byte 5). PDUDaemon's names ``clewareusbswitch4`` and
``clewareusbswitch8`` are case-insensitive there; ``pdumqtt migrate`` matches any case.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, NamedTuple

import voluptuous as vol

from pdumqtt.drivers import DriverError, NoSuchOutlet
from pdumqtt.drivers.usb_device import HidDriver

VENDOR = 0x0D50
SHARED_SERIAL = 0x63813  # what every newer switch reports as its USB serial
EEPROM_SERIAL = range(8, 15)


class Model(NamedTuple):
    name: str
    product_id: int
    ports: int


MODELS = {
    "switch4": Model("Cleware USB-Switch 4", 0x0008, 4),
    "switch8": Model("Cleware USB-Switch 8", 0x0030, 8),
}


def switch_report(model: str, port: int, on: bool) -> list[int]:
    """The output report that switches ``port`` (1-based) of a ``model`` switch."""
    if model == "switch4":
        return [0x00, 0x00, 0x10 + port - 1, 1 if on else 0]
    mask = 1 << (port - 1)
    state = mask if on else 0
    return [0x00, 0x03, state >> 8, state & 0xFF, mask >> 8, mask & 0xFF]


def _serial(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise vol.Invalid("expected the switch's serial number, in decimal as Cleware's tools print it") from None
    if number < 0 or isinstance(value, bool):
        raise vol.Invalid("expected the switch's serial number, in decimal as Cleware's tools print it")
    return number


class ClewareSwitch(HidDriver):
    model = "Cleware USB-Switch"
    can_read = False
    vendor_id = VENDOR
    product_ids = tuple(m.product_id for m in MODELS.values())  # for the udev rules; a PDU uses its model's
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("model", default="switch4"): vol.All(str, vol.Lower, vol.In(sorted(MODELS))),
        vol.Optional("serial"): _serial,
    }

    @property
    def switch(self) -> Model:
        return MODELS[self.config["model"]]

    @property
    def device_name(self) -> str:  # type: ignore[override]
        return self.switch.name

    def _product_ids(self) -> tuple[int, ...]:
        return (self.switch.product_id,)

    def _serial(self) -> str | None:
        serial = self.config.get("serial")
        return None if serial is None else str(serial)

    def serial_of(self, hid: Any, info: dict[str, Any]) -> str:
        try:
            serial = int(str(info.get("serial_number") or ""), 16)
        except ValueError:
            return ""
        if serial == SHARED_SERIAL:
            return str(self._eeprom_serial(hid, info["path"]))
        return str(serial)

    def _eeprom_serial(self, hid: Any, path: bytes) -> int:
        device = self.open_path(hid, path)
        try:
            serial = 0
            for address in EEPROM_SERIAL:
                digit = chr(self._read_byte(device, address))
                try:
                    serial = serial * 16 + int(digit, 16)
                except ValueError:
                    raise DriverError(f"the {self.device_name} at {path!r} keeps {digit!r} in its serial "
                                      f"number's EEPROM byte {address}, expected a hex digit") from None
            return serial
        finally:
            device.close()

    def _read_byte(self, device: Any, address: int) -> int:
        what = f"reading EEPROM byte {address} of the {self.device_name}"
        deadline = time.monotonic() + self.timeout
        try:
            if device.write([0x00, 0x02, address]) < 0:
                raise OSError("write failed")
            # The switch keeps sending its status reports: skip them until the answer comes.
            while time.monotonic() < deadline:
                data = device.read(16, max(1, int((deadline - time.monotonic()) * 1000)))
                if len(data) > 5 and data[4] == address:
                    return int(data[5])
        except (OSError, ValueError) as exc:
            raise DriverError(f"{what} failed (unplugged?): {exc}") from None
        raise DriverError(f"no answer {what} within {self.timeout:g} s")

    def _ports(self) -> int:
        return self.switch.ports

    def set(self, port: int, on: bool) -> None:
        if not 1 <= port <= self._ports():
            raise NoSuchOutlet(f"switch {port} does not exist: the {self.switch.name} has 1 to {self._ports()}")
        self.exchange(switch_report(self.config["model"], port, on), 0, f"switching {port} {'on' if on else 'off'}")


def _pdudaemon_class(name: str, model: str) -> type[ClewareSwitch]:
    class Compat(ClewareSwitch):
        native_driver = "cleware_switch"
        fixed_ports = MODELS[model].ports
        options: ClassVar[dict[Any, Any]] = {
            vol.Required("serial"): _serial,
            vol.Optional("model", default=model): vol.In([model]),
        }

    Compat.__name__ = Compat.__qualname__ = name
    Compat.model = MODELS[model].name
    return Compat


# PDUDaemon's names (it matches them in any case): option serial, a decimal number.
ClewareUsbSwitch4 = _pdudaemon_class("ClewareUsbSwitch4", "switch4")
ClewareUsbSwitch8 = _pdudaemon_class("ClewareUsbSwitch8", "switch8")
