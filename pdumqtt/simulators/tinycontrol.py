"""Tinycontrol's IP Power Socket 6G10A v2 (``outs.cgi``, ``st0.xml``) and tcPDU (``/api/v1``).

``tinycontrol``: ``GET /outs.cgi?out<A>=0|1`` switches output A (0 to 5), ``?out=out<A>``
toggles it; both answer the outputs page. ``GET /st0.xml`` answers the status XML with
``<out0>``...``<out5>``. ``tinycontrol_tcpdu``: ``GET /api/v1/save/?out<N>=0|1`` (N 1 to 7)
and ``?out=out<N>`` (toggle) answer ``{"status": "ok"}``; ``GET /api/v1/read/status/?outValues``
answers ``{"out1": 0, ...}``. Both ask for basic auth when ``password`` is set.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response


class _Basic(HttpSimulator):
    options = {vol.Optional("auth"): vol.In(["none", "basic", "digest"])}  # no default: basic when a password is set

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__({"auth": "basic" if options.get("password") else "none", **options})

    def apply(self, query: dict[str, str]) -> bool:
        """Apply ``out<N>=0|1`` and ``out=out<N>``; False if one names no output or value."""
        for key, value in query.items():
            if key == "out":
                key, value = value, "toggle"
            if not key.startswith("out") or not key[3:].isdigit() or int(key[3:]) not in self.outlets:
                return False
            n = int(key[3:])
            if value not in ("0", "1", "toggle"):
                return False
            self.outlets[n] = (not self.outlets[n]) if value == "toggle" else value == "1"
        return True


class TinycontrolSimulator(_Basic):
    outlet_numbers = range(6)
    garbage_body = "<html><body>IP Power Socket</body></html>"

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/outs.cgi"): self.outs, ("GET", "/st0.xml"): self.status}

    def outs(self, request: Request) -> Response | str:
        if not self.apply(request.query):
            return Response(400, "<html><body>Bad Request</body></html>")
        return "<html><head><title>Outputs</title></head><body>" + "".join(
            f"<p>OUT{n}: {'ON' if on else 'OFF'}</p>" for n, on in self.outlets.items()) + "</body></html>"

    def status(self, request: Request) -> Response:
        outs = "".join(f"<out{n}>{int(on)}</out{n}>" for n, on in self.outlets.items())
        xml = f"<response><ver>1.62</ver><ia0>230</ia0><ia1>0.4</ia1>{outs}<di0>up</di0></response>"
        return Response(200, xml, "text/xml")


class TinycontrolTcpduSimulator(_Basic):
    outlet_numbers = range(1, 8)
    garbage_body = "<html><body>tcPDU</body></html>"

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/api/v1/save/"): self.save, ("GET", "/api/v1/read/status/"): self.read}

    def save(self, request: Request) -> Response | dict[str, Any]:
        if not self.apply(request.query):
            return Response(400, {"status": "error"})
        return {"status": "ok"}

    def read(self, request: Request) -> dict[str, Any]:
        reply: dict[str, Any] = {}
        if "outValues" in request.query:
            reply.update({f"out{n}": int(on) for n, on in self.outlets.items()})
        if "boardValues" in request.query:
            reply.update({"temp": 245, "voltage": 2301})
        return reply
