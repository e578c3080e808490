"""Switches managed by Home Assistant, through its REST API and a long-lived access token.

``POST /api/services/switch/turn_on`` (``turn_off``) with ``{"entity_id": "switch.<name>"}``
switches and answers the list of states it changed; ``GET /api/states/switch.<name>``
answers ``{"entity_id", "state": "on"|"off"|"unavailable", ...}``. Every request carries
``Authorization: Bearer <token>``; a bad token is HTTP 401, an unknown entity 404.

A port's **name** is the entity: port ``dut_power`` is ``switch.dut_power``; a name with a
dot is a whole entity id in another domain (``light.bench``, ``input_boolean.x``). The
native ``homeassistant`` takes ``host`` (port 8123 by default), ``https``, ``verify``,
``ca_file`` and ``token``. PDUDaemon's ``home-assistant-http`` takes ``hostname`` (else the
PDU's name), ``port`` (80) and ``api_key``.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import voluptuous as vol

from pdumqtt.drivers import HostAddress, join_host
from pdumqtt.drivers.http_transport import HttpDriver, ca_file_path


class HomeAssistant(HttpDriver):
    model = "Home Assistant switch"
    protocol = "HTTP (Home Assistant REST API)"
    tested_against = "`homeassistant` simulator (HTTP on loopback, bearer token)"
    can_read = True
    default_port = 8123
    options: ClassVar[dict[Any, Any]] = {
        vol.Required("host"): HostAddress(default_port=8123),
        vol.Optional("https", default=False): bool,
        vol.Optional("verify", default=True): bool,
        vol.Optional("ca_file"): ca_file_path,
        vol.Required("token"): vol.All(str, vol.Length(min=1)),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self.add_secret(options.get("token"))

    def entity(self, port: int) -> str:
        name = self.port_names.get(port, str(port))
        return name if "." in name else f"switch.{name}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.get('token') or ''}"}

    def set(self, port: int, on: bool) -> None:
        entity = self.entity(port)
        domain = entity.split(".", 1)[0]
        self.request("POST", f"/api/services/{quote(domain)}/{'turn_on' if on else 'turn_off'}",
                     json={"entity_id": entity}, headers=self._headers(), auth=False)

    def get(self, port: int) -> bool:
        entity = self.entity(port)
        state = self.request_json("GET", f"/api/states/{quote(entity)}", headers=self._headers(), auth=False)
        value = state.get("state") if isinstance(state, dict) else None
        self.expect(isinstance(value, str), f"GET /api/states/{entity}", state)
        if value not in ("on", "off"):
            raise self.error(f"{entity} is {value!r}, neither on nor off")
        return value == "on"

    def outlet_name(self, port: int) -> str | None:
        entity = self.entity(port)
        state = self.request_json("GET", f"/api/states/{quote(entity)}", headers=self._headers(), auth=False)
        attributes = state.get("attributes") if isinstance(state, dict) else None
        return attributes.get("friendly_name") if isinstance(attributes, dict) else None


class HomeAssistantHttp(HomeAssistant):
    """PDUDaemon's ``home-assistant-http``: hostname (else the PDU's name), port (80), api_key."""

    native_driver = "homeassistant"
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("hostname"): str,
        vol.Optional("port", default=80): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("api_key"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        host = options.get("hostname") or pdu
        address = join_host(host, options["port"])
        # PDUDaemon sends "Bearer None" without an api_key: Home Assistant then answers 401
        super().__init__({"host": address, "token": options.get("api_key") or ""}, pdu=pdu, timeout=timeout)
