"""NETIO-230A/B and other KSHELL-era NETIO 4-outlet PDUs over their CGI (``netio_cgi``).

``GET /tgi/control.tgi?l=p:<user>:<password>&p=<4 characters>`` logs in and sets the four
outputs at once, one character each: ``1`` on, ``0`` off, ``u`` unchanged, ``i`` interrupt
(off, then on after the interrupt delay set on the device: ``cycle`` uses it). ``p=l``
lists them, answering ``<html>1 0 0 1 </html>``. Answers carry KSHELL's codes: ``250 OK``,
``553 INVALID LOGIN``, ``555 FORBIDDEN``. The credentials travel in the query string and
appear in no message and no log line; the defaults are NETIO's factory ``admin``/``admin``.
NETIO's newer JSON API is ``netio_json``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar
from urllib.parse import quote

import voluptuous as vol

from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

OUTPUTS = 4
FACTORY_PASSWORD = "admin"
LIST = re.compile(r"\b([01]) ([01]) ([01]) ([01])\b")
CODE = re.compile(r"\b(5\d\d) ([A-Z][A-Z ]*[A-Z])")


class NetioCgi(HttpDriver):
    model = "NETIO 4-outlet PDU (KSHELL CGI)"
    protocol = "HTTP (NETIO control.tgi CGI)"
    tested_against = "`netio_cgi` simulator (HTTP on loopback)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default=FACTORY_PASSWORD): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours = {k: v for k, v in options.items() if k != "password"}
        super().__init__(ours, pdu=pdu, timeout=timeout)
        self._login = f"p:{options.get('username', 'admin')}:{options.get('password', FACTORY_PASSWORD)}"
        password = options.get("password", FACTORY_PASSWORD)
        if password != FACTORY_PASSWORD:  # the factory default is no secret
            for form in (password, quote(password, safe=""), self._login, quote(self._login, safe="")):
                self.add_secret(form)

    def _control(self, port: int, command: str) -> str:
        self.check_port(port, OUTPUTS)
        text = self.request("GET", "/tgi/control.tgi", params={"l": self._login, "p": command}, auth=False).text
        code = CODE.search(text)
        if code and code.group(1) == "553":
            self.close()
            raise self.error("GET /tgi/control.tgi: refused the credentials (553 INVALID LOGIN): "
                             "check username and password")
        if code:
            self.close()
            raise self.error(f"GET /tgi/control.tgi: the device answered {code.group(1)} {code.group(2)}")
        return text

    def _command(self, port: int, char: str) -> None:
        text = self._control(port, "".join(char if n == port else "u" for n in range(1, OUTPUTS + 1)))
        self.expect("250" in text or LIST.search(text) is not None, "GET /tgi/control.tgi", text)

    def set(self, port: int, on: bool) -> None:
        self._command(port, "1" if on else "0")

    def cycle(self, port: int, delay: float) -> bool:
        self._command(port, "i")  # the device's interrupt, with the delay set on it
        return True

    def get(self, port: int) -> bool:
        text = self._control(port, "l")
        states = LIST.search(text)
        self.expect(states is not None, "GET /tgi/control.tgi (p=l)", text)
        return states.group(port) == "1"  # type: ignore[union-attr] - checked above
