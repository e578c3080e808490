"""Shelly Gen1 devices (Shelly 1, 1PM, 2.5, 4Pro, Plug S, EM...) over their HTTP API.

``POST /relay/<id>`` with the form ``turn=on|off`` switches relay ``id`` (counting from 0)
and ``GET /relay/<id>`` reads it; both answer ``{"ison": bool, "has_timer": bool, ...}``.
``timer=<seconds>`` with ``turn`` is the device's flip-back timer, which makes ``cycle``
the device's own: off with ``timer`` = the delay, and the device switches back on by
itself. ``GET /settings/relay/<id>`` gives the relay's ``name``. A relay the device lacks
answers HTTP 404. With "restrict login" set, the device asks for HTTP basic auth.

Port N is relay N-1 (the first relay, 0, is port 1), as in ``shelly_rpc``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver


class ShellyGen1(HttpDriver):
    model = "Shelly Gen1 device"
    protocol = "HTTP (Shelly Gen1 /relay API)"
    tested_against = "`shelly_gen1` simulator (HTTP on loopback, basic auth)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({**options, "auth": "basic"}, pdu=pdu, timeout=timeout)

    def _relay(self, port: int, form: dict[str, Any] | None = None) -> bool:
        if port < 1:
            raise DriverError(f"port {port} has no relay: port 1 is the device's relay 0")
        path = f"/relay/{port - 1}"
        response = self.request("POST" if form else "GET", path, data=form, expect=(200, 404))
        if response.status_code == 404:
            self.close()
            raise self.error(f"{path}: the device has no relay {port - 1} (port {port}; HTTP 404)")
        try:
            reply = response.json()
        except ValueError:
            reply = response.text
        self.expect(isinstance(reply, dict) and isinstance(reply.get("ison"), bool), path, reply)
        return reply["ison"]

    def set(self, port: int, on: bool) -> None:
        state = self._relay(port, {"turn": "on" if on else "off"})
        if state != on:
            raise self.error(f"relay {port - 1} is {'on' if state else 'off'} after switching it "
                             f"{'on' if on else 'off'}")

    def get(self, port: int) -> bool:
        return self._relay(port)

    def cycle(self, port: int, delay: float) -> bool:
        if delay <= 0:
            return False
        # the flip-back timer counts whole seconds
        self._relay(port, {"turn": "off", "timer": max(1, math.ceil(delay))})
        return True

    def outlet_name(self, port: int) -> str | None:
        reply = self.request_json("GET", f"/settings/relay/{port - 1}")
        if not isinstance(reply, dict):
            return None
        return reply.get("name") or None
