"""Gude Expert Power Control (EPC 1202 and kin) over its telnet console, as PDUDaemon's ``gude1202`` drives it.

This module owns the Gude dialogue: no login, ``port N state set 1|0`` answered by
``OK.``, then ``quit``. A console that asks for a login, or answers with an error,
stops the call with the device's words. The native name is ``gude_telnet``; ``gude1202``
takes PDUDaemon's ``hostname``/``telnetport`` options unchanged.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.drivers import DriverError, HostAddress
from pdumqtt.drivers.telnet import TelnetDriver, pdudaemon_address, shown

TELNET_PORT = 23
OK = rb"OK\."
LOGIN = rb"(?i)(?:user(?:name)?|login|password)\s*:"
ERROR = rb"(?i)[^\r\n]*(?:error|invalid|unknown|denied|not allowed)[^\r\n]*\r?\n"


class GudeTelnet(TelnetDriver):
    model = "Gude Expert Power Control (telnet console)"
    protocol = "telnet (Gude console: port N state set)"
    tested_against = "`gude_telnet` simulator (telnet on loopback)"
    can_read = False
    default_port = TELNET_PORT
    options = {vol.Required("host"): HostAddress(TELNET_PORT)}

    def set(self, port: int, on: bool) -> None:
        def work() -> None:
            command = f"port {port} state set {1 if on else 0}"
            self.session.line(command)
            found = self.session.expect([OK, LOGIN, ERROR], f"OK. after {command}")
            if found == 1:
                raise DriverError(f"{self.session.where} asks for a login on its console; the gude1202 dialogue "
                                  "has none: turn the console password off (or use the device's HTTP interface)")
            if found == 2:
                raise DriverError(f"{self.session.where} answered {command} with "
                                  f"{shown(self.session.after, self.session.secrets)}")
        self.call(work)

    def logout(self) -> None:
        self.session.goodbye(b"quit\r\n", [])


class Gude1202(GudeTelnet):
    """PDUDaemon's gude1202: ``hostname`` (or the PDU's name), ``telnetport`` (23)."""

    model = "Gude Expert Power Control 1202 (telnet)"
    native_driver = "gude_telnet"
    options = {
        vol.Optional("hostname"): str,
        vol.Optional("host"): str,
        vol.Optional("telnetport", default=23): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({"host": pdudaemon_address(options, pdu, TELNET_PORT)}, pdu=pdu, timeout=timeout)
