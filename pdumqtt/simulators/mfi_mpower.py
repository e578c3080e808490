"""A Ubiquiti mFi mPower's HTTP API behind its cookie session.

``GET /`` (and ``/login.cgi``) hand out an ``AIROS_SESSIONID`` cookie and the login page;
``POST /login.cgi`` with ``username``/``password`` and that cookie authorizes the session
and redirects to ``/power``, or answers the login page again ("Invalid credentials").
In a session, ``PUT /sensors/<N>/`` with ``output=0|1`` answers ``{"status": "success"}`` and
``GET /mfi/sensors.cgi`` the ports; outside one, every API request is redirected to the
login page. ``expire_sessions()`` forgets every session, as the device does after a while.
The login is ``username``/``password``, ``ubnt``/``ubnt`` by default; ``sensors`` ports.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qsl

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response

COOKIE = "AIROS_SESSIONID"


def _login_page(note: str = "") -> str:
    return ('<html><head><title>Login</title></head><body><form method="post" action="/login.cgi">'
            f'{note}<input name="username"><input type="password" name="password"></form></body></html>')


class MfiMpowerSimulator(HttpSimulator):
    garbage_body = "<html><body>mFi</body></html>"
    options = {
        vol.Optional("sensors", default=3): vol.All(int, vol.Range(min=1, max=8)),
        vol.Optional("username", default="ubnt"): str,  # Ubiquiti's factory login
        vol.Optional("password", default="ubnt"): str,
    }

    def __init__(self, options: dict[str, Any]) -> None:
        self.outlet_numbers = range(1, vol.Schema(self.options, extra=vol.ALLOW_EXTRA)(options)["sensors"] + 1)
        super().__init__(options)
        self.sessions: dict[str, bool] = {}  # session id: logged in
        self.logins = 0

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def routes(self) -> dict[tuple[str, str], Any]:
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/"): self.page, ("GET", "/login.cgi"): self.page, ("POST", "/login.cgi"): self.login,
            ("GET", "/power"): lambda r: self.api(r, lambda: "<html><body>Power</body></html>"),
            ("GET", "/mfi/sensors.cgi"): lambda r: self.api(r, self.sensors),
        }
        for n in self.outlets:
            routes[("PUT", f"/sensors/{n}/")] = lambda r, n=n: self.api(r, lambda: self.put(r, n))
        return routes

    def _session(self, request: Request) -> str | None:
        for part in request.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE and value in self.sessions:
                return value
        return None

    def page(self, request: Request) -> Response:
        headers = {}
        if self._session(request) is None:
            session = secrets.token_hex(16)
            self.sessions[session] = False
            headers["Set-Cookie"] = f"{COOKIE}={session}; Path=/"
        return Response(200, _login_page(), headers=headers)

    def login(self, request: Request) -> Response:
        session = self._session(request)
        form = dict(parse_qsl(request.body.decode(errors="replace")))
        if session is None:
            return Response(200, _login_page("<p>Your browser must accept cookies</p>"))
        if form.get("username") != self.config["username"] or form.get("password") != self.config["password"]:
            return Response(200, _login_page("<p>Invalid credentials.</p>"))
        self.sessions[session] = True
        self.logins += 1
        return Response(302, "", headers={"Location": "/power"})

    def api(self, request: Request, handler: Any) -> Any:
        session = self._session(request)
        if session is None or not self.sessions[session]:
            return Response(302, "", headers={"Location": f"/login.cgi?uri={request.path}"})
        return handler()

    def put(self, request: Request, n: int) -> Response | dict[str, Any]:
        output = dict(parse_qsl(request.body.decode(errors="replace"))).get("output")
        if output not in ("0", "1"):
            return {"status": "error", "message": "bad output"}
        self.outlets[n] = output == "1"
        return {"status": "success"}

    def sensors(self) -> dict[str, Any]:
        return {"status": "success", "sensors": [
            {"port": n, "output": int(on), "power": 12.5 if on else 0.0, "enabled": 0, "current": 0.05 if on else 0,
             "voltage": 231.2, "powerfactor": 0.9, "relay": int(on), "lock": 0} for n, on in self.outlets.items()]}
