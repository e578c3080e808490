"""ATEN PE-series PDUs (PE6216, PE8108, PE7216...) over their RESTful relay API (``aten_pe``).

``POST /api/outlet/relay`` with the form ``usr``, ``pwd``, ``index`` (the outlet, from 1) and
``method`` = ``on``, ``off`` or ``reboot`` (the PDU's own off-and-on, with the delays set on
it) switches; ``GET /api/outlet/relay?usr=&pwd=&index=`` answers ``<OutletRelay><01>ON
</01></OutletRelay>`` (``ON``, ``OFF``, or ``PENDING`` while a configured delay runs; read as
off). A wrong login is HTTP 401, an outlet the PDU lacks HTTP 404. The credentials travel
in the form and the query, never in a message; the defaults are ATEN's factory
``administrator``/``password``.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import NoSuchOutlet
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

FACTORY_PASSWORD = "password"
OFF_STATES = ("OFF", "PENDING", "CAP", "POP")  # PENDING: a configured delay is running


class AtenPe(HttpDriver):
    model = "ATEN PE-series PDU"
    protocol = "HTTP (ATEN RESTful relay API)"
    tested_against = "`aten_pe` simulator (HTTP on loopback)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="administrator"): str,
        vol.Optional("password", default=FACTORY_PASSWORD): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours = {k: v for k, v in options.items() if k != "password"}
        password = options.get("password", FACTORY_PASSWORD)
        if password != FACTORY_PASSWORD:  # the factory default is no secret, and masking the word helps nobody
            ours["password"] = password
        super().__init__(ours, pdu=pdu, timeout=timeout)
        self._password = password

    def _relay(self, http_method: str, port: int, **fields: Any) -> str:
        if port < 1:
            raise NoSuchOutlet(f"port {port} does not exist: ATEN outlets count from 1")
        credentials = {"usr": self.config.get("username", "administrator"), "pwd": self._password, "index": port}
        if http_method == "POST":
            response = self.request("POST", "/api/outlet/relay", data={**credentials, **fields},
                                    expect=(200, 404), auth=False)
        else:
            response = self.request("GET", "/api/outlet/relay", params=credentials, expect=(200, 404), auth=False)
        if response.status_code == 404:
            self.close()
            raise self.error(f"{http_method} /api/outlet/relay: the PDU has no outlet {port} (HTTP 404)")
        return response.text

    def set(self, port: int, on: bool) -> None:
        self._relay("POST", port, method="on" if on else "off")

    def cycle(self, port: int, delay: float) -> bool:
        self._relay("POST", port, method="reboot")  # the PDU's own, with the delays configured on it
        return True

    def get(self, port: int) -> bool:
        text = self._relay("GET", port)
        match = re.search(rf"<0*{port}>\s*(\w+)\s*<", text)
        state = match.group(1).upper() if match else None
        self.expect(state == "ON" or state in OFF_STATES, f"GET /api/outlet/relay (outlet {port})", text)
        return state == "ON"
