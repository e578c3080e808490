"""Aviosys IP Power switches (9850, 9858, 9255...) over their HTTP ``set.cmd`` API.

``GET /set.cmd?user=U&pass=P&cmd=setpower&p6N=1|0`` switches outlet N (1 to 4);
``GET /set.cmd?user=U&pass=P&cmd=getpower`` reads them. Both answer a CGI block,
``<!--CGI-DATABEG--><p>p61=1,p62=0,...</p><!--CGI-DATAEND-->``. The credentials travel in
the query (kept out of errors and logs); a refused login is HTTP 401 or a page that says
401, as PDUDaemon reads it.

PDUDaemon's ``ip9850`` takes ``username`` and ``password`` (none by default: then no
``user``/``pass`` are sent), and the PDU's name as host (or ``hostname``, a pdumqtt addition).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import NoSuchOutlet
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

STATE = re.compile(r"\bp6(\d)\s*=\s*([01])\b", re.IGNORECASE)


class Aviosys(HttpDriver):
    model = "Aviosys IP Power"
    protocol = "HTTP (set.cmd CGI)"
    tested_against = "`aviosys` simulator (HTTP on loopback)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password"): str,
        vol.Optional("outlets", default=4): vol.All(int, vol.Range(min=1, max=8)),
    }

    def _cmd(self, port: int, params: dict[str, Any]) -> dict[int, bool]:
        outlets = self.config.get("outlets", 4)
        if not 1 <= port <= outlets:
            raise NoSuchOutlet(f"outlet {port} does not exist: {self.where} has outlets 1 to {outlets}")
        query = {**self._credentials(), **params}
        text = self.request("GET", "/set.cmd", params=query, auth=False).text
        if "401" in text and not STATE.search(text):
            self.close()
            raise self.error("GET /set.cmd: refused the credentials (the page says 401): check username and password")
        states = {int(n): v == "1" for n, v in STATE.findall(text)}
        self.expect(port in states, f"GET /set.cmd ({params['cmd']})", text)
        return states

    def _credentials(self) -> dict[str, str]:
        if self.config.get("password") is None:
            return {}
        return {"user": self.config.get("username") or "", "pass": self.config["password"]}

    def set(self, port: int, on: bool) -> None:
        states = self._cmd(port, {"cmd": "setpower", f"p6{port}": "1" if on else "0"})
        if states[port] != on:
            raise self.error(f"outlet {port} is {'on' if states[port] else 'off'} after switching it "
                             f"{'on' if on else 'off'}")

    def get(self, port: int) -> bool:
        return self._cmd(port, {"cmd": "getpower"})[port]


class Ip9850(Aviosys):
    """PDUDaemon's ``ip9850``: username and password (sent only when set), outlets 1 to 4."""

    model = "Aviosys IP Power 9850"
    native_driver = "aviosys"
    fixed_ports = 4
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("hostname"): str,
        vol.Optional("username"): str,
        vol.Optional("password"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours: dict[str, Any] = {"host": options.get("hostname") or pdu, "outlets": 4,
                                "username": options.get("username"), "password": options.get("password")}
        super().__init__(ours, pdu=pdu, timeout=timeout)

    def _credentials(self) -> dict[str, str]:
        # PDUDaemon hands both to requests, which leaves out the ones that are None
        return {k: v for k, v in (("user", self.config.get("username")), ("pass", self.config.get("password")))
                if v is not None}
