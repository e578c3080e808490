"""Lindy iPower Classic 8 (and the Digipower units it is built on) over their CGI pages.

``GET /ons.cgi?led=<24 bits>`` switches on the outlets whose bit is 1, ``/offs.cgi`` off;
outlet N is bit N from the left (``1 << (24 - N)`` as 24 binary digits). ``GET
/status.xml`` answers comma-separated fields, field 9+N being outlet N (1 on, 0 off).
HTTP basic auth when a password is set.

PDUDaemon's ``LindyIPowerClassic8`` takes ``username`` and ``password`` (auth only when
both are set) and ``port`` (80, which PDUDaemon's driver accepts but never uses: here the
requests go to it), and the PDU's name as host (or ``hostname``, a pdumqtt addition).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import join_host
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

OUTLETS = 8
FIRST_STATE_FIELD = 10  # status.xml field of outlet 1


class LindyIpower(HttpDriver):
    model = "Lindy iPower Classic 8"
    protocol = "HTTP (CGI pages)"
    tested_against = "`lindy_ipower` simulator (HTTP on loopback, basic auth)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({**options, "auth": "basic"}, pdu=pdu, timeout=timeout)

    def set(self, port: int, on: bool) -> None:
        self.check_port(port, OUTLETS)
        self.request("GET", "/ons.cgi" if on else "/offs.cgi", params={"led": f"{1 << (24 - port):024b}"})

    def get(self, port: int) -> bool:
        self.check_port(port, OUTLETS)
        text = self.request("GET", "/status.xml").text
        fields = [re.sub(r"<[^>]*>", "", f).strip() for f in text.split(",")]
        index = FIRST_STATE_FIELD + port - 1
        self.expect(len(fields) > index and fields[index] in ("0", "1"), "GET /status.xml", text)
        return fields[index] == "1"


class LindyIPowerClassic8(LindyIpower):
    """PDUDaemon's ``LindyIPowerClassic8``: port, username, password; the PDU's name is the host."""

    native_driver = "lindy_ipower"
    fixed_ports = OUTLETS
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("hostname"): str,
        vol.Optional("port", default=80): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("username"): str,
        vol.Optional("password"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        host = options.get("hostname") or pdu
        ours: dict[str, Any] = {"host": join_host(host, options["port"])}
        if options.get("username") and options.get("password"):
            ours.update(username=options["username"], password=options["password"])
        super().__init__(ours, pdu=pdu, timeout=timeout)
