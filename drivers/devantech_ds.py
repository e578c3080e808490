"""Devantech dS378 / dS2824 relay modules over their ASCII protocol on TCP 17123.

Commands are text lines: ``SR n on|off [ms]`` sets relay n (pulsed when a time is
given), ``GR n`` answers ``Active`` or ``Inactive``. Firmware versions differ on
whether ``SR`` answers (``Ok``) or not, so every switch is followed by ``GR n`` and
the driver reads lines until the state: that both confirms the switch and skips any
acknowledgement. One short connection per call, as with the ETH boards.
"""

from __future__ import annotations

import socket
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, HostAddress, NoSuchOutlet, split_host
from pdumqtt.drivers.devantech_eth import PDUDAEMON_ADDRESS, pdudaemon_host

DEFAULT_PORT = 17123
BOARDS = {"ds378": 8, "ds2824": 24}

BASE_OPTIONS: dict[Any, Any] = {
    vol.Optional("board", default="ds2824"): vol.All(vol.Lower, vol.In(sorted(BOARDS))),
    # Seconds the relay stays switched before it reverts; 0 = latched.
    vol.Optional("pulse", default=0): vol.All(vol.Coerce(float), vol.Range(min=0, max=3600)),
}


class DevantechDs(Driver):
    model = "Devantech dS relay module"
    protocol = "TCP ASCII (port 17123)"
    tested_against = "`devantech_ds` simulator (TCP on loopback)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {vol.Required("host"): HostAddress(DEFAULT_PORT), **BASE_OPTIONS}

    def _check_port(self, port: int) -> None:
        relays = BOARDS[self.config["board"]]
        if not 1 <= port <= relays:
            raise NoSuchOutlet(f"relay {port} does not exist: the {self.config['board']} has {relays}")

    def _exchange(self, lines: list[str], port: int) -> bool:
        """Send ``lines`` then ``GR port``; return the relay's state from the answer."""
        host, tcp_port = split_host(self.config["host"], DEFAULT_PORT)
        where = f"{host}:{tcp_port}"
        try:
            with socket.create_connection((host, tcp_port), timeout=self.timeout) as sock:
                sock.sendall("".join(f"{line}\r\n" for line in [*lines, f"GR {port}"]).encode("ascii"))
                return self._read_state(sock.makefile("rb"), where, port)
        except TimeoutError:
            raise DriverError(f"no answer from {where} within {self.timeout:g} s") from None
        except OSError as exc:
            raise DriverError(f"cannot talk to {where}: {exc.strerror or exc}") from None

    @staticmethod
    def _read_state(stream: Any, where: str, port: int) -> bool:
        for _ in range(8):
            raw = stream.readline(200)
            if not raw:
                raise DriverError(f"{where} closed the connection before saying relay {port}'s state")
            word = raw.decode("ascii", errors="replace").strip().lower()
            if word == "active":
                return True
            if word == "inactive":
                return False
            if word and word not in ("ok",):
                raise DriverError(f"{where} answered {word[:40]!r}, expected Active or Inactive")
        raise DriverError(f"{where} never said relay {port}'s state")

    def set(self, port: int, on: bool) -> None:
        self._check_port(port)
        pulse = round(self.config["pulse"] * 1000)
        command = f"SR {port} {'on' if on else 'off'}" + (f" {pulse}" if pulse else "")
        state = self._exchange([command], port)
        if state != on and not pulse:
            raise DriverError(f"relay {port} did not switch {'on' if on else 'off'}")

    def get(self, port: int) -> bool:
        self._check_port(port)
        return self._exchange([], port)


class DevantechDsPdudaemon(DevantechDs):
    """PDUDaemon's ``devantech_ds378``/``devantech_ds2824``: options ``ip`` and ``port``."""

    native_driver = "devantech_ds"

    options: ClassVar[dict[Any, Any]] = {**PDUDAEMON_ADDRESS, **BASE_OPTIONS}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(pdudaemon_host(options), pdu=pdu, timeout=timeout)


def _fixed_board(board: str) -> dict[Any, Any]:
    # Drop the inherited key first: an equal voluptuous marker would keep its old default.
    options = {k: v for k, v in DevantechDsPdudaemon.options.items() if str(k) != "board"}
    return {**options, vol.Optional("board", default=board): vol.In([board])}


class DevantechDS378(DevantechDsPdudaemon):
    fixed_ports = BOARDS["ds378"]
    options: ClassVar[dict[Any, Any]] = _fixed_board("ds378")


class DevantechDS2824(DevantechDsPdudaemon):
    fixed_ports = BOARDS["ds2824"]
    options: ClassVar[dict[Any, Any]] = _fixed_board("ds2824")
