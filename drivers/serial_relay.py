"""The serial link the USB relay drivers share: open on first use, reopen after an unplug.

USB serial adapters vanish when unplugged and come back, often at the same path
(``/dev/serial/by-id/...`` is stable; ``/dev/ttyACM0`` usually is too). Every I/O error
closes the port and becomes a DriverError naming the device, so the runner sends an
error ack; the next call opens the device afresh, which is what makes a re-plugged
device work again without restarting the daemon.
"""

from __future__ import annotations

import os
import select
import termios
import time
from typing import Any, ClassVar

import serial
import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError


def device_path(value: Any) -> str:
    """Schema type: a device path (or a pyserial URL such as ``rfc2217://host:port``)."""
    if not isinstance(value, str) or not value or "\0" in value:
        raise vol.Invalid("expected a serial device path such as /dev/ttyACM0")
    return value


SERIAL_OPTIONS: dict[Any, Any] = {
    vol.Required("device"): device_path,
}


class SerialLink:
    """One serial device, opened lazily, closed on any error."""

    def __init__(self, device: str, timeout: float, *, baudrate: int = 9600, stopbits: float = 1) -> None:
        self.device = device
        self.timeout = timeout
        self.baudrate = baudrate
        self.stopbits = stopbits
        self._port: serial.Serial | None = None

    def _open(self) -> serial.Serial:
        if self._port is None:
            try:
                self._port = serial.serial_for_url(self.device, baudrate=self.baudrate, stopbits=self.stopbits,
                                                   timeout=self.timeout, write_timeout=self.timeout)
            except (serial.SerialException, OSError, ValueError, termios.error) as exc:
                raise DriverError(f"cannot open {self.device}: {_reason(exc)}") from None
        return self._port

    def exchange(self, data: bytes, *, reply: int = 0, until: bytes | None = None, what: str = "") -> bytes:
        """Write ``data``; read ``reply`` bytes, or up to and including ``until``; return what was read."""
        port = self._open()
        what = what or "the command"
        try:
            # Bytes left over from an earlier answer that came too late would be read as this one's.
            port.reset_input_buffer()
            self._write(port, data)
            port.flush()
            if until is not None:
                got = self._read(port, until=until)
                complete = got.endswith(until)
            elif reply:
                got = self._read(port, reply)
                complete = len(got) == reply
            else:
                return b""
        except (serial.SerialException, OSError, termios.error) as exc:
            # termios.error is not an OSError: a vanished tty raises it from tcflush and friends.
            self.close()
            raise DriverError(f"{self.device} failed during {what}: {_reason(exc)}") from None
        if not complete:
            raise DriverError(f"no complete answer from {self.device} to {what} within {self.timeout:g} s")
        return got

    def read(self, count: int, *, what: str = "") -> bytes:
        """Read ``count`` more bytes of an answer already asked for (a chain of devices answering in turn)."""
        port = self._open()
        what = what or "the command"
        try:
            got = self._read(port, count)
        except (serial.SerialException, OSError, termios.error) as exc:
            self.close()
            raise DriverError(f"{self.device} failed during {what}: {_reason(exc)}") from None
        if len(got) != count:
            raise DriverError(f"no complete answer from {self.device} to {what} within {self.timeout:g} s")
        return got

    # A device path's reads and writes wait with poll on its descriptor, not through pyserial,
    # whose Serial waits with select(): that cannot watch a descriptor above 1023, which a daemon
    # with many PDUs holds (and the poll variant of pyserial 3.5 fails on a read that times out).
    # A URL's port (rfc2217://, socket://) has no descriptor of its own and keeps pyserial's waits.

    def _write(self, port: serial.Serial, data: bytes) -> None:
        fd = getattr(port, "fd", None)
        if not isinstance(fd, int):
            port.write(data)
            return
        deadline = time.monotonic() + self.timeout
        left = memoryview(data)
        while left:
            try:
                left = left[os.write(fd, left):]  # pyserial opens the device non-blocking
            except BlockingIOError:
                pass
            if left and not _ready(fd, select.POLLOUT, deadline):
                raise serial.SerialTimeoutException(f"write timeout: {len(left)} of {len(data)} bytes not taken")

    def _read(self, port: serial.Serial, count: int = 0, *, until: bytes | None = None) -> bytes:
        """``count`` bytes, or up to and including ``until``; what came, once the timeout has passed."""
        deadline = time.monotonic() + self.timeout
        fd = getattr(port, "fd", None)
        if not isinstance(fd, int):
            if until is not None:
                return port.read_until(until)
            got = b""
            while len(got) < count and time.monotonic() < deadline:
                got += port.read(count - len(got))
            return got
        got = bytearray()
        while not got.endswith(until) if until is not None else len(got) < count:
            if not _ready(fd, select.POLLIN, deadline):
                break
            try:
                chunk = os.read(fd, 1 if until is not None else count - len(got))
            except BlockingIOError:
                continue
            if not chunk:  # readable, yet nothing: the device went away
                raise serial.SerialException("device reports readiness to read but returned no data "
                                             "(device disconnected?)")
            got += chunk
        return bytes(got)

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError, termios.error):
                pass
            self._port = None


def _ready(fd: int, events: int, deadline: float) -> bool:
    """Whether ``fd`` is ready for ``events`` (or broken: the next read or write says how) by ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    poller = select.poll()
    poller.register(fd, events)
    return bool(poller.poll(left * 1000))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, termios.error | serial.SerialException) and exc.args and isinstance(exc.args[0], int):
        # pyserial's open errors carry the errno first and repeat the path after it.
        return os.strerror(exc.args[0])
    text = str(exc)
    # pyserial repeats the path and errno in its messages; keep them short.
    return text[:200] or type(exc).__name__


class SerialDriver(Driver):
    """A driver that talks through one :class:`SerialLink`."""

    baudrate: ClassVar[int] = 9600
    stopbits: ClassVar[float] = 1

    @property
    def link(self) -> SerialLink:
        link = getattr(self, "_link", None)
        if link is None:
            link = self._link = SerialLink(self.config["device"], self.timeout,
                                           baudrate=self.config.get("baudrate") or self.baudrate,
                                           stopbits=self.stopbits)
        return link

    def close(self) -> None:
        link = getattr(self, "_link", None)
        if link is not None:
            link.close()
