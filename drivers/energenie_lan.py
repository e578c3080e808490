"""Energenie EG-PMS2-LAN / EG-PMS2-WLAN (and EG-PM2-LAN) over their web interface (``energenie_lan``).

The device keeps one login session, bound to the client's IP address, so every call is
log in, act, log out (the logout frees the device for other hosts, as labgrid does):

- log in: ``POST /login.html`` with the form ``pw=<password>``; the answer shows a "Log Out"
  link when the password was right, the login form again when not;
- switch: ``POST /`` with the form ``cte<N>=1|0`` (sockets 1 to 4);
- read: ``GET /energenie.html``, whose script holds ``var sockstates = [1,0,0,0];``;
- log out: ``GET /login.html``.

``password`` is the web password, ``1`` from the factory (that one is no secret; any other
appears in no message).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

SOCKETS = 4
FACTORY_PASSWORD = "1"
LOGGED_IN = re.compile(r"""href=["']?login\.html["']?[^>]*>\s*Log\s*Out""", re.IGNORECASE)
LOGIN_FORM = re.compile(r"""name=["']?pw\b""", re.IGNORECASE)
SOCKSTATES = re.compile(r"var\s+sockstates\s*=\s*\[\s*([01](?:\s*,\s*[01])*)\s*\]")


class EnergenieLan(HttpDriver):
    model = "Energenie EG-PMS2-LAN"
    protocol = "HTTP (login session, form posts)"
    tested_against = "`energenie_lan` simulator (HTTP on loopback, login session)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("password", default=FACTORY_PASSWORD): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({k: v for k, v in options.items() if k != "password"}, pdu=pdu, timeout=timeout)
        self._password = options.get("password", FACTORY_PASSWORD)
        if self._password != FACTORY_PASSWORD:  # "1" masked would garble every message
            self.add_secret(self._password)

    def _logged_in(self, port: int, method: str, path: str, data: dict[str, Any] | None = None) -> str:
        """Log in, send one request, log out; the request's answer."""
        self.check_port(port, SOCKETS)
        login = self.request("POST", "/login.html", data={"pw": self._password}, auth=False).text
        if not LOGGED_IN.search(login):
            self.close()
            if LOGIN_FORM.search(login):
                raise self.error("POST /login.html: refused the password (the login form came back): check password")
            raise self.error(f"POST /login.html: no Log Out link after logging in: {self.excerpt(login)}")
        # after a failure no logout: the device may not answer, and the next login from here takes over
        text = self.request(method, path, data=data, auth=False).text
        self.request("GET", "/login.html", auth=False)  # log out: the device serves one host at a time
        if LOGIN_FORM.search(text) and not SOCKSTATES.search(text):
            self.close()
            raise self.error(f"{method} {path}: the device answered its login form: another host may hold its "
                             "session (it serves one at a time)")
        return text

    def _states(self, text: str, what: str) -> list[bool]:
        match = SOCKSTATES.search(text)
        self.expect(match is not None, f"{what} (var sockstates)", text)
        return [s.strip() == "1" for s in match.group(1).split(",")]  # type: ignore[union-attr] - checked above

    def set(self, port: int, on: bool) -> None:
        text = self._logged_in(port, "POST", "/", {f"cte{port}": int(on)})
        if SOCKSTATES.search(text):  # the answer is the status page: check the socket took it
            states = self._states(text, "POST /")
            if len(states) >= port and states[port - 1] != on:
                raise self.error(f"socket {port} is {'on' if states[port - 1] else 'off'} after switching it "
                                 f"{'on' if on else 'off'}")

    def get(self, port: int) -> bool:
        states = self._states(self._logged_in(port, "GET", "/energenie.html"), "GET /energenie.html")
        if len(states) < port:
            raise self.error(f"socket {port} does not exist: the device reports {len(states)} sockets")
        return states[port - 1]
