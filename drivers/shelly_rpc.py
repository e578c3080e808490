"""Shelly Gen2, Gen3 and Gen4 devices (Plus, Pro, Mini...) over their HTTP JSON-RPC API.

``POST /rpc`` with a JSON-RPC 2.0 frame: ``Switch.Set {"id": N, "on": bool}`` switches,
``Switch.GetStatus {"id": N}`` answers ``{"output": bool, ...}``, ``Switch.GetConfig``
gives the switch's ``name``. A failed call is a frame with ``error: {code, message}``.
With authentication enabled the device asks for HTTP digest auth with SHA-256 (user
``admin``, realm the device id). ``cycle`` is the device's own: ``Switch.Set`` off with
``toggle_after`` = the delay, so the device switches back on by itself. A PM model's
``Switch.GetStatus`` also has ``apower`` (W), ``voltage``, ``current`` and ``aenergy.total``
(Wh): the outlet's meter; a model without one (Plus 1, Pro 4) leaves them out.

Switch ids count from 0. ``shelly_rpc``'s port N is switch id N-1; PDUDaemon's name
``shelly_gen2`` keeps PDUDaemon's numbering, port N = switch id N (0 to 3), and reaches
the device by the PDU's name (or ``hostname``, a pdumqtt addition, as is ``password``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError, HostAddress, Reading
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver


class ShellyRpc(HttpDriver):
    model = "Shelly Gen2+ device"
    protocol = "HTTP (JSON-RPC 2.0)"
    tested_against = "`shelly_rpc` simulator (HTTP on loopback, SHA-256 digest auth)"
    can_read = True
    can_meter = True
    outlet_readings = ("power", "current", "voltage", "energy")
    options: ClassVar[dict[Any, Any]] = {**ADDRESS_OPTIONS, vol.Optional("password"): str}
    #: The switch id of port 1.
    id_offset: ClassVar[int] = -1

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        # Shelly's user is always admin and its auth always digest
        super().__init__({**options, "username": "admin", "auth": "digest"}, pdu=pdu, timeout=timeout)

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """One JSON-RPC call; its ``result``, or a DriverError with the device's error message."""
        reply = self.request_json("POST", "/rpc", json={"jsonrpc": "2.0", "id": 1, "src": "pdumqtt",
                                                       "method": method, "params": params})
        self.expect(isinstance(reply, dict) and ("result" in reply or "error" in reply), f"{method}", reply)
        if "error" in reply:
            error = reply["error"] if isinstance(reply["error"], dict) else {"message": reply["error"]}
            raise self.error(f"{method} refused: {error.get('message', '')} (code {error.get('code', '?')})")
        return reply["result"]

    def _id(self, port: int) -> int:
        switch = port + self.id_offset
        if switch < 0:
            raise DriverError(f"port {port} has no switch: switch ids count from 0")
        return switch

    def set(self, port: int, on: bool) -> None:
        self.call("Switch.Set", {"id": self._id(port), "on": on})

    def get(self, port: int) -> bool:
        status = self.call("Switch.GetStatus", {"id": self._id(port)})
        self.expect(isinstance(status, dict) and isinstance(status.get("output"), bool),
                    "Switch.GetStatus", status)
        return status["output"]

    def meter_outlet(self, port: int) -> Reading | None:
        status = self.call("Switch.GetStatus", {"id": self._id(port)})
        self.expect(isinstance(status, dict), "Switch.GetStatus", status)
        if "apower" not in status:
            return None  # a switch without a meter
        energy = status.get("aenergy")
        total = energy.get("total") if isinstance(energy, dict) else None
        return Reading(power=_number(status.get("apower")), current=_number(status.get("current")),
                       voltage=_number(status.get("voltage")),
                       energy=None if _number(total) is None else _number(total) / 1000)  # type: ignore[operator]

    def cycle(self, port: int, delay: float) -> bool:
        if delay <= 0:
            return False
        self.call("Switch.Set", {"id": self._id(port), "on": False, "toggle_after": delay})
        return True

    def outlet_name(self, port: int) -> str | None:
        config = self.call("Switch.GetConfig", {"id": self._id(port)})
        return config.get("name") if isinstance(config, dict) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class ShellyGen2(ShellyRpc):
    """PDUDaemon's ``shelly_gen2``: the PDU's name is the host, ports are switch ids 0 to 3."""

    model = "Shelly Gen2+ device"
    native_driver = "shelly_rpc"
    fixed_ports = 4
    first_port = 0
    id_offset = 0
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("hostname"): HostAddress(default_port=80),
        vol.Optional("password"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours = {"host": options.get("hostname") or pdu, **{k: v for k, v in options.items() if k != "hostname"}}
        super().__init__(ours, pdu=pdu, timeout=timeout)

    def _id(self, port: int) -> int:
        if not 0 <= port <= 3:  # PDUDaemon's check
            raise DriverError(f"port {port}: shelly_gen2 takes switch ids 0 to 3")
        return port
