"""An Energenie EG-PMS2-LAN's web interface: a login session, ``cte<N>`` form posts, ``sockstates``.

``POST /login.html`` with ``pw=<password>`` opens the session (the device has one; the
answer shows a "Log Out" link) or, with a wrong password, answers the login form again.
``GET /login.html`` closes it and answers the login form. In a session, ``POST /`` with
``cte<N>=0|1`` (N 1 to 4) switches and answers the status page; ``GET /energenie.html`` is
the status page, whose script holds ``var sockstates = [...]``. Outside one, both answer
the login form. The password is ``password``, ``1`` from the factory.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response

LOGIN_PAGE = ('<html><head><title>EnerGenie Web:</title></head><body><form method="post" action="login.html">'
              '<input type="password" name="pw"><input type="submit" value="Enter"></form></body></html>')


class EnergenieSimulator(HttpSimulator):
    outlet_numbers = range(1, 5)
    garbage_body = "<html><body>EnerGenie</body></html>"
    options = {vol.Optional("password", default="1"): str}  # the factory password

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.session = False
        self.logins = 0
        self.logouts = 0

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("POST", "/login.html"): self.login, ("GET", "/login.html"): self.logout,
                ("POST", "/"): self.switch, ("GET", "/energenie.html"): self.status}

    def login(self, request: Request) -> str:
        if dict(parse_qsl(request.body.decode(errors="replace"))).get("pw") != self.config["password"]:
            return LOGIN_PAGE
        self.session = True
        self.logins += 1
        return self.page()

    def logout(self, request: Request) -> str:
        if self.session:
            self.logouts += 1
        self.session = False
        return LOGIN_PAGE

    def switch(self, request: Request) -> Response | str:
        if not self.session:
            return LOGIN_PAGE
        for key, value in parse_qsl(request.body.decode(errors="replace")):
            if not key.startswith("cte") or not key[3:].isdigit() or int(key[3:]) not in self.outlets \
                    or value not in ("0", "1"):
                return Response(400, "<html><body>Bad Request</body></html>")
            self.outlets[int(key[3:])] = value == "1"
        return self.page()

    def status(self, request: Request) -> str:
        return self.page() if self.session else LOGIN_PAGE

    def page(self) -> str:
        states = ",".join(str(int(on)) for on in self.outlets.values())
        return ('<html><head><title>EnerGenie Web:</title><script>'
                f'var sockstates = [{states}];var sockNames = ["1","2","3","4"];</script></head><body>'
                '<div class="boxmenuitem"><a href="login.html">Log Out</a></div></body></html>')
