"""A Server Technology PRO2 PDU's JAWS REST API for outlets, over HTTPS by default.

``PATCH /jaws/control/outlets/<id>`` with ``{"control_action": "on"|"off"|"reboot"}``
answers 204 (a reboot switches off, then on after ``reboot_delay`` s); ``GET`` answers the
outlet (``id``, ``name``, ``control_state``, ``state``). ``outlets`` lists the ids
(``outlets`` state is keyed by their position from 1). Basic auth, admin/admin by default.
"""

from __future__ import annotations

import threading
from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response


class ServertechPro2Simulator(HttpSimulator):
    garbage_body = '{"error": "busy"}'
    options = {
        vol.Optional("outlet_ids", default=[f"AA{n}" for n in range(1, 9)]): [str],
        vol.Optional("reboot_delay", default=0.3): vol.All(vol.Coerce(float), vol.Range(min=0)),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        config = vol.Schema(self.options)({"tls": True, "auth": "basic", "password": "admin", **options})
        self.ids = {oid: n for n, oid in enumerate(config["outlet_ids"], 1)}
        self.outlet_numbers = range(1, len(self.ids) + 1)
        super().__init__(config)
        self._routes = {}
        for oid in self.ids:
            self._routes[("GET", f"/jaws/control/outlets/{oid}")] = self._get(oid)
            self._routes[("PATCH", f"/jaws/control/outlets/{oid}")] = self._patch(oid)
        self._timers: list[threading.Timer] = []
        self.reboots = 0

    def routes(self) -> dict[tuple[str, str], Any]:
        return {}  # made per outlet id in __init__

    def outlet_by_id(self, oid: str) -> bool:
        return self.outlets[self.ids[oid]]

    def _get(self, oid: str) -> Any:
        def get(request: Request) -> dict[str, Any]:
            state = "on" if self.outlets[self.ids[oid]] else "off"
            return {"id": oid, "name": f"Outlet_{oid}", "control_state": state, "state": state.title()}
        return get

    def _patch(self, oid: str) -> Any:
        def patch(request: Request) -> Response:
            try:
                action = request.json()["control_action"]
            except (ValueError, KeyError, TypeError):
                return Response(400, {"error": "bad request"})
            n = self.ids[oid]
            if action == "reboot":
                self.reboots += 1
                self.outlets[n] = False
                timer = threading.Timer(self.config["reboot_delay"], self._on, (n,))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
            elif action in ("on", "off"):
                self.outlets[n] = action == "on"
            else:
                return Response(400, {"error": f"unknown control_action {action}"})
            return Response(204, b"")
        return patch

    def _on(self, n: int) -> None:
        with self.lock:
            self.outlets[n] = True

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        super().stop()
