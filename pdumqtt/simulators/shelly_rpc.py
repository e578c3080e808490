"""A Shelly Gen2+ device's JSON-RPC endpoint, ``POST /rpc``, with ``switches`` switches (ids from 0).

``Switch.Set {id, on[, toggle_after]}`` answers ``{"was_on": bool}`` (and flips back after
``toggle_after`` seconds), ``Switch.GetStatus {id}`` answers ``{"id", "source", "output",
...}``, ``Switch.GetConfig {id}`` gives the switch's ``name``; an unknown id is the error
frame ``{"code": -105, "message": "Argument 'id', value N not found!"}``. With ``password``
set the device takes SHA-256 digest auth, user ``admin``, realm the device id.
``Shelly.GetDeviceInfo`` answers without auth, as the real devices do. A metered (PM)
model's status also has ``apower``, ``voltage``, ``current`` and ``aenergy.total`` (Wh).
"""

from __future__ import annotations

import threading
from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import METER_OPTIONS, HttpSimulator, Request, Response


class ShellyRpcSimulator(HttpSimulator):
    digest_algorithm = "SHA-256"
    garbage_body = '{"id": 1, "src": "shellyplus1-sim", "resul'
    options = {
        vol.Optional("switches", default=1): vol.All(int, vol.Range(min=1, max=4)),
        vol.Optional("names", default=[]): [vol.Any(str, None)],
        **METER_OPTIONS,  # metered: a PM model (Plus 1PM, Plus Plug S, Pro 4PM)
    }

    def __init__(self, options: dict[str, Any]) -> None:
        config = vol.Schema(self.options)(options)
        self.outlet_numbers = range(config["switches"])
        if config["password"]:
            config["auth"] = "digest"
        config["username"] = "admin"
        super().__init__(config)
        self.realm = "shellyplus1-a8032ab1c2d3"
        self._timers: list[threading.Timer] = []

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("POST", "/rpc"): self.rpc}

    def _authorized(self, request: Request) -> bool:
        try:
            frame = request.json()
        except ValueError:
            frame = None
        if isinstance(frame, dict) and frame.get("method") == "Shelly.GetDeviceInfo":
            return True
        return super()._authorized(request)

    def rpc(self, request: Request) -> Response | dict[str, Any]:
        try:
            frame = request.json()
            method, params = frame["method"], frame.get("params") or {}
        except (ValueError, KeyError, TypeError):
            return Response(400, {"code": -32700, "message": "Parse error"})
        base = {"id": frame.get("id"), "src": self.realm, **({"dst": frame["src"]} if "src" in frame else {})}
        if method == "Shelly.GetDeviceInfo":
            info = {"id": self.realm, "gen": 2, "app": "Plus1", "auth_en": bool(self.config["password"])}
            return {**base, "result": info}
        switch = params.get("id")
        if not method.startswith("Switch.") or method not in ("Switch.Set", "Switch.GetStatus", "Switch.GetConfig"):
            return {**base, "error": {"code": -114, "message": f"Method {method} failed: Method not found!"}}
        if switch not in self.outlets:
            return {**base, "error": {"code": -105, "message": f"Argument 'id', value {switch} not found!"}}
        if method == "Switch.Set":
            was_on = self.outlets[switch]
            self.outlets[switch] = bool(params["on"])
            if params.get("toggle_after"):
                timer = threading.Timer(float(params["toggle_after"]), self._flip, (switch,))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
            return {**base, "result": {"was_on": was_on}}
        if method == "Switch.GetConfig":
            names = self.config["names"]
            return {**base, "result": {"id": switch, "name": names[switch] if switch < len(names) else None,
                                       "initial_state": "match_input", "auto_on": False}}
        status = {"id": switch, "source": "HTTP", "output": self.outlets[switch],
                  "temperature": {"tC": 41.2, "tF": 106.2}}
        if self.config["metered"]:  # a PM model: apower W, voltage V, current A, aenergy.total Wh
            watts, amps, volts, wh = self.reading(switch)
            status.update(apower=round(watts, 1), voltage=round(volts, 1), current=round(amps, 3), freq=50.0,
                          aenergy={"total": round(wh, 3), "by_minute": [0.0, 0.0, 0.0], "minute_ts": 0})
        return {**base, "result": status}

    def _flip(self, switch: int) -> None:
        with self.lock:
            self.outlets[switch] = not self.outlets[switch]

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        super().stop()
