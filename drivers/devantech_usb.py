"""Devantech USB-RLY and USB-OPTO-RLY relay modules on a serial port.

One byte per command: ``0x64 + n`` switches relay n on, ``0x6E + n`` off; ``0x5B``
answers one byte with the relay states (bit 0 = relay 1). The modules do not answer
a switch command, so every switch is read back with ``0x5B``: that is how a module
that ignored us, or is not there, is told from one that switched. When a relay did
not switch, ``0x5A`` (module id, software version) tells which module answers, so a
wrong ``module`` setting is named in the error.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import voluptuous as vol

from pdumqtt.drivers import DriverError, NoSuchOutlet
from pdumqtt.drivers.serial_relay import SERIAL_OPTIONS, SerialDriver

GET_VERSION, ON_BASE, OFF_BASE, GET_STATES = 0x5A, 0x64, 0x6E, 0x5B


class Module(NamedTuple):
    relays: int
    baudrate: int
    stopbits: float
    module_id: int | None = None  # first byte of the 0x5A reply, where the manual gives it


# The FTDI-based modules run 19200 8N2; the CDC-ACM ones ignore the line settings.
# Module ids from Devantech's manuals (USB-RLY08 8, USB-RLY16 9, USB-RLY02 10, USB-RLY16L 15).
MODULES: dict[str, Module] = {
    "usb-rly02": Module(2, 9600, 1, 10),
    "usb-rly82": Module(2, 9600, 1),
    "usb-rly04": Module(4, 9600, 1),
    "usb-rly06": Module(6, 9600, 1),
    "usb-rly08b": Module(8, 19200, 2, 8),
    "usb-rly16": Module(8, 19200, 2, 9),
    "usb-rly16l": Module(8, 19200, 2, 15),
    "usb-opto-rly88": Module(8, 9600, 1),
    "usb-opto-rly816": Module(8, 9600, 1),
}
MODULE_BY_ID = {m.module_id: name for name, m in MODULES.items() if m.module_id is not None}


def describe_module(module_id: int) -> str:
    """What a module id means, for messages: ``USB-RLY02 (module id 10, 2 relays)``."""
    name = MODULE_BY_ID.get(module_id)
    if name is None:
        return f"module id {module_id}, not a module we know"
    return f"{name.upper()} (module id {module_id}, {MODULES[name].relays} relays)"


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
            raise NoSuchOutlet(f"relay {port} does not exist: the {self.config['module']} has {self.module.relays}")

    def _states(self, what: str) -> int:
        return self.link.exchange(bytes([GET_STATES]), reply=1, what=what)[0]

    def module_info(self) -> tuple[int, int]:
        """Ask the module for its module id and software version (``0x5A``)."""
        module_id, version = self.link.exchange(bytes([GET_VERSION]), reply=2, what="reading the module id")
        return module_id, version

    def set(self, port: int, on: bool) -> None:
        self._check_port(port)
        self.link.exchange(bytes([(ON_BASE if on else OFF_BASE) + port]), what=f"switching relay {port}")
        if bool(self._states(f"reading relay {port} back") >> (port - 1) & 1) != on:
            raise DriverError(self._not_switched(port, on))

    def _not_switched(self, port: int, on: bool) -> str:
        message = f"relay {port} of {self.config['device']} did not switch {'on' if on else 'off'}"
        try:
            module_id = self.module_info()[0]
        except DriverError:
            return message
        if module_id != self.module.module_id and module_id in MODULE_BY_ID:
            message += f": the module reports {describe_module(module_id)}, not the configured {self.config['module']}"
        return message

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
