"""Digital Loggers power controllers: the legacy web API (``dli_http``) and the REST API (``dli_rest``).

``dli_http``: ``GET /outlet?<N>=ON|OFF|CCL`` (N 1 to 8; CCL = off, then on after
``cycle_delay``) answers the index page; ``GET /status`` answers a page with ``<div
id="state">XX</div>``, the outlets as a hex mask (bit N-1 = outlet N). Basic auth when
``password`` is set.

``dli_rest``: under ``/restapi/relay/outlets/``, ``=<i>/state/`` and ``<i>/state/`` (i 0 to 7)
answer ``[bool]`` and ``bool`` on GET and take the form ``value=true|false`` on PUT,
answering 204; ``POST <i>/cycle/`` cycles (off, on after ``cycle_delay``); ``GET <i>/name/``
answers the name as a JSON string. A PUT or POST without the ``X-CSRF`` header is HTTP 403,
as on the device. Digest auth when ``password`` is set.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response
from pdumqtt.simulators._later import LaterMixin

# auth has no default: basic (legacy) or digest (REST) when a password is set
DLI_OPTIONS = {vol.Optional("cycle_delay", default=0.3): vol.All(vol.Coerce(float), vol.Range(min=0)),
               vol.Optional("auth"): vol.In(["none", "basic", "digest"])}


class DliHttpSimulator(LaterMixin, HttpSimulator):
    outlet_numbers = range(1, 9)
    garbage_body = "<html><body>Please wait...</body></html>"
    options = DLI_OPTIONS

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__({"auth": "basic" if options.get("password") else "none", **options})
        self.cycles = 0

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/outlet"): self.switch, ("GET", "/status"): self.status, ("GET", "/"): self.index}

    def switch(self, request: Request) -> Response | str:
        for key, action in request.query.items():
            if not key.isdigit() or int(key) not in self.outlets or action not in ("ON", "OFF", "CCL"):
                return Response(400, "<html><body>Bad request</body></html>")
            n = int(key)
            if action == "CCL":
                self.cycles += 1
                self.outlets[n] = False
                self.later(self.config["cycle_delay"], n, True)
            else:
                self.outlets[n] = action == "ON"
        return self.index(request)

    def index(self, request: Request) -> str:
        rows = "".join(f"<tr><td>{n}</td><td>Outlet {n}</td><td>{'ON' if on else 'OFF'}</td></tr>"
                       for n, on in self.outlets.items())
        return f"<html><head><title>Outlet Control</title></head><body><table>{rows}</table></body></html>"

    def status(self, request: Request) -> str:
        mask = sum(1 << (n - 1) for n, on in self.outlets.items() if on)
        return (f'<html><body><div id="state">{mask:02x}</div><div id="lock">00</div>'
                f'<div id="perm">ff</div></body></html>')


class DliRestSimulator(LaterMixin, HttpSimulator):
    outlet_numbers = range(8)
    garbage_body = "<html><body>Web Power Switch</body></html>"
    options = {**DLI_OPTIONS, vol.Optional("names", default=[]): [str]}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__({"auth": "digest" if options.get("password") else "none", **options})
        self.cycles = 0

    def routes(self) -> dict[tuple[str, str], Any]:
        base = "/restapi/relay/outlets"
        routes: dict[tuple[str, str], Any] = {}
        for i in self.outlets:
            for path, listed in ((f"{base}/={i}/state/", True), (f"{base}/{i}/state/", False)):
                routes[("GET", path)] = lambda r, i=i, listed=listed: [self.outlets[i]] if listed else self.outlets[i]
                routes[("PUT", path)] = lambda r, i=i: self.put(r, i)
            routes[("POST", f"{base}/{i}/cycle/")] = lambda r, i=i: self.cycle(r, i)
            routes[("GET", f"{base}/{i}/name/")] = lambda r, i=i: self.name(i)
        return routes

    def _csrf(self, request: Request) -> Response | None:
        if "x-csrf" not in request.headers:
            return Response(403, {"error": "CSRF protection: send an X-CSRF header"})
        return None

    def put(self, request: Request, i: int) -> Response:
        refused = self._csrf(request)
        if refused:
            return refused
        value = dict(parse_qsl(request.body.decode(errors="replace"))).get("value", "")
        if value not in ("true", "false"):
            return Response(400, {"error": "value must be true or false"})
        self.outlets[i] = value == "true"
        return Response(204)

    def cycle(self, request: Request, i: int) -> Response:
        refused = self._csrf(request)
        if refused:
            return refused
        self.cycles += 1
        self.outlets[i] = False
        self.later(self.config["cycle_delay"], i, True)
        return Response(204)

    def name(self, i: int) -> Response:
        names = self.config["names"]
        return Response(200, json.dumps(names[i] if i < len(names) else f"Outlet {i + 1}"), "application/json")
