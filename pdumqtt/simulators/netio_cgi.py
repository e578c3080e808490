"""A NETIO-230-style PDU's CGI: ``/tgi/control.tgi`` with ``l=`` (login) and ``p=`` (ports).

``l=p:<user>:<password>`` logs in (``553 INVALID LOGIN`` when wrong); without a login any
port command is ``555 FORBIDDEN``. ``p=l`` answers ``<html>1 0 0 1 </html>``; ``p=`` with four
characters sets the outputs (``1``, ``0``, ``u`` unchanged, ``i`` interrupt: off, then on
after ``interrupt_delay``) and answers ``<html>250 OK</html>``. The login is
``username``/``password``, NETIO's factory ``admin``/``admin`` by default.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request
from pdumqtt.simulators._later import LaterMixin


class NetioCgiSimulator(LaterMixin, HttpSimulator):
    outlet_numbers = range(1, 5)
    garbage_body = "<html><head><title>NETIO</title></head><body></body></html>"
    options = {
        vol.Optional("interrupt_delay", default=0.3): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("username", default="admin"): str,  # NETIO's factory login
        vol.Optional("password", default="admin"): str,
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.interrupts = 0

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/tgi/control.tgi"): self.control}

    def control(self, request: Request) -> str:
        login = request.query.get("l", request.query.get("login"))
        if login is not None and login != f"p:{self.config['username']}:{self.config['password']}":
            return "<html>553 INVALID LOGIN</html>"
        ports = request.query.get("p", request.query.get("port"))
        if ports is None:
            return "<html>100 HELLO</html>" if login else "<html>502 UNKNOWN COMMAND</html>"
        if login is None:
            return "<html>555 FORBIDDEN</html>"
        if ports in ("l", "list"):
            return "<html>" + "".join(f"{int(on)} " for on in self.outlets.values()) + "</html>"
        if len(ports) != len(self.outlets) or set(ports) - set("01ui"):
            return "<html>503 INVALID PARAMETR</html>"
        for n, char in zip(self.outlets, ports, strict=True):
            if char == "i":
                self.interrupts += 1
                self.outlets[n] = False
                self.later(self.config["interrupt_delay"], n, True)
            elif char != "u":
                self.outlets[n] = char == "1"
        return "<html>250 OK</html>"
