"""Synaccess netBooter (Series B: NP-02B, NP-05B, NP-08B) over telnet, as PDUDaemon's ``synnetbooter`` drives it.

This module owns the netBooter dialogue: the ``>`` prompt, ``login`` -> ``User ID:`` ->
``Password:`` -> ``>``, then ``pset N 1|0`` and ``exit``. What the device prints before a
prompt is checked for its refusals (a failed login, an unknown command), which stop the
call with the device's words. ``synaccess_telnet`` is the native name; ``synnetbooter``
takes PDUDaemon's options unchanged.
"""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

from pdumqtt.drivers import DriverError, HostAddress
from pdumqtt.drivers.telnet import TelnetDriver, pdudaemon_address, shown

TELNET_PORT = 23
PROMPT = rb">"
REFUSAL = re.compile(rb"(?i)[^\r\n>]*(?:invalid|fail|incorrect|denied|error|not logged|login first|unknown)[^\r\n>]*")


class SynaccessTelnet(TelnetDriver):
    model = "Synaccess netBooter Series B (telnet)"
    protocol = "telnet (netBooter: login, pset N 1|0)"
    tested_against = "`synaccess_telnet` simulator (telnet on loopback)"
    can_read = False
    default_port = TELNET_PORT
    options = {
        vol.Required("host"): HostAddress(TELNET_PORT),
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
    }

    def _refusal(self) -> str | None:
        m = REFUSAL.search(self.session.before)
        return shown(m.group(0), self.session.secrets) if m else None

    def login(self) -> None:
        self.session.expect([PROMPT], "the > prompt")
        self.session.line("login")
        self.session.expect([rb"User ID\s*:"], "the User ID prompt")
        self.session.line(self.config["username"])
        self.session.expect([rb"Password\s*:"], "the Password prompt")
        self.session.line(self.config["password"])
        found = self.session.expect([PROMPT, rb"User ID\s*:"], "the > prompt after login")
        refusal = self._refusal()
        if found == 1 or refusal:
            why = f" ({refusal})" if refusal else ""
            raise DriverError(f"{self.session.where} refused the login{why}: wrong username or password")

    def logout(self) -> None:
        self.session.goodbye(b"exit\r\n", [])

    def set(self, port: int, on: bool) -> None:
        def work() -> None:
            command = f"pset {port} {1 if on else 0}"
            # ENTER around the command, as PDUDaemon sends it: a fresh prompt before, and one after
            self.session.line("")
            self.session.expect([PROMPT], "the > prompt")
            self.session.send(f"{command}\r\n\r\n".encode())
            self.session.expect([PROMPT], f"the > prompt after {command}")
            refusal = self._refusal()
            if refusal:
                raise DriverError(f"{self.session.where} answered {command} with {refusal}")
        self.call(work)


class SynNetBooter(SynaccessTelnet):
    """PDUDaemon's synnetbooter: ``hostname`` (or the PDU's name), ``telnetport`` (23), ``username``, ``password``."""

    native_driver = "synaccess_telnet"
    options = {
        vol.Optional("hostname"): str,
        vol.Optional("host"): str,
        vol.Optional("telnetport", default=23): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours = {"host": pdudaemon_address(options, pdu, TELNET_PORT), "username": options["username"],
                "password": options["password"]}
        super().__init__(ours, pdu=pdu, timeout=timeout)
