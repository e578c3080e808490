"""What the USB drivers share: hidapi and pyusb imported on first use, a device chosen by serial.

hidapi (module ``hid``) and pyusb (``usb.core``) are in the ``usb`` extra
(``pip install 'pdumqtt[usb]'``) and imported only when a USB PDU first talks to its
device, never at import or in ``__init__``: without them that PDU goes offline with an
error naming the extra, and every other PDU works. Each call finds the device afresh
(enumerate, pick by serial, open, exchange, close), so an unplugged device is an error
naming the serial asked for and the serials present, and a device plugged back in works
on the next call. A permission problem says which udev rule to install.
"""

from __future__ import annotations

import errno
import importlib
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError

EXTRA = "pip install 'pdumqtt[usb]'"
UDEV_RULES = "examples/udev/70-pdumqtt-usb.rules"
UDEV_HINT = (f"install {UDEV_RULES} (from pdumqtt's source) in /etc/udev/rules.d/, run "
             "`udevadm control --reload` and plug the device in again, or run pdumqtt as root")

T = TypeVar("T")

# Each PDU calls from a thread of its own; hidapi and libusb set themselves up on first use
# and enumerate through shared state, so finding and opening a device is done one at a time.
_BUS_LOCK = threading.Lock()


def import_hidapi() -> Any:
    """The hidapi module ``hid``; DriverError naming the extra when it is missing."""
    try:
        hid = importlib.import_module("hid")
    except ImportError:
        raise DriverError(f"this driver needs hidapi, which is not installed: {EXTRA}") from None
    if not hasattr(hid, "device") or not hasattr(hid, "enumerate"):
        # The PyPI package "hid" also installs a module named hid, with another API.
        raise DriverError("the installed 'hid' module is not hidapi's: pip uninstall hid, then " + EXTRA)
    return hid


def import_pyusb() -> tuple[Any, Any]:
    """pyusb's ``usb.core`` and ``usb.util``; DriverError naming the extra when it is missing."""
    try:
        return importlib.import_module("usb.core"), importlib.import_module("usb.util")
    except ImportError:
        raise DriverError(f"this driver needs pyusb, which is not installed: {EXTRA}") from None


def serial_text(value: Any) -> str:
    """Schema type: a serial number, kept as text (a number in YAML is taken as its digits)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise vol.Invalid("expected the device's serial number")
    text = str(value)
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise vol.Invalid("expected the device's serial number, without spaces")
    return text


def serial_or_empty(value: Any) -> str:
    """Schema type: PDUDaemon's ``serial`` with its default ``""`` (here: the one device plugged in)."""
    return "" if value == "" else serial_text(value)


def choose(candidates: Iterable[T], serial: str | None, serial_of: Callable[[T], str], what: str) -> T:
    """The candidate whose serial is ``serial`` (the only one when None); DriverError saying what was found."""
    found = [(serial_of(c), c) for c in candidates]
    serials = ", ".join(s or "(none)" for s, _ in found)
    if serial is None:
        if len(found) == 1:
            return found[0][1]
        if not found:
            raise DriverError(f"no {what} is plugged in")
        raise DriverError(f"{len(found)} {what} are plugged in (serials {serials}): set serial to choose one")
    for s, candidate in found:
        if s == serial:
            return candidate
    raise DriverError(f"no {what} with serial {serial!r} is plugged in; "
                      + (f"found serials {serials}" if found else "none is plugged in at all"))


def usb_id(vendor: int, products: Iterable[int]) -> str:
    return "USB " + ", ".join(f"{vendor:04x}:{p:04x}" for p in products)


class HidDriver(Driver):
    """A driver for a HID device found by vendor, product and serial, opened for each call."""

    vendor_id: ClassVar[int] = 0
    product_ids: ClassVar[tuple[int, ...]] = ()
    device_name: ClassVar[str] = "HID device"
    protocol = "USB HID (hidapi)"
    tested_against = "`tests/usb_mock.py` (a mock of hidapi's `hid` module)"

    def _serial(self) -> str | None:
        return self.config.get("serial") or None

    def _what(self) -> str:
        return f"{self.device_name} ({usb_id(self.vendor_id, self._product_ids())})"

    def _product_ids(self) -> tuple[int, ...]:
        return self.product_ids

    def _enumerate(self, hid: Any) -> list[dict[str, Any]]:
        infos: list[dict[str, Any]] = []
        for pid in self._product_ids():
            try:
                with _BUS_LOCK:
                    infos += hid.enumerate(self.vendor_id, pid)
            except OSError as exc:
                raise DriverError(f"cannot list USB HID devices: {exc}") from None
        return infos

    def serial_of(self, hid: Any, info: dict[str, Any]) -> str:
        """The serial number a device is chosen by; subclasses may read it from the device."""
        return str(info.get("serial_number") or "")

    def _find(self, hid: Any) -> dict[str, Any]:
        return choose(self._enumerate(hid), self._serial(), lambda info: self.serial_of(hid, info), self._what())

    def ping(self) -> None:
        """The device is on the bus (found by its serial), switching nothing: so a PDU that cannot
        read its outlets still goes offline when unplugged and online when plugged in again."""
        self._find(import_hidapi())

    def open_path(self, hid: Any, path: bytes, serial: str = "") -> Any:
        """An open ``hid.device`` for ``path``; DriverError with the udev hint on a permission problem."""
        device = hid.device()
        try:
            with _BUS_LOCK:
                device.open_path(path)
        except OSError as exc:
            detail = ""
            try:
                detail = device.error() or ""
            except (OSError, ValueError, AttributeError):
                pass
            name = path.decode(errors="replace") if isinstance(path, bytes) else str(path)
            who = f"the {self.device_name}" + (f" with serial {serial!r}" if serial else "") + f" ({name})"
            if "ermission denied" in detail or (os.path.exists(name) and not os.access(name, os.R_OK | os.W_OK)):
                raise DriverError(f"permission denied opening {who}: {UDEV_HINT}") from None
            raise DriverError(f"cannot open {who}: {detail or exc}") from None
        return device

    def exchange(self, report: list[int], reply: int, what: str) -> list[int]:
        """Write ``report`` to the chosen device; read ``reply`` bytes back (none when 0)."""
        hid = import_hidapi()
        info = self._find(hid)
        serial = str(info.get("serial_number") or "")
        device = self.open_path(hid, info["path"], serial)
        who = f"the {self.device_name}" + (f" {serial}" if serial else "")
        try:
            try:
                if device.write(report) < 0:
                    raise OSError("write failed")
                if not reply:
                    return []
                got = device.read(reply, int(self.timeout * 1000))
            except (OSError, ValueError) as exc:
                raise DriverError(f"{who} failed during {what} (unplugged?): {exc}") from None
            if not got:
                raise DriverError(f"no answer from {who} to {what} within {self.timeout:g} s")
            return list(got)
        finally:
            try:
                device.close()
            except OSError:
                pass


def usb_error(exc: BaseException, who: str, what: str) -> DriverError:
    """A DriverError for a pyusb error, with the udev hint for a permission problem."""
    code = getattr(exc, "errno", None)
    if code == errno.EACCES:
        return DriverError(f"permission denied on {who}: {UDEV_HINT}")
    if code == errno.ENODEV:
        return DriverError(f"{who} was unplugged during {what}")
    if code == errno.ETIMEDOUT:
        return DriverError(f"no answer from {who} to {what} (USB timeout)")
    return DriverError(f"{who} failed during {what}: {exc}")


class PyUsbDriver(Driver):
    """A driver for a USB device found with pyusb by vendor, product and serial, for each call."""

    vendor_id: ClassVar[int] = 0
    product_ids: ClassVar[tuple[int, ...]] = ()
    device_name: ClassVar[str] = "USB device"
    protocol = "USB control transfers (pyusb)"
    tested_against = "`tests/usb_mock.py` (a mock of pyusb's `usb.core`)"

    def _devices(self, core: Any) -> list[Any]:
        found: list[Any] = []
        try:
            with _BUS_LOCK:
                for pid in self.product_ids:
                    found += list(core.find(find_all=True, idVendor=self.vendor_id, idProduct=pid))
        except core.NoBackendError:
            raise DriverError("pyusb found no libusb to talk through: install libusb 1.0 "
                              "(apt-get install libusb-1.0-0)") from None
        except core.USBError as exc:
            raise usb_error(exc, "the USB bus", "listing devices") from None
        return found

    def serial_of(self, core: Any, util: Any, device: Any) -> str:
        """The serial number a device is chosen by, read from the device."""
        raise NotImplementedError

    def is_candidate(self, util: Any, device: Any) -> bool:
        """False for a device that shares the vendor and product id but is something else."""
        return True

    def _serial(self) -> str | None:
        return self.config.get("serial") or None

    def transfer(self, call: Callable[[Any, Any, Any], T], what: str) -> T:
        """Find the chosen device and run ``call(core, util, device)`` on it, USB errors made DriverErrors."""
        core, util = import_pyusb()
        devices = self._devices(core)
        name = f"{self.device_name} ({usb_id(self.vendor_id, self.product_ids)})"
        try:
            try:
                candidates = [d for d in devices if self.is_candidate(util, d)]
                device = choose(candidates, self._serial(), lambda d: self.serial_of(core, util, d), name)
                return call(core, util, device)
            except core.USBError as exc:
                raise usb_error(exc, f"the {self.device_name}", what) from None
            except ValueError as exc:  # pyusb's answer to string descriptors it may not read
                if "permission" in str(exc):
                    raise DriverError(f"permission denied on the {self.device_name}: {UDEV_HINT}") from None
                raise DriverError(f"the {self.device_name} failed during {what}: {exc}") from None
        finally:
            for device in devices:
                self.release(util, device)

    @staticmethod
    def release(util: Any, device: Any) -> None:
        try:
            util.dispose_resources(device)
        except Exception:  # releasing must not hide the answer, nor the real error
            pass
