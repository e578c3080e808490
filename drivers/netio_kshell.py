"""NETIO 4 / 4All / 4C (and later NETIO PowerPDUs) over KSHELL, the telnet M2M API on TCP 1234.

This module owns the KSHELL dialogue as PDUDaemon's ``netio4`` speaks it: an empty line
first (answered ``502 UNKNOWN COMMAND``), ``login <user> <password>`` -> ``250 OK``,
``port N 1|0`` -> ``250 OK``, ``quit`` -> ``110 BYE``; and ``port N``, which answers
the output's state (``250 1`` or ``250 0``), for ``get``. Any ``5xx`` answer is the
device refusing, quoted in the error. KSHELL is off by default on the device: enable
Telnet/KSHELL under M2M API Protocols. ``netio_kshell`` is the native name; ``netio4``
takes PDUDaemon's options unchanged.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.drivers import DriverError, HostAddress
from pdumqtt.drivers.telnet import TelnetDriver, pdudaemon_address, shown

KSHELL_PORT = 1234
# Answers start a line: the greeting's random hash could hold "512 " or "250 ".
OK = rb"(?m)^250 OK"
STATE = rb"(?m)^250 ([01])(?![0-9])"
REFUSED = rb"(?m)^5\d\d [^\r\n]*\r?\n"  # the whole line, to quote it


class NetioKshell(TelnetDriver):
    model = "NETIO 4 / 4All / 4C (KSHELL)"
    protocol = "telnet (NETIO KSHELL, TCP 1234)"
    tested_against = "`netio_kshell` simulator (KSHELL on loopback)"
    can_read = True
    default_port = KSHELL_PORT
    options = {
        vol.Required("host"): HostAddress(KSHELL_PORT),
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
    }

    def _ask(self, command: str, answer: bytes) -> bytes:
        """Send a KSHELL command and wait for ``answer``; a ``5xx`` instead is the device's refusal, quoted."""
        self.session.line(command)
        if self.session.expect([answer, REFUSED], f"the answer to {command}") == 1:
            raise DriverError(f"{self.session.where} answered {command} with "
                              f"{shown(self.session.after, self.session.secrets)}")
        return self.session.after

    def login(self) -> None:
        self.session.line("")
        self.session.expect([rb"(?m)^502 UNKNOWN COMMAND", REFUSED], "KSHELL's 502 UNKNOWN COMMAND to an empty line")
        self.session.line(f"login {self.config['username']} {self.config['password']}")
        if self.session.expect([OK, REFUSED], "the answer to login") == 1:
            raise DriverError(f"{self.session.where} refused the login "
                              f"({shown(self.session.after, self.session.secrets)}): wrong username or password, "
                              "or the user may not use the M2M API")

    def logout(self) -> None:
        self.session.goodbye(b"quit\r\n", [rb"110 BYE"])

    def set(self, port: int, on: bool) -> None:
        self.call(lambda: self._ask(f"port {port} {1 if on else 0}", OK))

    def get(self, port: int) -> bool:
        return self.call(lambda: self._ask(f"port {port}", STATE)) == b"250 1"


class Netio4(NetioKshell):
    """PDUDaemon's netio4: ``hostname`` (or the PDU's name), ``telnetport`` (1234), ``username``, ``password``."""

    model = "NETIO 4 (KSHELL)"
    native_driver = "netio_kshell"
    fixed_ports = 4
    options = {
        vol.Optional("hostname"): str,
        vol.Optional("host"): str,
        vol.Optional("telnetport", default=1234): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours = {"host": pdudaemon_address(options, pdu, KSHELL_PORT), "username": options["username"],
                "password": options["password"]}
        super().__init__(ours, pdu=pdu, timeout=timeout)
