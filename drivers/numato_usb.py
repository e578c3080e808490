"""Numato Lab USB relay modules (1 to 64 relays) on their serial command line.

Commands end in ``\\r``; the module echoes them, answers, and ends with the prompt
``>``: ``relay on N``, ``relay off N``, ``relay read N`` (answer ``on``/``off``).
Relays count from 0 on the wire: one hex digit up to 16 relays, 0-9 then A-V on
the 32-relay module, two decimal digits on the 64-relay one. Every switch is read
back, since the module says nothing when it ignores a command.
"""

from __future__ import annotations

import string
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError, NoSuchOutlet
from pdumqtt.drivers.serial_relay import SERIAL_OPTIONS, SerialDriver

SIZES = (1, 2, 4, 8, 16, 32, 64)


def relay_id(index: int, relays: int) -> str:
    """The wire name of 0-based relay ``index`` on a module with ``relays`` relays."""
    if relays <= 16:
        return f"{index:x}"
    if relays == 32:
        return (string.digits + string.ascii_uppercase)[index]
    return f"{index:02d}"


class NumatoUsb(SerialDriver):
    model = "Numato USB relay module"
    protocol = "serial (text commands with echo)"
    tested_against = "`numato_usb` simulator (pty pair)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **SERIAL_OPTIONS,
        vol.Optional("relays", default=8): vol.All(vol.Coerce(int), vol.In(SIZES)),
        vol.Optional("baudrate"): vol.All(vol.Coerce(int), vol.Range(min=300, max=921600)),
    }

    def _command(self, port: int, verb: str) -> str:
        relays = self.config["relays"]
        if not 1 <= port <= relays:
            raise NoSuchOutlet(f"relay {port} does not exist: the module has {relays}")
        sent = f"relay {verb} {relay_id(port - 1, relays)}"
        raw = self.link.exchange(sent.encode() + b"\r", until=b">", what=f"relay {verb} {port}")
        text = raw.decode("ascii", errors="replace")
        lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
        # Expected: the echo of our command, then for a read the state, then the prompt.
        if not lines or lines[0] != sent:
            raise DriverError(f"{self.config['device']} answered {text[:40]!r} to {sent!r}")
        return " ".join(lines[1:-1]).strip().lower()

    def set(self, port: int, on: bool) -> None:
        self._command(port, "on" if on else "off")
        if self.get(port) != on:
            raise DriverError(f"relay {port} of {self.config['device']} did not switch {'on' if on else 'off'}")

    def get(self, port: int) -> bool:
        state = self._command(port, "read")
        if state not in ("on", "off"):
            raise DriverError(f"{self.config['device']} read relay {port} as {state[:20]!r}, expected on or off")
        return state == "on"


def _pdudaemon_class(relays: int) -> type[NumatoUsb]:
    class Compat(NumatoUsb):
        native_driver = "numato_usb"
        fixed_ports = relays
        options: ClassVar[dict[Any, Any]] = {
            vol.Optional("device", default="/dev/ttyACM0"): SERIAL_OPTIONS[vol.Required("device")],
            vol.Optional("relays", default=relays): vol.In([relays]),
            vol.Optional("baudrate"): vol.All(vol.Coerce(int), vol.Range(min=300, max=921600)),
        }

    Compat.__name__ = Compat.__qualname__ = f"NumatoUSB{relays}"
    return Compat


# PDUDaemon's names NumatoUSB1 ... NumatoUSB64: option device, default /dev/ttyACM0.
NumatoUSB1 = _pdudaemon_class(1)
NumatoUSB2 = _pdudaemon_class(2)
NumatoUSB4 = _pdudaemon_class(4)
NumatoUSB8 = _pdudaemon_class(8)
NumatoUSB16 = _pdudaemon_class(16)
NumatoUSB32 = _pdudaemon_class(32)
NumatoUSB64 = _pdudaemon_class(64)
