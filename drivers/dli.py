"""Digital Loggers power controllers: the legacy web API (``dli_http``) and the REST API (``dli_rest``).

- ``dli_http`` (Web Power Switch, legacy firmware): ``GET /outlet?<N>=ON|OFF`` switches
  outlet N (1 to 8) and ``/outlet?<N>=CCL`` cycles it with the controller's own delay;
  ``GET /status`` answers a page holding ``<div id="state">ff</div>``, a hex mask where
  bit N-1 is outlet N. HTTP basic auth by default.
- ``dli_rest`` (Web Power Switch Pro, EPCR, DIN relays; "Allow REST-style API" on): ``PUT
  /restapi/relay/outlets/=<i>/state/`` with the form ``value=true|false`` switches outlet
  index i (0-based: port N is index N-1); ``GET`` of the same path answers ``[true]``;
  ``POST /restapi/relay/outlets/<i>/cycle/`` is the controller's own cycle; ``GET
  .../<i>/name/`` its name. Every request carries ``X-CSRF: x`` (the API refuses changes
  without it) and ``Accept: application/json``; auth is HTTP digest by default. The
  factory certificate is self-signed: give ``ca_file``, or ``verify: false``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import NoSuchOutlet
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, AUTH_OPTIONS, HttpDriver

OUTLETS = 8
STATE_DIV = re.compile(r"""id=["']?state["']?\s*>\s*([0-9a-fA-F]+)\s*<""")
REST_HEADERS = {"X-CSRF": "x", "Accept": "application/json"}


class DliHttp(HttpDriver):
    model = "Digital Loggers Web Power Switch (legacy web API)"
    protocol = "HTTP (outlet?N=ON|OFF|CCL, status page)"
    tested_against = "`dli_http` simulator (HTTP on loopback, basic auth)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {**ADDRESS_OPTIONS, **AUTH_OPTIONS}

    def _outlet(self, port: int, action: str) -> None:
        self.check_port(port, OUTLETS)
        self.request("GET", "/outlet", params={str(port): action})

    def set(self, port: int, on: bool) -> None:
        self._outlet(port, "ON" if on else "OFF")

    def cycle(self, port: int, delay: float) -> bool:
        self._outlet(port, "CCL")  # the controller's own cycle, with the delay set on it
        return True

    def get(self, port: int) -> bool:
        self.check_port(port, OUTLETS)
        text = self.request("GET", "/status").text
        match = STATE_DIV.search(text)
        self.expect(match is not None, 'GET /status (<div id="state">)', text)
        return bool(int(match.group(1), 16) >> (port - 1) & 1)  # type: ignore[union-attr] - checked above


class DliRest(HttpDriver):
    model = "Digital Loggers power controller (REST API)"
    protocol = "HTTP (DLI REST API, digest auth, X-CSRF)"
    tested_against = "`dli_rest` simulator (HTTP on loopback, digest auth)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        **{key: value for key, value in AUTH_OPTIONS.items() if key != "auth"},
        vol.Optional("auth", default="digest"): vol.All(vol.Lower, vol.In(["basic", "digest"])),
    }

    def _index(self, port: int) -> int:
        if port < 1:
            raise NoSuchOutlet(f"port {port} does not exist: port 1 is the controller's outlet index 0")
        return port - 1

    def set(self, port: int, on: bool) -> None:
        self.request("PUT", f"/restapi/relay/outlets/={self._index(port)}/state/",
                     data={"value": "true" if on else "false"}, headers=REST_HEADERS, expect=None)

    def get(self, port: int) -> bool:
        path = f"/restapi/relay/outlets/={self._index(port)}/state/"
        reply = self.request_json("GET", path, headers=REST_HEADERS)
        state = reply[0] if isinstance(reply, list) and len(reply) == 1 else reply
        if reply == []:
            raise self.error(f"GET {path}: the controller has no outlet index {port - 1} (port {port})")
        self.expect(isinstance(state, bool), f"GET {path}", reply)
        return state

    def cycle(self, port: int, delay: float) -> bool:
        self.request("POST", f"/restapi/relay/outlets/{self._index(port)}/cycle/", headers=REST_HEADERS,
                     expect=None)
        return True

    def outlet_name(self, port: int) -> str | None:
        name = self.request_json("GET", f"/restapi/relay/outlets/{self._index(port)}/name/", headers=REST_HEADERS)
        return name if isinstance(name, str) and name else None
