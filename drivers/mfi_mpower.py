"""Ubiquiti mFi mPower power strips (mPower, mini, Pro) over their HTTP API (``mfi_mpower``).

The API is behind a cookie session: ``GET /`` hands out an ``AIROS_SESSIONID`` cookie,
``POST /login.cgi`` with the form ``username``, ``password`` authorizes it. Then ``PUT
/sensors/<N>/`` with the form ``output=0|1`` switches port N (from 1, as printed on the
strip) and ``GET /mfi/sensors.cgi`` answers ``{"status": "success", "sensors": [{"port": 1,
"output": 1, ...}, ...]}``. A request outside a session is sent to the login page.

The session is kept between calls (dropped after a failure). When the device has expired
it, the driver logs in again and repeats the request once; a login page after a fresh
login means the credentials were refused. The defaults are Ubiquiti's factory
``ubnt``/``ubnt`` (that password is no secret; any other appears in no message).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import requests
import voluptuous as vol

from pdumqtt.drivers import NoSuchOutlet
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

FACTORY_PASSWORD = "ubnt"
LOGIN_PAGE = re.compile(r"""login\.cgi|name=["']?password""", re.IGNORECASE)


class MfiMpower(HttpDriver):
    model = "Ubiquiti mFi mPower"
    protocol = "HTTP (mFi sensors API, cookie session)"
    tested_against = "`mfi_mpower` simulator (HTTP on loopback, cookie login)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="ubnt"): str,
        vol.Optional("password", default=FACTORY_PASSWORD): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({k: v for k, v in options.items() if k != "password"}, pdu=pdu, timeout=timeout)
        self._password = options.get("password", FACTORY_PASSWORD)
        if self._password != FACTORY_PASSWORD:
            self.add_secret(self._password)
        self._fresh = False  # the session was logged in during this call

    def session_opened(self) -> None:
        self.request("GET", "/", auth=False, expect=None)  # the AIROS_SESSIONID cookie
        self.request("POST", "/login.cgi", data={"username": self.config.get("username", "ubnt"),
                                                 "password": self._password}, auth=False, expect=None)
        self._fresh = True

    def _api(self, method: str, path: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        self._fresh = False
        response = self.request(method, path, data=data, auth=False)  # a new session logs in first
        if not self._fresh and not self._is_json(response) and LOGIN_PAGE.search(response.text):
            self.close()  # the device expired the session: once more, in a new one
            response = self.request(method, path, data=data, auth=False)
        return self._reply(response, f"{method} {path}")

    @staticmethod
    def _is_json(response: requests.Response) -> bool:
        return response.headers.get("Content-Type", "").startswith("application/json")

    def _reply(self, response: requests.Response, what: str) -> dict[str, Any]:
        text = response.text
        if not self._is_json(response):
            self.close()
            if LOGIN_PAGE.search(text):
                raise self.error(f"{what}: refused the login (the device answered its login page): "
                                 "check username and password")
            raise self.error(f"{what}: answered with a body that is not JSON: {self.excerpt(text)}")
        try:
            reply = response.json()
        except ValueError:
            reply = None
        self.expect(isinstance(reply, dict) and "status" in reply, what, text)
        if reply["status"] != "success":  # type: ignore[index] - checked above
            self.close()
            raise self.error(f"{what}: the device answered status {reply['status']!r}")  # type: ignore[index]
        return reply  # type: ignore[return-value]

    def set(self, port: int, on: bool) -> None:
        if port < 1:
            raise NoSuchOutlet(f"port {port} does not exist: mPower ports count from 1")
        self._api("PUT", f"/sensors/{port}/", {"output": int(on)})

    def get(self, port: int) -> bool:
        if port < 1:
            raise NoSuchOutlet(f"port {port} does not exist: mPower ports count from 1")
        reply = self._api("GET", "/mfi/sensors.cgi")
        sensors = reply.get("sensors")
        self.expect(isinstance(sensors, list), "GET /mfi/sensors.cgi (sensors)", reply)
        sensor = next((s for s in sensors if isinstance(s, dict) and s.get("port") == port), None)
        if sensor is None:
            ports = [s.get("port") for s in sensors if isinstance(s, dict)]
            raise self.error(f"port {port} does not exist: the device reports ports {ports}")
        self.expect(sensor.get("output") in (0, 1), f"GET /mfi/sensors.cgi (port {port})", sensor)
        return sensor["output"] == 1
