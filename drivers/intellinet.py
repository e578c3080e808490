"""Intellinet 19" intelligent 8-port PDU (163682) over its web interface.

``GET /control_outlet.htm?outletN=1&op=O&submit=Anwenden`` acts on outlet N (0 to 7):
op 0 on, 1 off, 2 reboot (the PDU's own power cycle, with its configured delay);
``GET /status.xml`` answers ``<response>...<outletStat0>on</outletStat0>...</response>``.
HTTP basic auth, admin/admin by default; some firmware answers a wrong login with a page
that says 401 rather than the status, so a body containing ``401`` is a refusal too, as
PDUDaemon reads it.

The native ``intellinet_pdu``'s port N is outlet N-1 (the front panel's 1 to 8); PDUDaemon's
``intellinet`` keeps PDUDaemon's numbering, port N = outlet N (0 to 7), with the options
``port`` (80), ``username`` and ``password`` (both ``admin``), and the PDU's name as host (or
``hostname``, a pdumqtt addition).
"""

from __future__ import annotations

from typing import Any, ClassVar
from xml.etree import ElementTree

import voluptuous as vol

from pdumqtt.drivers import NoSuchOutlet, join_host
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

OUTLETS = 8
ON, OFF, REBOOT = 0, 1, 2


class IntellinetPdu(HttpDriver):
    model = "Intellinet 163682 PDU"
    protocol = "HTTP (CGI pages, status.xml)"
    tested_against = "`intellinet` simulator (HTTP on loopback, basic auth)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
    }
    #: The device's outlet number of port 1.
    outlet_offset: ClassVar[int] = -1

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({**options, "auth": "basic"}, pdu=pdu, timeout=timeout)

    def _outlet(self, port: int) -> int:
        outlet = port + self.outlet_offset
        if not 0 <= outlet < OUTLETS:
            first = -self.outlet_offset
            raise NoSuchOutlet(f"port {port} does not exist: the PDU has ports {first} to {first + OUTLETS - 1}")
        return outlet

    def _page(self, path: str, params: dict[str, Any] | None = None) -> str:
        text = self.request("GET", path, params=params).text
        if "401" in text and "<response>" not in text:
            self.close()
            raise self.error(f"GET {path}: refused the credentials (the page says 401): check username and password")
        return text

    def _control(self, port: int, op: int) -> None:
        self._page("/control_outlet.htm", {f"outlet{self._outlet(port)}": 1, "op": op, "submit": "Anwenden"})

    def set(self, port: int, on: bool) -> None:
        self._control(port, ON if on else OFF)

    def cycle(self, port: int, delay: float) -> bool:
        self._control(port, REBOOT)  # the PDU's own reboot; its delay is set on the PDU
        return True

    def get(self, port: int) -> bool:
        outlet = self._outlet(port)
        text = self._page("/status.xml")
        try:
            state = ElementTree.fromstring(text).findtext(f"outletStat{outlet}")
        except ElementTree.ParseError:
            state = None
        self.expect(state in ("on", "off"), "GET /status.xml", text)
        return state == "on"


class Intellinet(IntellinetPdu):
    """PDUDaemon's ``intellinet``: port N is outlet N (0 to 7); port, username, password."""

    native_driver = "intellinet_pdu"
    fixed_ports = OUTLETS
    first_port = 0
    outlet_offset = 0
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("hostname"): str,
        vol.Optional("port", default=80): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        host = options.get("hostname") or pdu
        address = join_host(host, options["port"])
        super().__init__({"host": address, "username": options["username"], "password": options["password"]},
                         pdu=pdu, timeout=timeout)
