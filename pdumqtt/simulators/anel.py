"""An ANEL NET-PwrCtrl strip's control URL: ``GET /?Sw_on=N,<user><password>`` (``Sw_off``).

A right login switches outlet N and answers the strip's page; a wrong one answers the
body ``User or password error.`` with HTTP 200, as the strips do. ``outlets`` is 8 (3 on
the HOME); the login is ``username``/``password``, admin/anel by default.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response


class AnelSimulator(HttpSimulator):
    garbage_body = "<html><body>NET-PwrCtrl</body></html>"
    options = {vol.Optional("outlets", default=8): vol.All(int, vol.Range(min=1, max=8))}

    def __init__(self, options: dict[str, Any]) -> None:
        config = vol.Schema(self.options)({"password": "anel", **options})
        self.outlet_numbers = range(1, config["outlets"] + 1)
        super().__init__(config)

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/"): self.control}

    def control(self, request: Request) -> Response | str:
        for key, on in (("Sw_on", True), ("Sw_off", False)):
            if key in request.query:
                number, _, login = request.query[key].partition(",")
                if login != self.config["username"] + self.config["password"]:
                    return "User or password error."
                if not number.isdigit() or int(number) not in self.outlets:
                    return Response(400, "<html><body>Bad Request</body></html>")
                self.outlets[int(number)] = on
        rows = "".join(f"<td>{n}: {'ON' if on else 'OFF'}</td>" for n, on in self.outlets.items())
        return f"<html><head><title>NET-PwrCtrl</title></head><body><table><tr>{rows}</tr></table></body></html>"
