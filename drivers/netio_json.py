"""NETIO power sockets and PDUs (PowerPDU, PowerCable, PowerBOX, NETIO 4...) over the JSON API.

``GET /netio.json`` answers the device's state, ``{"Agent": {...}, "Outputs": [{"ID": 1,
"Name": ..., "State": 0|1, "Action": ..., "Delay": ms}, ...]}``; ``POST /netio.json`` with
``{"Outputs": [{"ID": N, "Action": A}]}`` switches (A: 0 off, 1 on, 2 short off, 3 short
on, 4 toggle) and answers the updated state. Credentials are HTTP basic auth (the JSON API
has its own read and write users). ``cycle`` is the device's own: action 2 (short off)
with ``Delay`` = the delay in ms, after which the device switches the output on again.
Metering models (PowerPDU 4KS, PowerCable) give each output's ``Load`` (W), ``Current``
(mA) and ``Energy`` (Wh) and ``GlobalMeasure`` the totals and ``Voltage``; the answer to a
switch carries them too, so its ack has the outlet's reading at no extra cost.

PDUDaemon's ``netiojson`` takes ``ip`` (else the PDU's name), ``port`` (80), ``username``
and ``password`` (both ``admin``), ``number_of_outputs`` (4).
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import NoSuchOutlet, Reading
from pdumqtt.drivers.http_transport import HTTP_OPTIONS, HttpDriver

OFF, ON, SHORT_OFF = 0, 1, 2


class NetioJson(HttpDriver):
    model = "NETIO (JSON API)"
    protocol = "HTTP (NETIO JSON API)"
    tested_against = "`netio_json` simulator (HTTP on loopback, basic auth)"
    can_read = True
    can_meter = True
    outlet_readings = ("power", "current", "voltage", "energy")
    pdu_readings = ("power", "current", "voltage", "energy")
    options: ClassVar[dict[Any, Any]] = HTTP_OPTIONS

    def _output(self, reply: Any, port: int, what: str) -> dict[str, Any]:
        outputs = reply.get("Outputs") if isinstance(reply, dict) else None
        self.expect(isinstance(outputs, list), what, reply)
        for output in outputs:
            if isinstance(output, dict) and str(output.get("ID")) == str(port):
                self.expect(output.get("State") in (0, 1), what, output)
                return output
        raise self.error(f"{what}: the device has no output {port}")

    def _write(self, port: int, action: int, delay_ms: int | None = None) -> dict[str, Any]:
        order: dict[str, Any] = {"ID": port, "Action": action}
        if delay_ms is not None:
            order["Delay"] = delay_ms
        reply = self.request_json("POST", "/netio.json", json={"Outputs": [order]})
        return self._output(reply, port, "POST /netio.json")

    def set(self, port: int, on: bool) -> Reading | None:  # type: ignore[override]
        reply = self.request_json("POST", "/netio.json", json={"Outputs": [{"ID": port, "Action": ON if on else OFF}]})
        output = self._output(reply, port, "POST /netio.json")
        if output["State"] != (ON if on else OFF):
            raise self.error(f"output {port} is {'on' if output['State'] else 'off'} after switching it "
                             f"{'on' if on else 'off'} (is the JSON API user allowed to write?)")
        return _output_reading(reply, output)

    def meter_outlet(self, port: int) -> Reading | None:
        reply = self.request_json("GET", "/netio.json")
        return _output_reading(reply, self._output(reply, port, "GET /netio.json"))

    def meter_pdu(self) -> Reading | None:
        reply = self.request_json("GET", "/netio.json")
        total = reply.get("GlobalMeasure") if isinstance(reply, dict) else None
        if not isinstance(total, dict) or "TotalLoad" not in total:
            return None
        current, energy = _number(total.get("TotalCurrent")), _number(total.get("TotalEnergy"))
        return Reading(power=_number(total.get("TotalLoad")), voltage=_number(total.get("Voltage")),
                       current=None if current is None else current / 1000,
                       energy=None if energy is None else energy / 1000)

    def get(self, port: int) -> bool:
        return self._output(self.request_json("GET", "/netio.json"), port, "GET /netio.json")["State"] == ON

    def cycle(self, port: int, delay: float) -> bool:
        if delay <= 0:
            return False
        self._write(port, SHORT_OFF, round(delay * 1000))
        return True

    def outlet_name(self, port: int) -> str | None:
        return self._output(self.request_json("GET", "/netio.json"), port, "GET /netio.json").get("Name")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _output_reading(reply: Any, output: dict[str, Any]) -> Reading | None:
    """An output's Load (W), Current (mA), Energy (Wh), with the device's Voltage; None without."""
    if "Load" not in output:
        return None  # a model without meters
    total = reply.get("GlobalMeasure") if isinstance(reply, dict) else None
    current, energy = _number(output.get("Current")), _number(output.get("Energy"))
    return Reading(power=_number(output.get("Load")), current=None if current is None else current / 1000,
                   voltage=_number(total.get("Voltage")) if isinstance(total, dict) else None,
                   energy=None if energy is None else energy / 1000)


class NetioJsonPdudaemon(NetioJson):
    """PDUDaemon's ``netiojson``: ip, port, username, password, number_of_outputs."""

    native_driver = "netio_json"
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("ip"): str,
        vol.Optional("port", default=80): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
        vol.Optional("number_of_outputs", default=4): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ip = options.get("ip") or pdu
        host = f"[{ip}]" if ":" in ip else ip
        ours = {"host": f"{host}:{options['port']}", "username": options["username"],
                "password": options["password"], "auth": "basic", "outputs": options["number_of_outputs"]}
        super().__init__(ours, pdu=pdu, timeout=timeout)

    @classmethod
    def ports_for(cls, options: dict[str, Any]) -> tuple[int, str] | None:
        count = options.get("number_of_outputs", 4)
        try:
            return int(count), ("its number_of_outputs" if "number_of_outputs" in options
                                else "PDUDaemon's default number_of_outputs")
        except (TypeError, ValueError):
            return None

    def _check(self, port: int) -> None:
        if not 1 <= port <= self.config["outputs"]:
            raise NoSuchOutlet(f"output {port} is out of range: number_of_outputs is {self.config['outputs']}")

    def set(self, port: int, on: bool) -> Reading | None:  # type: ignore[override]
        self._check(port)
        return super().set(port, on)

    def get(self, port: int) -> bool:
        self._check(port)
        return super().get(port)

    def cycle(self, port: int, delay: float) -> bool:
        self._check(port)
        return super().cycle(port, delay)
