"""Yepkit YKUSH switchable USB hubs (YKUSH, YKUSH3, YKUSH XS) over USB HID.

Yepkit's protocol (its ``ykushcmd`` and ``pykush``): vendor 0x04D8; one output report,
report id 0 then the command, padded to 64 bytes; the hub answers a 64-byte report whose
first byte is the status (1 = done) and, for a status read, second byte ``0x1N`` (port N
up) or ``0x0N`` (down). Commands: ``0x10|N`` powers port N up, ``0x00|N`` down, ``0x20|N``
reads it. The hub is chosen by its USB serial number (``YK...``), found afresh for each
call. PDUDaemon's names ``YKUSH``, ``YKUSH3`` and ``YKUSHXS`` are exact, upper-case, take
``serial`` and switch ports 1-3 (1 on the XS); PDUDaemon wrote ``[cmd, cmd]`` without the
report id, which Linux's hidraw passes on as the same command byte first.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import voluptuous as vol

from pdumqtt.drivers import DriverError, NoSuchOutlet
from pdumqtt.drivers.usb_device import HidDriver, serial_or_empty, serial_text

VENDOR = 0x04D8
REPORT_SIZE = 64
UP, DOWN, STATUS = 0x10, 0x00, 0x20


class Model(NamedTuple):
    name: str
    product_id: int
    ports: int


MODELS = {
    "ykush": Model("YKUSH", 0xF2F7, 3),
    # The YKUSH3's port 4 is its power-only output.
    "ykush3": Model("YKUSH3", 0xF11B, 4),
    "ykushxs": Model("YKUSH XS", 0xF0CD, 1),
}


def report(command: int) -> list[int]:
    """The output report for ``command``: report id 0, the command, zero padding."""
    return [0x00, command] + [0x00] * (REPORT_SIZE - 1)


class Ykush(HidDriver):
    model = "Yepkit YKUSH USB hub"
    can_read = True
    vendor_id = VENDOR
    product_ids = tuple(m.product_id for m in MODELS.values())  # for the udev rules; a PDU uses its model's
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("model", default="ykush"): vol.All(str, vol.Lower, vol.In(sorted(MODELS))),
        vol.Optional("serial"): serial_text,
    }

    @property
    def hub(self) -> Model:
        return MODELS[self.config["model"]]

    @property
    def device_name(self) -> str:  # type: ignore[override]
        return self.hub.name

    def _product_ids(self) -> tuple[int, ...]:
        return (self.hub.product_id,)

    def _ports(self) -> int:
        return self.hub.ports

    def _check(self, port: int) -> None:
        if not 1 <= port <= self._ports():
            raise NoSuchOutlet(f"port {port} does not exist: the {self.hub.name} has ports 1 to {self._ports()}"
                              if self._ports() > 1 else f"port {port} does not exist: the {self.hub.name} has port 1")

    def set(self, port: int, on: bool) -> None:
        self._check(port)
        what = f"powering port {port} {'up' if on else 'down'}"
        self.exchange(report((UP if on else DOWN) | port), REPORT_SIZE, what)

    def get(self, port: int) -> bool:
        self._check(port)
        answer = self.exchange(report(STATUS | port), REPORT_SIZE, f"reading port {port}")
        state = answer[1] >> 4 if len(answer) > 1 else -1
        if answer[0] != 1 or state not in (0, 1):
            raise DriverError(f"the {self.hub.name} answered the status of port {port} with "
                              f"{bytes(answer[:2]).hex()}, expected 01 then 1{port:x} or 0{port:x}")
        return state == 1


def _pdudaemon_class(name: str, model: str, ports: int) -> type[Ykush]:
    class Compat(Ykush):
        native_driver = "yepkit_ykush"
        fixed_ports = ports
        options: ClassVar[dict[Any, Any]] = {
            # PDUDaemon's default "" means: the first hub of the model found.
            vol.Optional("serial", default=""): serial_or_empty,
            vol.Optional("model", default=model): vol.In([model]),
        }

        def _ports(self) -> int:
            return ports

    Compat.__name__ = Compat.__qualname__ = name
    Compat.model = f"Yepkit {MODELS[model].name}"
    return Compat


# PDUDaemon's names, exactly as it accepts them (upper case only): option serial.
YKUSH = _pdudaemon_class("YKUSH", "ykush", 3)
YKUSH3 = _pdudaemon_class("YKUSH3", "ykush3", 3)
YKUSHXS = _pdudaemon_class("YKUSHXS", "ykushxs", 1)
