"""An ESPHome device's ``web_server`` REST API for its switches, named by object id.

``POST /switch/<id>/turn_on|turn_off|toggle`` answers 200 with an empty body; ``GET
/switch/<id>`` answers ``{"id": "switch-<id>", "value": bool, "state": "ON"|"OFF"}``; an
unknown id or action is 404. ``switches`` lists the object ids (``outlets`` is keyed by
their position from 1). ``password`` turns on digest auth (ESPHome's ``web_server: auth`` on
the Arduino web server; ``auth: basic`` for the ESP-IDF one).
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response


class EsphomeSimulator(HttpSimulator):
    garbage_body = "<!DOCTYPE html><html><head><title>esphome-relay</title></head></html>"
    options = {vol.Optional("switches", default=["relay_1", "relay_2"]): [str]}

    def __init__(self, options: dict[str, Any]) -> None:
        config = vol.Schema(self.options)(options)
        if config["password"] and config["auth"] == "none":
            config["auth"] = "digest"  # the Arduino web server's challenge; auth: basic for ESP-IDF
        self.ids = {name: n for n, name in enumerate(config["switches"], 1)}
        self.outlet_numbers = range(1, len(self.ids) + 1)
        super().__init__(config)
        self._routes = {}
        for name in self.ids:
            self._routes[("GET", f"/switch/{name}")] = self._state_of(name)
            for action in ("turn_on", "turn_off", "toggle"):
                self._routes[("POST", f"/switch/{name}/{action}")] = self._action(name, action)

    def routes(self) -> dict[tuple[str, str], Any]:
        return {}  # made per switch in __init__

    def switch(self, name: str) -> bool:
        return self.outlets[self.ids[name]]

    def _state_of(self, name: str) -> Any:
        def state(request: Request) -> dict[str, Any]:
            on = self.outlets[self.ids[name]]
            return {"id": f"switch-{name}", "value": on, "state": "ON" if on else "OFF"}
        return state

    def _action(self, name: str, action: str) -> Any:
        def act(request: Request) -> Response:
            n = self.ids[name]
            self.outlets[n] = {"turn_on": True, "turn_off": False}.get(action, not self.outlets[n])
            return Response(200, b"", "text/plain")
        return act
