"""An Intellinet 163682 PDU's web interface: ``control_outlet.htm`` and ``status.xml``.

``GET /control_outlet.htm?outletN=1[&outletM=1...]&op=0|1|2&submit=Anwenden`` switches the
named outlets (0 to 7) on, off, or reboots them (off, then on after ``reboot_delay``
seconds) and answers the control page; ``GET /status.xml`` answers the XML status with
``outletStatN`` on/off. HTTP basic auth, admin/admin unless ``username``/``password`` say
otherwise (``auth: none`` turns it off).
"""

from __future__ import annotations

import threading
from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response

PAGE = "<html><head><title>Outlet Control</title></head><body><form action='control_outlet.htm'>{}</form></body></html>"


class IntellinetSimulator(HttpSimulator):
    outlet_numbers = range(8)
    garbage_body = "<html><body>Loading...</body></html>"
    options = {vol.Optional("reboot_delay", default=0.3): vol.All(vol.Coerce(float), vol.Range(min=0))}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__({"auth": "basic", "password": "admin", **options})
        self._timers: list[threading.Timer] = []
        self.reboots = 0

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/control_outlet.htm"): self.control, ("GET", "/status.xml"): self.status}

    def control(self, request: Request) -> Response | str:
        op = request.query.get("op")
        outlets = [int(k[6:]) for k in request.query if k.startswith("outlet") and k[6:].isdigit()]
        if op not in ("0", "1", "2") or any(n not in self.outlets for n in outlets):
            return Response(400, "<html><body>Bad Request</body></html>")
        for n in outlets:
            if op == "2":
                self.reboots += 1
                self.outlets[n] = False
                timer = threading.Timer(self.config["reboot_delay"], self._on, (n,))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
            else:
                self.outlets[n] = op == "0"
        return PAGE.format("".join(f"<input name='outlet{n}' type='checkbox'>" for n in self.outlets))

    def status(self, request: Request) -> Response:
        fields = "".join(f"<outletStat{n}>{'on' if on else 'off'}</outletStat{n}>" for n, on in self.outlets.items())
        xml = f"<response><cur0>0.4</cur0><stat0>normal</stat0><curBan>0.4</curBan><tempBan>24</tempBan>" \
              f"<humBan>41</humBan><statBan>normal</statBan>{fields}<userVerifyRes>0</userVerifyRes></response>"
        return Response(200, xml, "text/xml")

    def _on(self, n: int) -> None:
        with self.lock:
            self.outlets[n] = True

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        super().stop()
