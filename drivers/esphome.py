"""ESPHome devices (relay boards, plugs) through their ``web_server`` REST API.

``POST /switch/<object id>/turn_on`` (``turn_off``, ``toggle``) switches; ``GET
/switch/<object id>`` answers ``{"id": "switch-<object id>", "value": bool, "state":
"ON"|"OFF"}``; an unknown id is HTTP 404. With ``web_server: auth:`` set, the device asks
for a login: the Arduino web server challenges with digest (and takes basic too), the
ESP-IDF one with basic. So ``auth`` is ``auto`` here: the first request goes without
credentials and the device's challenge picks the scheme (``basic`` or ``digest`` fix it).

Outlets are addressed by the switch's object id: a port's **name** is its entity's object
id (``ports: [relay_1, relay_2]`` addresses ``/switch/relay_1`` as port ``relay_1`` or 1);
a port named by its number uses the number, as PDUDaemon's ``esphome-http`` does with the
port it is given. ``esphome-http`` takes PDUDaemon's options ``port`` (80), ``username``
and ``password`` (digest auth when both are set), and the PDU's name as the host (or
``hostname``, a pdumqtt addition).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import voluptuous as vol

from pdumqtt.drivers import join_host
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver


class Esphome(HttpDriver):
    model = "ESPHome device"
    protocol = "HTTP (ESPHome web_server REST)"
    tested_against = "`esphome` simulator (HTTP on loopback, basic and digest auth)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username"): str,
        vol.Optional("password"): str,
        vol.Optional("auth", default="auto"): vol.All(vol.Lower, vol.In(["auto", "basic", "digest"])),
    }

    def _path(self, port: int) -> str:
        return f"/switch/{quote(self.port_names.get(port, str(port)), safe='')}"

    def set(self, port: int, on: bool) -> None:
        self.request("POST", f"{self._path(port)}/{'turn_on' if on else 'turn_off'}", expect=None)

    def get(self, port: int) -> bool:
        state = self.request_json("GET", self._path(port))
        value = state.get("value") if isinstance(state, dict) else None
        if not isinstance(value, bool) and isinstance(state, dict):
            value = {"ON": True, "OFF": False}.get(str(state.get("state")).upper())
        self.expect(isinstance(value, bool), f"GET {self._path(port)}", state)
        return bool(value)


class EsphomeHttp(Esphome):
    """PDUDaemon's ``esphome-http``: port, username, password; the PDU's name is the host."""

    native_driver = "esphome"
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("hostname"): str,
        vol.Optional("port", default=80): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("username"): str,
        vol.Optional("password"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        host = options.get("hostname") or pdu
        ours: dict[str, Any] = {"host": join_host(host, options["port"])}
        if options.get("username") and options.get("password"):  # as PDUDaemon: auth only with both
            # PDUDaemon sends digest; auto also reaches the ESP-IDF web server, which asks for basic
            ours.update(username=options["username"], password=options["password"], auth="auto")
        super().__init__(ours, pdu=pdu, timeout=timeout)
