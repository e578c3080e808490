"""A Shelly Gen1 device's HTTP API: ``/relay/<id>`` and ``/settings/relay/<id>``.

``GET`` or ``POST /relay/<id>`` with ``turn=on|off|toggle`` (in the query or a form body)
switches relay ``id`` (0 to ``relays``-1); ``timer=<seconds>`` flips it back after that
long; either way the answer is the relay's status, ``{"ison": ..., "has_timer": ...,
"timer_remaining": ..., "source": "http"}``. ``GET /settings/relay/<id>`` answers its
``name`` (``names``). Unknown relays are HTTP 404. Set ``password`` for basic auth.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response
from pdumqtt.simulators._later import LaterMixin


class ShellyGen1Simulator(LaterMixin, HttpSimulator):
    garbage_body = "<html><body>Shelly</body></html>"
    options = {
        vol.Optional("relays", default=2): vol.All(int, vol.Range(min=1, max=4)),
        vol.Optional("names", default=[]): [str],
        vol.Optional("auth"): vol.In(["none", "basic", "digest"]),  # no default: basic when a password is set
    }

    def __init__(self, options: dict[str, Any]) -> None:
        self.outlet_numbers = range(vol.Schema(self.options, extra=vol.ALLOW_EXTRA)(options)["relays"])
        super().__init__({"auth": "basic" if options.get("password") else "none", **options})
        self._timer_ends: dict[int, float] = {}

    def routes(self) -> dict[tuple[str, str], Any]:
        routes: dict[tuple[str, str], Any] = {}
        for n in self.outlets:
            routes[("GET", f"/relay/{n}")] = routes[("POST", f"/relay/{n}")] = lambda r, n=n: self.relay(r, n)
            routes[("GET", f"/settings/relay/{n}")] = lambda r, n=n: self.settings(n)
        return routes

    def relay(self, request: Request, n: int) -> Response | dict[str, Any]:
        args = {**request.query, **dict(parse_qsl(request.body.decode(errors="replace")))}
        turn = args.get("turn")
        if turn is not None:
            if turn not in ("on", "off", "toggle"):
                return Response(400, "Bad turn!", "text/plain")
            self.outlets[n] = (not self.outlets[n]) if turn == "toggle" else turn == "on"
            self._timer_ends.pop(n, None)
            if args.get("timer"):
                seconds = float(args["timer"])
                self._timer_ends[n] = time.monotonic() + seconds
                self.later(seconds, n, not self.outlets[n])
        remaining = max(0.0, self._timer_ends.get(n, 0) - time.monotonic())
        return {"ison": self.outlets[n], "has_timer": remaining > 0, "timer_started": 0,
                "timer_duration": 0, "timer_remaining": round(remaining), "overpower": False, "source": "http"}

    def settings(self, n: int) -> dict[str, Any]:
        names = self.config["names"]
        return {"name": names[n] if n < len(names) else None, "appliance_type": "General",
                "ison": self.outlets[n], "default_state": "off", "btn_type": "toggle"}
