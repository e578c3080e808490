"""A MOCK of the USB libraries, at their boundary: hidapi's ``hid`` and pyusb's ``usb.core``/``usb.util``.

USB devices cannot be simulated over a socket or a pty, so the tests replace the library
module the driver imports (``sys.modules["hid"]``, ``["usb.core"]``...) with these
mocks. A :class:`MockBus` holds mock devices; each records every report or control
transfer it receives, byte for byte, answers as the documented device does, and can be
unplugged (it leaves the enumeration and its open handles fail as a vanished device's
do) and plugged in again. ``denied`` makes opening it fail as a missing udev rule does.
"""

from __future__ import annotations

import array
import errno
import sys
import threading
import types
from typing import Any

import pytest


class MockHidDevice:
    """A HID device on the mock bus; subclasses answer reports."""

    vendor_id = 0
    product_id = 0
    product = ""

    def __init__(self, serial: str = "", path: str = "") -> None:
        self.serial = serial
        self.path = path.encode()
        self.plugged = True
        self.denied = False
        self.silent = False
        self.reports: list[bytes] = []  # every output report written, with its report id byte
        self.pending: list[list[int]] = []  # input reports waiting to be read

    def info(self) -> dict[str, Any]:
        return {"path": self.path, "vendor_id": self.vendor_id, "product_id": self.product_id,
                "serial_number": self.serial, "release_number": 0x100, "manufacturer_string": "mock",
                "product_string": self.product, "usage_page": 0xFF00, "usage": 1, "interface_number": 0}

    def receive(self, report: bytes) -> list[int] | None:
        """Take an output report (report id first); return the input report it causes, if any."""
        raise NotImplementedError


class MockUsbDevice:
    """A USB device for the pyusb mock: records ``ctrl_transfer`` calls; subclasses answer them."""

    idVendor = 0  # noqa: N815 - pyusb's attribute names
    idProduct = 0  # noqa: N815
    iProduct = 2  # noqa: N815
    product = ""

    def __init__(self, bus: MockBus) -> None:
        self.bus = bus
        self.plugged = True
        self.denied = False
        self.transfers: list[tuple[int, int, int, int, bytes | int]] = []  # (type, request, value, index, data)

    def ctrl_transfer(self, bmRequestType: int, bRequest: int, wValue: int = 0, wIndex: int = 0,  # noqa: N803
                      data_or_wLength: Any = None, timeout: Any = None) -> Any:  # noqa: N803 - pyusb's names
        core = self.bus.usb_core
        if not self.plugged:
            raise core.USBError("No such device (it may have been disconnected)", -4, errno.ENODEV)
        if self.denied:
            raise core.USBError("Access denied (insufficient permissions)", -3, errno.EACCES)
        with self.bus.lock:
            if bmRequestType & 0x80:
                self.transfers.append((bmRequestType, bRequest, wValue, wIndex, int(data_or_wLength)))
                return array.array("B", self.control_in(bRequest, wValue, int(data_or_wLength)))
            data = bytes(data_or_wLength)
            self.transfers.append((bmRequestType, bRequest, wValue, wIndex, data))
            self.control_out(bRequest, wValue, data)
            return len(data)

    def control_in(self, request: int, value: int, length: int) -> bytes:
        raise NotImplementedError

    def control_out(self, request: int, value: int, data: bytes) -> None:
        raise NotImplementedError


class _HidHandle:
    """What ``hid.device()`` gives: the methods of hidapi's ``hid.device`` the drivers use."""

    def __init__(self, bus: MockBus) -> None:
        self.bus = bus
        self.dev: MockHidDevice | None = None
        self._error = ""

    def open_path(self, path: bytes) -> None:
        for dev in self.bus.hid_devices:
            if dev.path == path and dev.plugged:
                if dev.denied:
                    self._error = f"Failed to open a device with path '{path.decode()}': Permission denied"
                    raise OSError("open failed")
                self.dev = dev
                return
        self._error = f"Failed to open a device with path '{path.decode()}': No such file or directory"
        raise OSError("open failed")

    def open(self, vendor_id: int = 0, product_id: int = 0, serial_number: str | None = None) -> None:
        for dev in self.bus.hid_devices:
            if dev.plugged and (dev.vendor_id, dev.product_id) == (vendor_id, product_id) \
                    and serial_number in (None, dev.serial):
                return self.open_path(dev.path)
        raise OSError("open failed")

    def error(self) -> str:
        return self._error

    def write(self, buff: Any) -> int:
        data = bytes(buff)
        dev = self._alive()
        if dev is None:
            return -1
        with self.bus.lock:
            dev.reports.append(data)
            answer = dev.receive(data)
            if answer is not None and not dev.silent:
                dev.pending.append(answer)
        return len(data)

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        dev = self._alive()
        if dev is None:
            raise OSError("read error")
        with self.bus.lock:
            if dev.pending:
                return dev.pending.pop(0)[:max_length]
        return []  # what hidapi gives when the timeout passes without a report

    def close(self) -> None:
        self.dev = None

    def _alive(self) -> MockHidDevice | None:
        if self.dev is None:
            raise ValueError("not open")
        return self.dev if self.dev.plugged else None


class MockBus:
    """The mock USB bus: devices, and the mock modules that see them."""

    def __init__(self) -> None:
        self.hid_devices: list[MockHidDevice] = []
        self.usb_devices: list[MockUsbDevice] = []
        self.lock = threading.Lock()
        self.hid = types.ModuleType("hid", "MOCK of hidapi's hid module (tests/usb_mock.py)")
        self.hid.enumerate = self._hid_enumerate  # type: ignore[attr-defined]
        self.hid.device = lambda: _HidHandle(self)  # type: ignore[attr-defined]
        self.usb_core = types.ModuleType("usb.core", "MOCK of pyusb's usb.core (tests/usb_mock.py)")
        self.usb_core.find = self._usb_find  # type: ignore[attr-defined]
        self.usb_core.USBError = type("USBError", (OSError,), {  # type: ignore[attr-defined]
            "__init__": _usb_error_init})
        self.usb_core.NoBackendError = type("NoBackendError", (ValueError,), {})  # type: ignore[attr-defined]
        self.usb_util = types.ModuleType("usb.util", "MOCK of pyusb's usb.util (tests/usb_mock.py)")
        self.usb_util.get_string = self._get_string  # type: ignore[attr-defined]
        self.usb_util.dispose_resources = lambda dev: None  # type: ignore[attr-defined]
        self.usb = types.ModuleType("usb", "MOCK of pyusb (tests/usb_mock.py)")
        self.usb.core, self.usb.util = self.usb_core, self.usb_util  # type: ignore[attr-defined]

    def add(self, device: Any) -> Any:
        (self.hid_devices if isinstance(device, MockHidDevice) else self.usb_devices).append(device)
        if isinstance(device, MockHidDevice) and not device.path:
            device.path = f"/dev/mock-hidraw{len(self.hid_devices)}".encode()
        return device

    @staticmethod
    def unplug(device: Any) -> None:
        device.plugged = False

    @staticmethod
    def plug(device: Any) -> None:
        device.plugged = True

    def install(self, monkeypatch: pytest.MonkeyPatch) -> MockBus:
        """Put the mock modules where the drivers import hidapi and pyusb from."""
        for name, module in (("hid", self.hid), ("usb", self.usb), ("usb.core", self.usb_core),
                             ("usb.util", self.usb_util)):
            monkeypatch.setitem(sys.modules, name, module)
        return self

    def _hid_enumerate(self, vendor_id: int = 0, product_id: int = 0) -> list[dict[str, Any]]:
        return [d.info() for d in self.hid_devices if d.plugged
                and vendor_id in (0, d.vendor_id) and product_id in (0, d.product_id)]

    def _usb_find(self, find_all: bool = False, backend: Any = None, custom_match: Any = None, **args: Any) -> Any:
        found = [d for d in self.usb_devices if d.plugged and all(getattr(d, k) == v for k, v in args.items())]
        return iter(found) if find_all else (found[0] if found else None)

    @staticmethod
    def _get_string(dev: MockUsbDevice, index: int, langid: Any = None) -> str:
        if dev.denied:
            raise ValueError("The device has no langid (permission issue, no string descriptors supported "
                             "or device error)")
        return dev.product if index == dev.iProduct else ""


def _usb_error_init(self: OSError, strerror: str, error_code: int | None = None, errno: int | None = None) -> None:
    OSError.__init__(self, errno, strerror)
    self.backend_error_code = error_code  # type: ignore[attr-defined]


# --- the devices ---------------------------------------------------------------------------


class MockYkush(MockHidDevice):
    """A Yepkit YKUSH family hub: ``0x1N`` up, ``0x0N`` down, ``0x2N`` status; answers ``[1, 0x1N|0x0N]``."""

    vendor_id = 0x04D8

    def __init__(self, serial: str, product_id: int = 0xF2F7, ports: int = 3) -> None:
        super().__init__(serial)
        self.product_id = product_id
        self.product = {0xF2F7: "YKUSH", 0xF11B: "YKUSH3", 0xF0CD: "YKUSHXS"}.get(product_id, "YKUSH")
        self.up = [True] * ports  # hubs power their ports at start

    def receive(self, report: bytes) -> list[int] | None:
        command = report[1]
        port = command & 0x0F
        if not 1 <= port <= len(self.up):
            return [0] * 64
        if command & 0xF0 in (0x00, 0x10):
            self.up[port - 1] = bool(command & 0x10)
            return [1, command] + [0] * 62
        if command & 0xF0 == 0x20:
            return [1, (0x10 if self.up[port - 1] else 0x00) | port] + [0] * 62
        return [0] * 64


class MockCleware(MockHidDevice):
    """A Cleware USB-Switch: 0x0008 takes ``[0, 0, 0x10+n, on]``, 0x0030 ``[0, 3, hi, lo, mhi, mlo]``.

    ``shared_serial`` makes it a newer switch: USB serial 0x63813, the real one in EEPROM
    bytes 8-14 (hex digits), read with ``[0, 2, address]``. Like the real ones, it sends a
    status report of its own before each EEPROM answer.
    """

    vendor_id = 0x0D50

    def __init__(self, serial: int, product_id: int = 0x0008, shared_serial: bool = False) -> None:
        super().__init__(f"{0x63813 if shared_serial else serial:X}")
        self.product_id = product_id
        self.number = serial
        self.on = [False] * (4 if product_id == 0x0008 else 16)

    def receive(self, report: bytes) -> list[int] | None:
        data = report[1:]
        if data[0] == 0x02:  # EEPROM read
            digits = f"{self.number:07X}"
            address = data[1]
            self.pending.append([0x81, 0, 0, 0, 0xFF, 0xFF] + [0] * 10)  # a status report first
            value = ord(digits[address - 8]) if 8 <= address <= 14 else 0xFF
            return [0, 0, 0, 0, address, value] + [0] * 10
        if self.product_id == 0x0008 and data[0] == 0x00 and len(data) >= 3 and 0x10 <= data[1] < 0x10 + len(self.on):
            self.on[data[1] - 0x10] = bool(data[2])
        elif self.product_id == 0x0030 and data[0] == 0x03 and len(data) >= 5:
            state, mask = data[1] << 8 | data[2], data[3] << 8 | data[4]
            for i in range(len(self.on)):
                if mask >> i & 1:
                    self.on[i] = bool(state >> i & 1)
        return None


class MockEnergenie(MockUsbDevice):
    """A Gembird/EnerGenie strip: id at GET_REPORT 0x0301, outlet N at 0x0300+3N (SET ``[3N, 3|0, 0, 0, 0]``)."""

    idVendor = 0x04B4  # noqa: N815

    def __init__(self, bus: MockBus, strip_id: str, product_id: int = 0xFD13) -> None:
        super().__init__(bus)
        self.idProduct = product_id
        self.strip_id = bytes.fromhex(strip_id.replace(":", ""))
        self.on = [False] * 4

    def control_in(self, request: int, value: int, length: int) -> bytes:
        assert request == 0x01 and length == 5, (request, length)
        if value == 0x0301:
            return self.strip_id
        outlet = (value - 0x0300) // 3
        assert value == 0x0300 + 3 * outlet and 1 <= outlet <= 4, hex(value)
        return bytes([3 * outlet, 0x03 if self.on[outlet - 1] else 0x00, 0, 0, 0])

    def control_out(self, request: int, value: int, data: bytes) -> None:
        outlet = (value - 0x0300) // 3
        assert request == 0x09 and value == 0x0300 + 3 * outlet and 1 <= outlet <= 4, (request, hex(value))
        assert len(data) == 5 and data[0] == 3 * outlet and data[1] in (0, 3), data
        self.on[outlet - 1] = data[1] == 3


class MockVusbRelay(MockUsbDevice):
    """A V-USB ``USBRelay<n>`` board: feature report 0 is serial[5], 0, 0, relay bits; ``[0xFF|0xFD, n]`` sets."""

    idVendor, idProduct = 0x16C0, 0x05DF  # noqa: N815

    def __init__(self, bus: MockBus, serial: str, relays: int = 2, product: str | None = None) -> None:
        super().__init__(bus)
        self.serial = serial.encode()
        self.product = product if product is not None else f"USBRelay{relays}"
        self.closed = [False] * relays

    def control_in(self, request: int, value: int, length: int) -> bytes:
        assert request == 0x01 and value == 0x0300 and length == 8, (request, hex(value), length)
        bits = sum(1 << i for i, c in enumerate(self.closed) if c)
        return self.serial[:5].ljust(5, b"\0") + bytes([0, 0, bits])

    def control_out(self, request: int, value: int, data: bytes) -> None:
        assert request == 0x09 and value == 0x0300 and len(data) == 2 and data[0] in (0xFF, 0xFD), (request, data)
        self.closed[data[1] - 1] = data[0] == 0xFF
