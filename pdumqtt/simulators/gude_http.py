"""A Gude Expert Power Control PDU's HTTP interface, as one of four ``model`` firmwares.

Every model: ``GET /ov.html`` (and ``/``) with ``cmd=1&p=<N>&s=0|1`` switches output N, with
``cmd=5&p=<N>&a1=0|1&a2=0|1&s=<seconds>`` runs batch mode (a1 now, a2 after s seconds),
``cmd=12&p=<N>`` resets (off, on after ``reset_delay``); the page answers with a ``<meta
http-equiv="powerstate" content="Power Port N,0|1">`` per output. ``model``:

- ``8008``: ov.html only, as above;
- ``8316``: ov.html's tags leave out the port number (the 8316 firmware bug);
- ``8225``: also ``/statusjsn.js?components=N`` (JSON ``outputs`` when ``components`` has bit 0);
- ``8031``: also ``/status.json?components=N``, which takes the same commands.

``blocked_by`` (an IP address) makes every page say the device is blocked by another user,
as it does while someone else's web session holds it. Basic auth when ``password`` is set.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response
from pdumqtt.simulators._later import LaterMixin

MODELS = ("8008", "8316", "8225", "8031")


class GudeSimulator(LaterMixin, HttpSimulator):
    garbage_body = "<html><body>Expert Power Control</body></html>"
    options = {
        vol.Optional("model", default="8008"): vol.In(MODELS),
        vol.Optional("outputs", default=8): vol.All(int, vol.Range(min=1, max=24)),
        vol.Optional("reset_delay", default=0.3): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("blocked_by", default=None): vol.Any(None, str),
        vol.Optional("names", default=[]): [str],
        vol.Optional("auth"): vol.In(["none", "basic", "digest"]),  # no default: basic when a password is set
    }

    def __init__(self, options: dict[str, Any]) -> None:
        self.outlet_numbers = range(1, vol.Schema(self.options, extra=vol.ALLOW_EXTRA)(options)["outputs"] + 1)
        super().__init__({"auth": "basic" if options.get("password") else "none", **options})
        self.batches: list[dict[str, str]] = []

    def routes(self) -> dict[tuple[str, str], Any]:
        routes = {("GET", "/ov.html"): self.ov, ("GET", "/"): self.ov}
        model = self.config["model"]
        if model == "8225":
            routes[("GET", "/statusjsn.js")] = self.status
        if model == "8031":
            routes[("GET", "/status.json")] = self.status
        return routes

    def _blocked(self) -> str | None:
        if self.config["blocked_by"]:
            return (f"<html><body><h1>Device is blocked by another user with IP {self.config['blocked_by']}"
                    "</h1></body></html>")
        return None

    def command(self, query: dict[str, str]) -> Response | None:
        """Run ``cmd`` from the query; an error response, or None when done (or no command)."""
        cmd = query.get("cmd")
        if cmd is None:
            return None
        try:
            n = int(query.get("p", ""))
        except ValueError:
            n = 0
        if n not in self.outlets:
            return Response(400, "<html><body>invalid port</body></html>")
        if cmd == "1" and query.get("s") in ("0", "1"):
            self.outlets[n] = query["s"] == "1"
        elif cmd == "5" and query.get("a1") in ("0", "1") and query.get("a2") in ("0", "1") \
                and query.get("s", "").isdigit() and 1 <= int(query["s"]) <= 65535:
            self.batches.append(dict(query))
            self.outlets[n] = query["a1"] == "1"
            self.later(int(query["s"]), n, query["a2"] == "1")
        elif cmd == "12":
            self.outlets[n] = False
            self.later(self.config["reset_delay"], n, True)
        else:
            return Response(400, "<html><body>invalid command</body></html>")
        return None

    def ov(self, request: Request) -> Response | str:
        blocked = self._blocked()
        if blocked:
            return blocked
        refused = self.command(request.query)
        if refused:
            return refused
        numbered = self.config["model"] != "8316"
        metas = "\n".join(f'<meta http-equiv="powerstate" content="Power Port {n if numbered else ""},{int(on)}">'
                          for n, on in self.outlets.items())
        rows = "".join(f"<tr><td>Power Port {n}</td><td>{'ON' if on else 'OFF'}</td></tr>"
                       for n, on in self.outlets.items())
        return f"<html>\n<head>\n{metas}\n<title>EPC</title>\n</head>\n<body><table>{rows}</table></body>\n</html>"

    def status(self, request: Request) -> Response | dict[str, Any] | str:
        blocked = self._blocked()
        if blocked:
            return blocked
        refused = self.command(request.query)
        if refused:
            return refused
        try:
            components = int(request.query.get("components", "0"))
        except ValueError:
            components = 0
        names = self.config["names"]
        reply: dict[str, Any] = {}
        if components & 1:
            reply["outputs"] = [{"name": names[n - 1] if n <= len(names) else "Power Port", "state": int(on),
                                 "type": 1, "batch": [0, 0, 0, 0, 0], "wdog": [0, 0, 0]}
                                for n, on in self.outlets.items()]
        return reply
