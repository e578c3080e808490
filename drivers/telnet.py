"""One telnet session on a plain socket, shared by every telnet driver (APC, Gude, NETIO, Synaccess).

This module owns the connection and nothing of any device's dialogue: a TCP socket
driven by pexpect's ``fdspawn`` (no ``telnet`` program), telnet IAC negotiation answered
and stripped from the data, one deadline per driver call that every wait fits inside,
and errors a person can act on (host, what was awaited, what came instead). It also
turns PDUDaemon's address options (the PDU's name or ``hostname``/``host``, plus
``telnetport``) into one ``host:port``, where a port written in the host wins.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import pexpect
from pexpect.fdpexpect import fdspawn

from pdumqtt.drivers import Driver, DriverError, join_host, parse_host, split_host

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA = 1, 3
T = TypeVar("T")


class SessionLost(DriverError):
    """The connection broke: a kept-alive session is worth one fresh try."""


class TelnetSpawn(fdspawn):  # type: ignore[misc]
    """pexpect on a socket, with telnet commands answered and removed from the data."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self._iac = b""  # an IAC sequence cut between two reads
        # poll, not select: select cannot watch a descriptor above 1023, which a daemon with many PDUs has
        super().__init__(sock.fileno(), timeout=timeout, maxread=4096, use_poll=True)

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> bytes:
        data = self._iac + super().read_nonblocking(size, timeout)
        self._iac = b""
        out = bytearray()
        i = 0
        while i < len(data):
            b = data[i]
            if b != IAC:
                out.append(b)
                i += 1
                continue
            if i + 1 >= len(data):
                self._iac = data[i:]
                break
            cmd = data[i + 1]
            if cmd in (DO, DONT, WILL, WONT):
                if i + 2 >= len(data):
                    self._iac = data[i:]
                    break
                self._negotiate(cmd, data[i + 2])
                i += 3
            elif cmd == SB:
                end = data.find(bytes([IAC, SE]), i)
                if end < 0:
                    self._iac = data[i:]
                    break
                i = end + 2
            elif cmd == IAC:
                out.append(IAC)
                i += 2
            else:
                i += 2
        return bytes(out)

    def _negotiate(self, cmd: int, option: int) -> None:
        # Let the device echo and suppress go-ahead (what APC asks for); refuse the rest.
        if cmd == WILL:
            reply = DO if option in (ECHO, SGA) else DONT
        elif cmd == DO:
            reply = WILL if option == SGA else WONT
        else:
            return
        self.sock.sendall(bytes([IAC, reply, option]))


def shown(data: bytes, secrets: tuple[str, ...] = (), limit: int = 80) -> str:
    """The last bytes a device sent, printable and with any secret it echoed masked, for an error message."""
    text = " ".join(data.decode(errors="replace").split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    if not text:
        return "nothing"
    return repr(text if len(text) <= limit else "..." + text[-limit:])


class TelnetSession:
    """A telnet connection with a deadline: ``expect`` and ``send`` raise DriverError with the reason."""

    def __init__(self, host: str, port: int, timeout: float, secrets: tuple[str, ...] = ()) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.secrets = secrets  # masked wherever device output is quoted in an error
        self.deadline = 0.0
        self._spawn: TelnetSpawn | None = None

    @property
    def where(self) -> str:
        return join_host(self.host, self.port)

    @property
    def is_open(self) -> bool:
        return self._spawn is not None

    def start_call(self) -> None:
        """Start the clock of one driver call: every wait until the next call fits inside ``timeout``."""
        # a little short of the runner's own limit, so the reason given is ours (host, what we awaited)
        self.deadline = time.monotonic() + self.timeout - min(0.25, self.timeout / 10)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=max(0.1, self.left()))
        except TimeoutError:
            raise DriverError(f"cannot connect to {self.where}: no answer within {self.timeout:g} s") from None
        except OSError as e:
            raise DriverError(f"cannot connect to {self.where}: {e.strerror or e}") from None
        sock.settimeout(None)
        self._spawn = TelnetSpawn(sock, self.timeout)

    @property
    def before(self) -> bytes:
        """What came before the last match."""
        assert self._spawn is not None
        return bytes(self._spawn.before or b"")

    @property
    def after(self) -> bytes:
        """The last match itself."""
        assert self._spawn is not None
        after = self._spawn.after
        return after if isinstance(after, bytes) else b""

    def expect(self, patterns: list[bytes], what: str) -> int:
        """Wait for one of ``patterns`` (regular expressions); the index of the one that came."""
        assert self._spawn is not None
        left = self.left()
        if left <= 0:
            raise DriverError(f"{self.where} took longer than {self.timeout:g} s; gave up while waiting for {what}")
        try:
            return self._spawn.expect(patterns, timeout=left)
        except pexpect.TIMEOUT:
            came = shown(self._spawn.buffer or b"", self.secrets)
            raise DriverError(f"no answer from {self.where} within {self.timeout:g} s while waiting for {what} "
                              f"(it sent {came})") from None
        except pexpect.EOF:
            raise SessionLost(f"{self.where} closed the connection while we waited for {what}") from None
        except OSError as e:
            raise SessionLost(f"connection to {self.where} failed while waiting for {what}: {e.strerror or e}") \
                from None

    def send(self, data: bytes) -> None:
        assert self._spawn is not None
        try:
            self._spawn.sock.sendall(data)
        except OSError as e:
            raise SessionLost(f"connection to {self.where} lost: {e.strerror or e}") from None

    def line(self, text: str) -> None:
        """Send one line, ended as a telnet client ends it (CR LF)."""
        self.send(text.encode() + b"\r\n")

    def goodbye(self, data: bytes, patterns: list[bytes], wait: float = 2.0) -> None:
        """Send a logout and wait briefly for one of ``patterns`` or the hang-up; then close. Never raises."""
        spawn, self._spawn = self._spawn, None
        if spawn is None:
            return
        try:
            spawn.sock.sendall(data)
            spawn.expect([*patterns, pexpect.EOF], timeout=min(wait, max(0.1, self.left())))
        except (OSError, pexpect.TIMEOUT, pexpect.EOF):
            pass
        finally:
            spawn.sock.close()

    def close(self) -> None:
        spawn, self._spawn = self._spawn, None
        if spawn is not None:
            try:
                spawn.sock.close()
            except OSError:
                pass


def host_and_port(address: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]``, ``[v6]:port`` (a bare IPv6 address has no port)."""
    try:
        return parse_host(address)
    except ValueError as e:
        raise DriverError(str(e)) from None


def pdudaemon_address(options: dict[str, Any], pdu: str, default_port: int, port_key: str = "telnetport") -> str:
    """PDUDaemon's address options as one ``host:port``.

    The host is ``host``, ``hostname`` or, as in pdudaemon.conf, the PDU's own name. A
    port written in the host (``127.0.0.1:2323``) wins over ``telnetport``'s default;
    a ``telnetport`` other than the default and other than the host's port is a mistake
    we name.
    """
    address = str(options.get("host") or options.get("hostname") or pdu or "")
    if not address:
        raise DriverError("no address: set hostname (or host), or name the PDU after its host")
    host, port = host_and_port(address)
    given = options.get(port_key)
    if port is not None and given is not None and int(given) not in (port, default_port):
        key = "host" if options.get("host") else "hostname"
        raise DriverError(f"{key} {address!r} gives port {port} but {port_key} is {given}: keep one of them")
    port = port if port is not None else int(given) if given is not None else default_port
    return join_host(host, port)


class TelnetDriver(Driver):
    """A driver that opens one telnet session per call: connect, ``login``, the work, ``logout``.

    Subclasses set ``default_port`` and the device's dialogue; ``self.session`` does the I/O.
    """

    default_port: ClassVar[int] = 23
    options: ClassVar[dict[Any, Any]] = {}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        host, port = split_host(options["host"], self.default_port)
        self.session = TelnetSession(host, port, timeout, secrets=(str(options.get("password") or ""),))

    def login(self) -> None:
        """Whatever the device wants before it takes commands (nothing by default)."""

    def logout(self) -> None:
        self.session.close()

    def call(self, work: Callable[[], T]) -> T:
        self.session.start_call()
        try:
            self.session.connect()
            self.login()
            result = work()
        except BaseException:
            self.session.close()
            raise
        self.logout()
        return result

    def ping(self) -> None:
        """Log in and out again: the device answers (the runner's probe for drivers that cannot read)."""
        self.call(lambda: None)

    def close(self) -> None:
        self.session.close()
