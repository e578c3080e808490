"""A Tasmota device's web command endpoint, ``GET /cm?cmnd=...``, with ``relays`` relays.

``Power<N>`` reads relay N, ``Power<N> On|Off|Toggle|1|0|2`` switches it (``Power`` alone
is relay 1); the answer is ``{"POWER<N>": "ON"|"OFF"}``, ``{"POWER": ...}`` on a one-relay
device unless ``setoption26`` is set. With ``password`` set (the web admin password), a
request without ``user=admin&password=...`` in the query gets Tasmota's ``{"WARNING":
"Need user=<username>&password=<password>"}`` with HTTP 401 (``refusal_status: 200`` for
older firmware). Unknown commands answer
``{"Command": "Unknown"}``.
"""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response

POWER = re.compile(r"^power(\d*)$", re.IGNORECASE)
VALUES = {"on": True, "1": True, "off": False, "0": False}


class TasmotaSimulator(HttpSimulator):
    garbage_body = "<!DOCTYPE html><html><body>Tasmota</body></html>"
    options = {
        vol.Optional("relays", default=1): vol.All(int, vol.Range(min=1, max=32)),
        vol.Optional("setoption26", default=False): bool,
        # the status of a refused login: 401 on recent firmware, 200 (same body) on older
        vol.Optional("refusal_status", default=401): vol.In([200, 401]),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        relays = vol.Schema(self.options)(options)["relays"]
        self.outlet_numbers = range(1, relays + 1)
        super().__init__(options)

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/cm"): self.command}

    def command(self, request: Request) -> Response | dict[str, Any]:
        password = self.config["password"]
        if password and (request.query.get("user") != self.config["username"]
                         or request.query.get("password") != password):
            return Response(self.config["refusal_status"], {"WARNING": "Need user=<username>&password=<password>"})
        name, _, value = request.query.get("cmnd", "").strip().partition(" ")
        match = POWER.match(name)
        relay = int(match.group(1) or 1) if match else 0
        if relay not in self.outlets:
            return {"Command": "Unknown"}
        value = value.strip().lower()
        if value in VALUES:
            self.outlets[relay] = VALUES[value]
        elif value in ("toggle", "2"):
            self.outlets[relay] = not self.outlets[relay]
        elif value:
            return {"Command": "Unknown"}
        key = "POWER" if len(self.outlets) == 1 and not self.config["setoption26"] else f"POWER{relay}"
        return {key: "ON" if self.outlets[relay] else "OFF"}
