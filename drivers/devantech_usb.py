"""Devantech USB-RLY and USB-OPTO-RLY relay modules on a serial port.

One byte per command: ``0x64 + n`` switches relay n on, ``0x6E + n`` off; ``0x5B``
answers one byte with the relay states (bit 0 = relay 1). The modules do not answer
a switch command, so every switch is read back with ``0x5B``: that is how a module
that ignored us, or is not there, is told from one that switched.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.serial_relay import SERIAL_OPTIONS, SerialDriver

ON_BASE, OFF_BASE, GET_STATES = 0x64, 0x6E, 0x5B


class Module(NamedTuple):
    relays: int
    baudrate: int
    stopbits: float


# The FTDI-based modules run 19200 8N2; the CDC-ACM ones ignore the line settings.
MODULES: dict[str, Module] = {
    "usb-rly02": Module(2, 9600, 1),
    "usb-rly82": Module(2, 9600, 1),
    "usb-rly04": Module(4, 9600, 1),
    "usb-rly06": Module(6, 9600, 1),
    "usb-rly08b": Module(8, 19200, 2),
    "usb-rly16": Module(8, 19200, 2),
    "usb-rly16l": Module(8, 19200, 2),
    "usb-opto-rly88": Module(8, 9600, 1),
    "usb-opto-rly816": Module(8, 9600, 1),
}


class DevantechUsb(SerialDriver):
    model = "Devantech USB-RLY"
    protocol = "serial (one-byte commands)"
    tested_against = "`devantech_usb` simulator (pty pair)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **SERIAL_OPTIONS,
        vol.Optional("module", default="usb-rly08b"): vol.All(vol.Lower, vol.In(sorted(MODULES))),
        vol.Optional("baudrate"): vol.All(vol.Coerce(int), vol.Range(min=300, max=921600)),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self.module = MODULES[self.config["module"]]
        self.stopbits = self.module.stopbits
        self.baudrate = self.module.baudrate

    def _check_port(self, port: int) -> None:
        if not 1 <= port <= self.module.relays:
            raise DriverError(f"relay {port} does not exist: the {self.config['module']} has {self.module.relays}")

    def _states(self, what: str) -> int:
        return self.link.exchange(bytes([GET_STATES]), reply=1, what=what)[0]

    def set(self, port: int, on: bool) -> None:
        self._check_port(port)
        self.link.exchange(bytes([(ON_BASE if on else OFF_BASE) + port]), what=f"switching relay {port}")
        if bool(self._states(f"reading relay {port} back") >> (port - 1) & 1) != on:
            raise DriverError(f"relay {port} of {self.config['device']} did not switch {'on' if on else 'off'}")

    def get(self, port: int) -> bool:
        self._check_port(port)
        return bool(self._states("reading the relays") >> (port - 1) & 1)


def _pdudaemon_class(name: str, module: str) -> type[DevantechUsb]:
    class Compat(DevantechUsb):
        model = f"Devantech {module.upper()}"
        native_driver = "devantech_usb"
        fixed_ports = MODULES[module].relays
        options: ClassVar[dict[Any, Any]] = {
            vol.Optional("device", default="/dev/ttyACM0"): SERIAL_OPTIONS[vol.Required("device")],
            vol.Optional("module", default=module): vol.In([module]),
            vol.Optional("baudrate"): vol.All(vol.Coerce(int), vol.Range(min=300, max=921600)),
        }

    Compat.__name__ = Compat.__qualname__ = name
    return Compat


# PDUDaemon's names (devantech_USB-RLY02 ...): option device, default /dev/ttyACM0.
DevantechUSBRLY02 = _pdudaemon_class("DevantechUSBRLY02", "usb-rly02")
DevantechUSBRLY82 = _pdudaemon_class("DevantechUSBRLY82", "usb-rly82")
DevantechUSBRLY04 = _pdudaemon_class("DevantechUSBRLY04", "usb-rly04")
DevantechUSBRLY06 = _pdudaemon_class("DevantechUSBRLY06", "usb-rly06")
DevantechUSBRLY08B = _pdudaemon_class("DevantechUSBRLY08B", "usb-rly08b")
DevantechUSBRLY16 = _pdudaemon_class("DevantechUSBRLY16", "usb-rly16")
DevantechUSBRLY16L = _pdudaemon_class("DevantechUSBRLY16L", "usb-rly16l")
DevantechUSBOPTORLY88 = _pdudaemon_class("DevantechUSBOPTORLY88", "usb-opto-rly88")
DevantechUSBOPTORLY816 = _pdudaemon_class("DevantechUSBOPTORLY816", "usb-opto-rly816")
