"""An ATEN PE-series PDU's RESTful relay API: ``/api/outlet/relay``.

``POST`` with the form ``usr``, ``pwd``, ``index`` and ``method`` (``on``, ``off``, ``reboot``,
``on_immediate``, ``off_immediate``) switches outlet ``index`` (1 to ``outlets``); a reboot
is off, then on after ``reboot_delay``, the outlet reading ``PENDING`` meanwhile. ``GET``
with ``usr``, ``pwd`` and ``index`` answers ``<OutletRelay><01>ON</01></OutletRelay>``. Wrong
credentials are HTTP 401, an outlet out of range HTTP 404, a bad method 400. The login is
``username``/``password``, ATEN's factory ``administrator``/``password`` by default.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response
from pdumqtt.simulators._later import LaterMixin


class AtenSimulator(LaterMixin, HttpSimulator):
    garbage_body = "<html><body>PE6216</body></html>"
    options = {
        vol.Optional("outlets", default=16): vol.All(int, vol.Range(min=1, max=48)),
        vol.Optional("reboot_delay", default=0.3): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("username", default="administrator"): str,  # ATEN's factory login
        vol.Optional("password", default="password"): str,
    }

    def __init__(self, options: dict[str, Any]) -> None:
        self.outlet_numbers = range(1, vol.Schema(self.options, extra=vol.ALLOW_EXTRA)(options)["outlets"] + 1)
        super().__init__(options)
        self._pending_until: dict[int, float] = {}
        self.reboots = 0

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("POST", "/api/outlet/relay"): self.relay, ("GET", "/api/outlet/relay"): self.relay}

    def relay(self, request: Request) -> Response:
        fields = request.query if request.method == "GET" else dict(parse_qsl(request.body.decode(errors="replace")))
        if fields.get("usr") != self.config["username"] or fields.get("pwd") != self.config["password"]:
            return Response(401, "Unauthorized", "text/plain")
        try:
            n = int(fields.get("index", ""))
        except ValueError:
            return Response(400, "Bad Request", "text/plain")
        if n not in self.outlets:
            return Response(404, "Not Found", "text/plain")
        if request.method == "GET":
            pending = not self.outlets[n] and time.monotonic() < self._pending_until.get(n, 0)
            state = "PENDING" if pending else ("ON" if self.outlets[n] else "OFF")
            return Response(200, f"<?xml version='1.0'?><OutletRelay><{n:02d}>{state}</{n:02d}></OutletRelay>",
                            "text/xml")
        method = fields.get("method")
        if method in ("on", "on_immediate", "off", "off_immediate"):
            self.outlets[n] = method.startswith("on")
            self._pending_until.pop(n, None)
        elif method == "reboot":
            self.reboots += 1
            self.outlets[n] = False
            self._pending_until[n] = time.monotonic() + self.config["reboot_delay"]
            self.later(self.config["reboot_delay"], n, True)
        else:
            return Response(400, "Bad Request", "text/plain")
        return Response(200, "OK", "text/plain")
