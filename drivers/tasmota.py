"""Tasmota plugs and relay boards (Sonoff, Brennenstuhl, Nous, Shelly on Tasmota...) over HTTP.

Tasmota's web command endpoint: ``GET /cm?cmnd=Power<N> On|Off`` switches relay N and
``GET /cm?cmnd=Power<N>`` reads it; both answer ``{"POWER<N>": "ON"|"OFF"}``, and a device
with one relay answers ``{"POWER": ...}`` (unless ``SetOption26 1``). With a web admin
password set, the credentials go in the query (``&user=admin&password=...``) and a wrong
one is ``{"WARNING": "Need user=<username>&password=<password>"}``, with HTTP 401 on recent
firmware and HTTP 200 on older.

A plug with an energy monitor answers ``Status 8`` with ``{"StatusSNS": {"ENERGY": {"Total":
kWh, "Power": W, "Voltage": V, "Current": A, ...}}}``; a device metering several channels
gives ``Power`` and ``Current`` as one value per relay. Its ENERGY is the PDU's reading, and
outlet N's where the device gives values per channel, or for relay 1 of a single-channel plug.

PDUDaemon's names: ``tasmota`` (``port_count``, default 1), ``sonoff_s20_tasmota`` (1 relay),
``brennenstuhl_wspl01_tasmota`` (2), with options ``ip`` (else the PDU's name),
``username`` and ``password`` (sent only when both are set, as PDUDaemon does).
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError, HostAddress, Reading
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver


class Tasmota(HttpDriver):
    model = "Tasmota device"
    protocol = "HTTP (Tasmota /cm commands)"
    tested_against = "`tasmota` simulator (HTTP on loopback)"
    can_read = True
    can_meter = True
    outlet_readings = ("power", "current", "voltage", "energy")
    pdu_readings = ("power", "current", "voltage", "energy")
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password"): str,
    }

    def _command(self, port: int, value: str | None) -> bool:
        if self.config.get("relays"):  # PDUDaemon's names check the port as PDUDaemon does
            self.check_port(port, self.config["relays"])
        params = {"cmnd": f"Power{port}" + (f" {value}" if value else "")}
        if self.config.get("password"):
            params.update(user=self.config.get("username") or "admin", password=self.config["password"])
        # the credentials are in the query: no Authorization header as well
        # a refused login is HTTP 401 on recent firmware, HTTP 200 with the same warning on older
        reply = self.request_json("GET", "/cm", params=params, auth=False)
        if isinstance(reply, dict) and "Need user=" in str(reply.get("WARNING", "")):
            self.close()
            hint = "check username and password" if self.config.get("password") else "set password"
            raise self.error(f"GET /cm: refused the credentials ({reply['WARNING']}): {hint}")
        state = None
        if isinstance(reply, dict):
            state = reply.get(f"POWER{port}", reply.get("POWER") if port == 1 else None)
        self.expect(state in ("ON", "OFF"), f"GET /cm (Power{port})", reply)
        if value and state != value.upper():
            raise self.error(f"relay {port} is {state} after switching it {value.upper()}")
        return state == "ON"

    def set(self, port: int, on: bool) -> None:
        self._command(port, "ON" if on else "OFF")

    def get(self, port: int) -> bool:
        return self._command(port, None)

    def _energy(self) -> dict[str, Any] | None:
        params = {"cmnd": "Status 8"}
        if self.config.get("password"):
            params.update(user=self.config.get("username") or "admin", password=self.config["password"])
        reply = self.request_json("GET", "/cm", params=params, auth=False)
        if isinstance(reply, dict) and "Need user=" in str(reply.get("WARNING", "")):
            raise self.error(f"GET /cm (Status 8): refused the credentials ({reply['WARNING']})")
        sensors = reply.get("StatusSNS") if isinstance(reply, dict) else None
        self.expect(isinstance(sensors, dict), "GET /cm (Status 8)", reply)
        energy = sensors.get("ENERGY")  # type: ignore[union-attr]
        return energy if isinstance(energy, dict) else None  # no energy monitor

    def meter_outlet(self, port: int) -> Reading | None:
        energy = self._energy()
        if energy is None:
            return None
        if isinstance(energy.get("Power"), list):  # one value per channel
            def pick(key: str) -> float | None:
                value = energy.get(key)
                value = value[port - 1] if isinstance(value, list) and len(value) >= port else value
                return _number(value)
            return Reading(power=pick("Power"), current=pick("Current"), voltage=pick("Voltage"),
                           energy=pick("Total") if isinstance(energy.get("Total"), list) else None)
        if port != 1 or self.config.get("relays", 1) != 1:
            return Reading()  # one meter for the device: the PDU's reading, not this relay's
        return _reading(energy)

    def meter_pdu(self) -> Reading | None:
        energy = self._energy()
        return None if energy is None else _reading(energy)


def _number(value: Any) -> float | None:
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
        return float(sum(numbers)) if numbers else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _reading(energy: dict[str, Any]) -> Reading:
    """The whole device's meter: channels summed (the voltage is the first channel's)."""
    voltage = energy.get("Voltage")
    voltage = voltage[0] if isinstance(voltage, list) and voltage else voltage
    return Reading(power=_number(energy.get("Power")), current=_number(energy.get("Current")),
                   voltage=_number(voltage), energy=_number(energy.get("Total")))


def _pdudaemon_class(name: str, model: str, relays: int | None) -> type[Tasmota]:
    class Compat(Tasmota):
        native_driver = "tasmota_http"
        fixed_ports = relays
        options: ClassVar[dict[Any, Any]] = {
            vol.Optional("ip"): HostAddress(default_port=80),
            vol.Optional("username"): str,
            vol.Optional("password"): str,
            **({vol.Optional("port_count", default=1): vol.All(vol.Coerce(int), vol.Range(min=1, max=32))}
               if relays is None else {}),
        }

        def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
            if not (options.get("ip") or pdu):
                raise DriverError("no address: set ip, or name the PDU after its host")
            ours: dict[str, Any] = {"host": options.get("ip") or pdu,
                                    "relays": relays or options["port_count"]}
            if options.get("username") is not None and options.get("password") is not None:
                ours.update(username=options["username"], password=options["password"])
            super().__init__(ours, pdu=pdu, timeout=timeout)

    Compat.__name__ = Compat.__qualname__ = name
    extra = ", port_count" if relays is None else ""
    Compat.__doc__ = f"PDUDaemon's {name}: options ip, username, password{extra}."
    Compat.model = model
    return Compat


# PDUDaemon's names
GenericTasmota = _pdudaemon_class("GenericTasmota", "Tasmota device", None)
SonoffS20Tasmota = _pdudaemon_class("SonoffS20Tasmota", "Sonoff S20 (Tasmota)", 1)
BrennenstuhlWSPL01Tasmota = _pdudaemon_class("BrennenstuhlWSPL01Tasmota", "Brennenstuhl WSPL01 (Tasmota)", 2)
