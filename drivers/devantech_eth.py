"""Devantech ETH relay boards (ETH002, ETH008, ETH484, ETH8020, ETH0621) over TCP 17494.

One short session per call: connect, log in with ``0x79`` when a password is set,
send one 3-byte frame (``0x20``/``0x21`` relay pulse) or read the outputs with ``0x24``,
log out with ``0x7B``, close. A fresh session per call keeps us clear of the board's
idle re-lock (30 s) and of half-open sockets after the board reboots. When a board
refuses a relay, ``0x10`` (module id, hardware and firmware version) tells which board
it is, so a wrong ``board`` setting is named in the error.
``logic: NC`` is for loads wired to the normally-closed contact: there the relay
being active means the outlet is off, so on/off and the states read are inverted.
The PDUDaemon driver names (``devantech_eth008`` ...) are subclasses taking its
option names (``ip``, ``port``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, HostAddress, NoSuchOutlet, split_host

DEFAULT_PORT = 17494

MODULE_INFO, ON, OFF, GET_OUTPUTS, LOGIN, UNLOCK_TIME, LOGOUT = 0x10, 0x20, 0x21, 0x24, 0x79, 0x7A, 0x7B


class Board(NamedTuple):
    relays: int
    state_bytes: int  # length of the 0x24 reply
    module_id: int  # first byte of the 0x10 module info reply


# Module ids as the vendor's manuals give them for 0x10 (GET MODULE INFO).
BOARDS: dict[str, Board] = {
    "eth002": Board(2, 1, 18),
    "eth008": Board(8, 1, 19),
    # ETH484's 0x24 reply is two bytes (relays, then the I/O lines); set state_bytes if yours differs.
    "eth484": Board(4, 2, 20),
    "eth8020": Board(20, 3, 21),
    "eth0621": Board(2, 1, 23),
}
BOARD_BY_MODULE_ID = {board.module_id: name for name, board in BOARDS.items()}


def describe_module(module_id: int) -> str:
    """What a module id means, for messages: ``ETH008 (module id 19, 8 relays)``."""
    name = BOARD_BY_MODULE_ID.get(module_id)
    if name is None:
        return f"module id {module_id}, not a board we know"
    return f"{name.upper()} (module id {module_id}, {BOARDS[name].relays} relays)"


def _password(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected a non-empty password")
    if len(value.encode()) > 32:
        raise vol.Invalid("the board takes passwords of at most 32 bytes")
    return value


BASE_OPTIONS: dict[Any, Any] = {
    vol.Optional("board", default="eth008"): vol.All(vol.Lower, vol.In(sorted(BOARDS))),
    vol.Optional("password"): _password,
    vol.Optional("logic", default="NO"): vol.All(vol.Upper, vol.In(["NO", "NC"])),
    # Seconds the relay stays switched before it reverts (100 ms steps); 0 = latched.
    vol.Optional("pulse", default=0): vol.All(vol.Coerce(float), vol.Range(min=0, max=25.5)),
    vol.Optional("state_bytes"): vol.All(int, vol.Range(min=1, max=8)),
}


def recv_exact(sock: socket.socket, n: int, what: str, where: str, timeout: float) -> bytes:
    """Read exactly ``n`` bytes or raise a DriverError saying what was missing."""
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except TimeoutError:
            raise DriverError(f"no answer from {where} to {what} within {timeout:g} s") from None
        except OSError as exc:
            raise DriverError(f"connection to {where} failed during {what}: {exc.strerror or exc}") from None
        if not chunk:
            raise DriverError(f"{where} closed the connection during {what}")
        data += chunk
    return data


class DevantechEth(Driver):
    model = "Devantech ETH relay board"
    protocol = "raw TCP (binary frames, port 17494)"
    tested_against = "`devantech_eth` simulator (TCP on loopback)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {vol.Required("host"): HostAddress(DEFAULT_PORT), **BASE_OPTIONS}

    @property
    def board(self) -> Board:
        return BOARDS[self.config["board"]]

    def _address(self) -> tuple[str, int]:
        return split_host(self.config["host"], DEFAULT_PORT)

    @contextmanager
    def _session(self) -> Iterator[tuple[socket.socket, str]]:
        host, port = self._address()
        where = f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=self.timeout)
        except TimeoutError:
            raise DriverError(f"no connection to {where} within {self.timeout:g} s") from None
        except OSError as exc:
            raise DriverError(f"cannot connect to {where}: {exc.strerror or exc}") from None
        try:
            password = self.config.get("password")
            if password:
                self._send(sock, bytes([LOGIN]) + password.encode(), "login", where)
                reply = recv_exact(sock, 1, "login", where, self.timeout)
                if reply == b"\x02":
                    raise DriverError(f"{where} refused the password")
                if reply != b"\x01":
                    raise DriverError(f"{where} answered the login with 0x{reply.hex()}, expected 0x01")
            yield sock, where
            if password:
                # A failed logout only shortens nothing: the board re-locks after 30 s idle.
                try:
                    sock.sendall(bytes([LOGOUT]))
                    sock.recv(1)
                except OSError:
                    pass
        finally:
            sock.close()

    @staticmethod
    def _send(sock: socket.socket, frame: bytes, what: str, where: str) -> None:
        try:
            sock.sendall(frame)
        except OSError as exc:
            raise DriverError(f"cannot send {what} to {where}: {exc.strerror or exc}") from None

    def _check_port(self, port: int) -> None:
        if not 1 <= port <= self.board.relays:
            raise NoSuchOutlet(f"relay {port} does not exist: the {self.config['board']} has {self.board.relays}")

    def set(self, port: int, on: bool) -> None:
        self._check_port(port)
        active = on != (self.config["logic"] == "NC")
        pulse = round(self.config["pulse"] * 10)
        with self._session() as (sock, where):
            what = f"switching relay {port}"
            self._send(sock, bytes([ON if active else OFF, port, pulse]), what, where)
            reply = recv_exact(sock, 1, what, where, self.timeout)
            if reply == b"\x00":
                return
            if reply == b"\x01":
                raise DriverError(self._refusal(sock, where, port))
            raise DriverError(f"{where} answered {what} with 0x{reply.hex()}, expected 0x00")

    def _refusal(self, sock: socket.socket, where: str, port: int) -> str:
        """Say why the board refused: most often a password is needed and not configured,
        else the board is not the one configured (relay beyond its count)."""
        if not self.config.get("password"):
            try:
                sock.sendall(bytes([UNLOCK_TIME]))
                if recv_exact(sock, 1, "unlock time", where, self.timeout) == b"\x00":
                    return f"{where} is password protected: set the password option"
            except (OSError, DriverError):
                pass
        try:
            module_id = self._module_info(sock, where)[0]
        except (OSError, DriverError):
            return f"{where} refused to switch relay {port}"
        if module_id != self.board.module_id:
            return (f"{where} refused to switch relay {port}: the board reports {describe_module(module_id)}, "
                    f"not the configured {self.config['board']}")
        return f"{where} refused to switch relay {port}"

    def _module_info(self, sock: socket.socket, where: str) -> bytes:
        self._send(sock, bytes([MODULE_INFO]), "module info", where)
        return recv_exact(sock, 3, "module info", where, self.timeout)

    def module_info(self) -> tuple[int, int, int]:
        """Ask the board for its module id, hardware and firmware version (``0x10``)."""
        with self._session() as (sock, where):
            module_id, hardware, firmware = self._module_info(sock, where)
        return module_id, hardware, firmware

    def get(self, port: int) -> bool:
        self._check_port(port)
        count = self.config.get("state_bytes") or self.board.state_bytes
        with self._session() as (sock, where):
            self._send(sock, bytes([GET_OUTPUTS]), "reading the outputs", where)
            states = recv_exact(sock, count, "reading the outputs", where, self.timeout)
        index = port - 1
        active = bool(states[index // 8] >> (index % 8) & 1)
        return active != (self.config["logic"] == "NC")


def pdudaemon_host(options: dict[str, Any]) -> dict[str, Any]:
    """PDUDaemon's ``ip`` and ``port`` options become our ``host``."""
    options = dict(options)
    ip = options.pop("ip")
    host = f"[{ip}]" if ":" in ip else ip
    port = options.pop("port", None)
    options["host"] = f"{host}:{port}" if port else host
    return options


def _ip(value: Any) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise vol.Invalid("expected a host name or address")
    return value


PDUDAEMON_ADDRESS: dict[Any, Any] = {
    vol.Required("ip"): _ip,
    vol.Optional("port"): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
}


def _pdudaemon_class(name: str, board: str) -> type[DevantechEth]:
    class Compat(DevantechEth):
        model = f"Devantech {board.upper()}"
        native_driver = "devantech_eth"
        fixed_ports = BOARDS[board].relays
        options: ClassVar[dict[Any, Any]] = {
            **PDUDAEMON_ADDRESS,
            **{k: v for k, v in BASE_OPTIONS.items() if str(k) != "board"},
            vol.Optional("board", default=board): vol.In([board]),
        }

        def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
            super().__init__(pdudaemon_host(options), pdu=pdu, timeout=timeout)

    Compat.__name__ = Compat.__qualname__ = name
    return Compat


# PDUDaemon's names: options ip, port, password, logic.
DevantechETH002 = _pdudaemon_class("DevantechETH002", "eth002")
DevantechETH008 = _pdudaemon_class("DevantechETH008", "eth008")
DevantechETH484 = _pdudaemon_class("DevantechETH484", "eth484")
DevantechETH8020 = _pdudaemon_class("DevantechETH8020", "eth8020")
DevantechETH0621 = _pdudaemon_class("DevantechETH0621", "eth0621")
