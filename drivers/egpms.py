"""Energenie EG-PMS-LAN (and EG-PM2-LAN) on its binary TCP protocol, port 5000.

A session: we send ``0x11``; the device sends a 4-byte challenge; we answer 4 bytes
computed from it and the password (8 bytes, space-padded); the device sends its 4 socket
states, encoded with the challenge and password, last socket first. To switch, we send
4 encoded commands the same way (1 on, 2 off, 4 leave alone) and the device answers
with the new states; a lone ``0x11`` ends the session (the device otherwise waits
4 s before it takes the next one). A decoded state's high nibble is 1 for on, 2 for off.
A wrong password gets no states: the device hangs up (or says nothing).
The encoding is PDUDaemon's ``egpms.py`` (after egctl); PDUDaemon's ``egpms`` takes
``ip`` and ``password``.
"""

from __future__ import annotations

import socket
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, HostAddress, NoSuchOutlet, split_host
from pdumqtt.drivers.devantech_eth import recv_exact

DEFAULT_PORT = 5000
SOCKETS = 4
START = b"\x11"
SWITCH_ON, SWITCH_OFF, LEAVE = 0x1, 0x2, 0x4


def password_bytes(password: str) -> bytes:
    """The 8 bytes the device keys on: the password, space-padded or cut to 8."""
    return (password.encode() + b" " * 8)[:8]


def auth_response(challenge: bytes, key: bytes) -> bytes:
    """The 4 bytes that answer ``challenge`` for password bytes ``key``."""
    out = b""
    for part in (0, 1):
        value = (challenge[part] ^ key[part + 2]) * key[part]
        value ^= key[part + 4] << 8 | key[part + 6]
        value ^= challenge[part + 2]
        out += bytes([value & 0xFF, value >> 8 & 0xFF])
    return out


def encode(value: int, challenge: bytes, key: bytes) -> int:
    return ((((value ^ challenge[2]) + challenge[3]) & 0xFF ^ key[0]) + key[1]) & 0xFF


def decode(value: int, challenge: bytes, key: bytes) -> int:
    return ((((value - key[1]) & 0xFF ^ key[0]) - challenge[3]) & 0xFF ^ challenge[2]) & 0xFF


def _password(value: Any) -> str:
    if not isinstance(value, str):
        raise vol.Invalid("expected the device's password (up to 8 characters)")
    if len(value.encode()) > 8:
        raise vol.Invalid("the EG-PMS-LAN keys on 8 bytes: a longer password cannot log in")
    return value


class EgPmsLan(Driver):
    model = "Energenie EG-PMS-LAN"
    protocol = "raw TCP (challenge/response, port 5000)"
    tested_against = "`egpms` simulator (TCP on loopback)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        vol.Required("host"): HostAddress(DEFAULT_PORT),
        vol.Required("password"): _password,
    }

    def _check(self, port: int) -> None:
        if not 1 <= port <= SOCKETS:
            raise NoSuchOutlet(f"socket {port} does not exist: the EG-PMS-LAN has {SOCKETS}")

    def _states(self, data: bytes, challenge: bytes, key: bytes, where: str) -> list[bool]:
        """Socket 1 first: the device sends the last socket first."""
        states = []
        for raw in reversed(data):
            value = decode(raw, challenge, key)
            if value >> 4 not in (1, 2):
                raise DriverError(f"{where} sent the state 0x{value:02x}, expected 0x1_ (on) or 0x2_ (off): "
                                  "is the password right, and is this an EG-PMS-LAN?")
            states.append(value >> 4 == 1)
        return states

    def _session(self, port: int, switch: bool | None) -> bool:
        self._check(port)
        host, tcp_port = split_host(self.config["host"], DEFAULT_PORT)
        where = f"{host}:{tcp_port}"
        key = password_bytes(self.config["password"])
        try:
            sock = socket.create_connection((host, tcp_port), timeout=self.timeout)
        except TimeoutError:
            raise DriverError(f"no connection to {where} within {self.timeout:g} s") from None
        except OSError as exc:
            raise DriverError(f"cannot connect to {where}: {exc.strerror or exc}") from None
        try:
            sock.sendall(START)
            challenge = recv_exact(sock, 4, "the session start (its challenge)", where, self.timeout)
            sock.sendall(auth_response(challenge, key))
            try:
                data = recv_exact(sock, SOCKETS, "the login", where, self.timeout)
            except DriverError as exc:
                raise DriverError(f"{exc}: wrong password? (the device answers one with silence)") from None
            states = self._states(data, challenge, key, where)
            if switch is not None:
                commands = [encode(LEAVE if n != port else SWITCH_ON if switch else SWITCH_OFF, challenge, key)
                            for n in range(1, SOCKETS + 1)]
                sock.sendall(bytes(reversed(commands)))
                data = recv_exact(sock, SOCKETS, f"switching socket {port}", where, self.timeout)
                states = self._states(data, challenge, key, where)
                if states[port - 1] != switch:
                    raise DriverError(f"{where} reports socket {port} {'off' if switch else 'on'} after "
                                      f"switching it {'on' if switch else 'off'}")
            try:
                sock.sendall(START)  # ends the session now rather than after the device's 4 s wait
            except OSError:
                pass
            return states[port - 1]
        except OSError as exc:
            raise DriverError(f"connection to {where} failed: {exc.strerror or exc}") from None
        finally:
            sock.close()

    def set(self, port: int, on: bool) -> None:
        self._session(port, on)

    def get(self, port: int) -> bool:
        return self._session(port, None)


class EgPMS(EgPmsLan):
    """PDUDaemon's ``egpms``: ``ip`` (the port is always 5000) and ``password``."""

    native_driver = "egpms_lan"
    fixed_ports = SOCKETS
    options: ClassVar[dict[Any, Any]] = {
        vol.Required("ip"): HostAddress(DEFAULT_PORT),
        vol.Required("password"): _password,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        options = dict(options)
        super().__init__({"host": options.pop("ip"), **options}, pdu=pdu, timeout=timeout)
