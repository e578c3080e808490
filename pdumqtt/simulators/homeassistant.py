"""Home Assistant's REST API for switch entities, with a long-lived access token.

``POST /api/services/<domain>/turn_on|turn_off|toggle`` with ``{"entity_id": ...}``
answers the list of changed states; ``GET /api/states/<entity_id>`` answers the entity's
state object (``state`` "on"/"off", ``attributes.friendly_name``); an unknown entity is 404
``{"message": "Entity not found."}``; a missing or wrong ``Authorization: Bearer`` token is
401 ``401: Unauthorized``. ``entities`` lists the entity ids (``outlets`` is keyed by their
position from 1); ``unavailable`` lists those whose state is ``unavailable``.
"""

from __future__ import annotations

import datetime
from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response


class HomeAssistantSimulator(HttpSimulator):
    garbage_body = "<!DOCTYPE html><html><head><title>Home Assistant</title></head></html>"
    options = {
        vol.Optional("entities", default=["switch.bench_1", "switch.bench_2"]): [str],
        vol.Optional("token", default="ha-token"): str,
        vol.Optional("unavailable", default=[]): [str],
    }

    def __init__(self, options: dict[str, Any]) -> None:
        config = vol.Schema(self.options)(options)
        self.ids = {entity: n for n, entity in enumerate(config["entities"], 1)}
        self.outlet_numbers = range(1, len(self.ids) + 1)
        super().__init__(config)
        domains = {e.split(".")[0] for e in self.ids}
        self._routes = {("POST", f"/api/services/{domain}/{service}"): self._service(service)
                        for domain in domains for service in ("turn_on", "turn_off", "toggle")}
        self._routes.update({("GET", f"/api/states/{entity}"): self._state_route(entity) for entity in self.ids})

    def routes(self) -> dict[tuple[str, str], Any]:
        return {}  # made per entity in __init__

    def entity(self, entity_id: str) -> bool:
        return self.outlets[self.ids[entity_id]]

    def respond(self, request: Request) -> Response | None:
        if self.failure is None and request.headers.get("authorization") != f"Bearer {self.config['token']}":
            self.requests.append(request)
            return Response(401, "401: Unauthorized", "text/plain")
        return super().respond(request)

    def _state(self, entity: str) -> dict[str, Any]:
        state = "unavailable" if entity in self.config["unavailable"] else ("on" if self.entity(entity) else "off")
        now = datetime.datetime.now(datetime.UTC).isoformat()
        return {"entity_id": entity, "state": state, "attributes": {"friendly_name": entity.split(".")[1].title()},
                "last_changed": now, "last_updated": now}

    def _state_route(self, entity: str) -> Any:
        return lambda request: self._state(entity)

    def _service(self, service: str) -> Any:
        def call(request: Request) -> Response | list[Any]:
            try:
                entity = request.json()["entity_id"]
            except (ValueError, KeyError, TypeError):
                return Response(400, {"message": "Invalid JSON specified."})
            if entity not in self.ids:
                return []  # Home Assistant answers an empty list when nothing changed
            n = self.ids[entity]
            self.outlets[n] = {"turn_on": True, "turn_off": False}.get(service, not self.outlets[n])
            return [self._state(entity)]
        return call
