"""A NETIO device's JSON API, ``/netio.json``, with ``outputs`` outputs and HTTP basic auth.

``GET`` answers the state; ``POST`` ``{"Outputs": [{"ID", "Action"[, "Delay"]}]}`` applies
actions 0 off, 1 on, 2 short off, 3 short on, 4 toggle, 5 no change, 6 ignored (short
actions revert after ``Delay`` ms, else the output's configured delay) and answers the
updated state. ``read_only`` models credentials without write access: POSTs change nothing.
Auth is basic unless ``auth: none`` is given; the default user and password are admin/admin.
A metered model's outputs also carry ``Load`` (W), ``Current`` (mA) and ``Energy`` (Wh), and
``GlobalMeasure`` the totals and the ``Voltage``.
"""

from __future__ import annotations

import threading
from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import METER_OPTIONS, HttpSimulator, Request, Response


class NetioJsonSimulator(HttpSimulator):
    garbage_body = '{"Agent": {"Model": "NETIO 4All"}, "Outputs": "n/a"}'
    options = {
        vol.Optional("outputs", default=4): vol.All(int, vol.Range(min=1, max=64)),
        vol.Optional("read_only", default=False): bool,
        **METER_OPTIONS,  # metered: a PowerPDU 4KS, PowerCable 101x; not a NETIO 4
    }

    def __init__(self, options: dict[str, Any]) -> None:
        config = vol.Schema(self.options)({"auth": "basic", "password": "admin", **options})
        self.outlet_numbers = range(1, config["outputs"] + 1)
        super().__init__(config)
        self.delays = dict.fromkeys(self.outlets, 5000)
        self._timers: list[threading.Timer] = []

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/netio.json"): self.state, ("POST", "/netio.json"): self.write}

    def state(self, request: Request | None = None) -> dict[str, Any]:
        state: dict[str, Any] = {
            "Agent": {"Model": "NETIO 4All", "Version": "3.4.0", "JSONVer": "2.1", "DeviceName": "netio-sim",
                      "NumOutputs": len(self.outlets)},
            "Outputs": [{"ID": n, "Name": f"output_{n}", "State": int(on), "Action": 6, "Delay": self.delays[n]}
                        for n, on in self.outlets.items()]}
        if self.config["metered"]:  # Load W, Current mA, Energy Wh per output; GlobalMeasure totals
            readings = {n: self.reading(n) for n in self.outlets}
            for output in state["Outputs"]:
                watts, amps, _volts, wh = readings[output["ID"]]
                output.update(Current=round(amps * 1000), PowerFactor=1.0, Load=round(watts), Energy=round(wh))
            volts = next(iter(readings.values()))[2]
            state["GlobalMeasure"] = {
                "Voltage": round(volts, 1), "Frequency": 50.0,
                "TotalCurrent": round(sum(r[1] for r in readings.values()) * 1000),
                "OverallPowerFactor": 1.0, "TotalLoad": round(sum(r[0] for r in readings.values())),
                "TotalEnergy": round(sum(r[3] for r in readings.values()))}
        return state

    def write(self, request: Request) -> Response | dict[str, Any]:
        try:
            orders = request.json()["Outputs"]
        except (ValueError, KeyError, TypeError):
            return Response(400, "Bad Request")
        if self.config["read_only"]:
            return self.state()
        for order in orders:
            n, action = order.get("ID"), order.get("Action")
            if n not in self.outlets:
                return Response(400, "Bad Request")
            if action in (0, 1):
                self.outlets[n] = bool(action)
            elif action in (2, 3):
                self.outlets[n] = action == 3
                delay = order.get("Delay", self.delays[n]) / 1000
                timer = threading.Timer(delay, self._set, (n, action == 2))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
            elif action == 4:
                self.outlets[n] = not self.outlets[n]
        return self.state()

    def _set(self, n: int, on: bool) -> None:
        with self.lock:
            self.outlets[n] = on

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        super().stop()
