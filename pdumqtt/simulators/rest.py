"""Generic HTTP relays for the URL-template drivers: ``rest`` and ``simple_rest``.

``rest``: ``PUT /outlet/<n>`` with the body ``1`` or ``0`` switches outlet n (0 to 8) and
answers ``OK``; ``GET /outlet/<n>`` answers ``1`` or ``0``. ``simple_rest``: ``GET
/relay/<n>/1`` or ``/0`` switches, ``GET /relay/<n>`` answers ``1`` or ``0``, as a
Raspberry Pi relay script would. ``password`` turns on basic auth.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response


def _plain(text: str, status: int = 200) -> Response:
    return Response(status, text, "text/plain")


class RestSimulator(HttpSimulator):
    outlet_numbers = range(9)
    garbage_body = "<html><body>relay server</body></html>"
    options = {vol.Optional("auth"): vol.In(["none", "basic", "digest"])}  # no default: basic when a password is set

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__({"auth": "basic" if options.get("password") else "none", **options})

    def routes(self) -> dict[tuple[str, str], Any]:
        routes: dict[tuple[str, str], Any] = {}
        for n in self.outlets:
            routes[("GET", f"/outlet/{n}")] = lambda r, n=n: _plain(str(int(self.outlets[n])))
            routes[("PUT", f"/outlet/{n}")] = lambda r, n=n: self.put(r, n)
        return routes

    def put(self, request: Request, n: int) -> Response:
        body = request.body.strip()
        if body not in (b"0", b"1"):
            return _plain("expected 0 or 1", 400)
        self.outlets[n] = body == b"1"
        return _plain("OK")


class SimpleRestSimulator(RestSimulator):
    def routes(self) -> dict[tuple[str, str], Any]:
        routes: dict[tuple[str, str], Any] = {}
        for n in self.outlets:
            routes[("GET", f"/relay/{n}")] = lambda r, n=n: _plain(str(int(self.outlets[n])))
            for value in (0, 1):
                routes[("GET", f"/relay/{n}/{value}")] = lambda r, n=n, value=value: self.switch(n, value)
        return routes

    def switch(self, n: int, value: int) -> Response:
        self.outlets[n] = bool(value)
        return _plain("OK")
