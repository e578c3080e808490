"""A Tasmota device's web command endpoint, ``GET /cm?cmnd=...``, with ``relays`` relays.

``Power<N>`` reads relay N, ``Power<N> On|Off|Toggle|1|0|2`` switches it (``Power`` alone
is relay 1); the answer is ``{"POWER<N>": "ON"|"OFF"}``, ``{"POWER": ...}`` on a one-relay
device unless ``setoption26`` is set. With ``password`` set (the web admin password), a
request without ``user=admin&password=...`` in the query gets Tasmota's ``{"WARNING":
"Need user=<username>&password=<password>"}`` with HTTP 401 (``refusal_status: 200`` for
older firmware). ``Status 8`` (or ``Status 10``) answers the meter, ``{"StatusSNS": {"ENERGY":
{"Total": kWh, "Power": W, "Voltage": V, "Current": A, ...}}}``, per channel as lists on a
device with several relays (unless ``metered`` is off). Unknown commands answer
``{"Command": "Unknown"}``.
"""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import METER_OPTIONS, HttpSimulator, Request, Response

POWER = re.compile(r"^power(\d*)$", re.IGNORECASE)
VALUES = {"on": True, "1": True, "off": False, "0": False}


class TasmotaSimulator(HttpSimulator):
    garbage_body = "<!DOCTYPE html><html><body>Tasmota</body></html>"
    options = {
        vol.Optional("relays", default=1): vol.All(int, vol.Range(min=1, max=32)),
        vol.Optional("setoption26", default=False): bool,
        # the status of a refused login: 401 on recent firmware, 200 (same body) on older
        vol.Optional("refusal_status", default=401): vol.In([200, 401]),
        **METER_OPTIONS,
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
        if name.lower() == "status" and value.strip() in ("8", "10"):  # without a monitor: no ENERGY
            energy = {"ENERGY": self._energy_block()} if self.config["metered"] else {}
            return {"StatusSNS": {"Time": "2026-01-01T00:00:00", **energy}}
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

    def _energy_block(self) -> dict[str, Any]:
        """Status 8's ENERGY: one value per channel as a list when the device has several relays."""
        readings = [self.reading(n) for n in self.outlets]
        one = len(readings) == 1

        def column(i: int, digits: int) -> Any:
            values = [round(r[i], digits) for r in readings]
            return values[0] if one else values
        total = round(sum(r[3] for r in readings) / 1000, 3)
        return {"TotalStartTime": "2026-01-01T00:00:00", "Total": total, "Yesterday": 0.0, "Today": total,
                "Power": column(0, 0), "ApparentPower": column(0, 0), "ReactivePower": 0, "Factor": 1.0,
                "Voltage": round(readings[0][2]), "Current": column(1, 3)}
