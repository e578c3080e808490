"""A Lindy iPower Classic 8 (Digipower) web interface: ``ons.cgi``, ``offs.cgi``, ``status.xml``.

``GET /ons.cgi?led=<24 binary digits>`` switches on each outlet whose digit is 1 (outlet
N = digit N), ``/offs.cgi`` off; both answer the status page. ``GET /status.xml`` answers
``<response><pot0>f0,f1,...</pot0></response>`` where field 9+N is outlet N. HTTP basic auth
when ``password`` is set (``auth: basic`` is implied).
"""

from __future__ import annotations

from typing import Any

from pdumqtt.simulators._http import HttpSimulator, Request, Response


class LindyIpowerSimulator(HttpSimulator):
    outlet_numbers = range(1, 9)
    garbage_body = "<response><pot0>0,0,0</pot0></response>"

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__({"auth": "basic" if options.get("password") else "none", **options})

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/ons.cgi"): lambda r: self.switch(r, True),
                ("GET", "/offs.cgi"): lambda r: self.switch(r, False),
                ("GET", "/status.xml"): self.status}

    def switch(self, request: Request, on: bool) -> Response | str:
        led = request.query.get("led", "")
        if len(led) != 24 or set(led) - {"0", "1"}:
            return Response(400, "<html><body>Bad Request</body></html>")
        for n in self.outlets:
            if led[n - 1] == "1":
                self.outlets[n] = on
        return "<html><body><script>location='/status.htm'</script></body></html>"

    def status(self, request: Request) -> Response:
        fields = ["230", "0.4", "24"] + ["0"] * 7 + [str(int(on)) for on in self.outlets.values()]
        fields += ["0"] * 8
        return Response(200, f"<response><pot0>{','.join(fields)}</pot0></response>", "text/xml")
