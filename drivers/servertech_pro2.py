"""Server Technology PRO2 PDUs through their REST API (JAWS), usually over HTTPS.

``PATCH /jaws/control/outlets/<id>`` with ``{"control_action": "on"|"off"|"reboot"}``
switches (HTTP 204, or 200); ``GET /jaws/control/outlets/<id>`` answers the outlet with its
``control_state`` (``on``, ``off``, or ``pend on``/``pend off`` while it changes). HTTP
basic auth, admin/admin by default. ``cycle`` is the PDU's own ``reboot``.

Outlets have ids such as ``AA1`` (tower A, infeed A, outlet 1): a port's **name** is its
outlet id (``ports: [AA1, AA2, AB1]``); a port named by its number uses ``<outlet_prefix>N``
(``AA`` by default, so port 3 is ``AA3``) natively, and the number itself for PDUDaemon's
``servertechpro2``, which passes the port it is given. ``servertechpro2`` takes ``ip``
(else the PDU's name), ``protocol`` (``http``), ``username``/``password`` (admin/admin)
and ``insecure`` (do not verify the certificate).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

import voluptuous as vol

from pdumqtt.drivers import HostAddress
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver


class ServertechPro2(HttpDriver):
    model = "Server Technology PRO2 PDU"
    protocol = "HTTPS (JAWS REST API)"
    tested_against = "`servertech_pro2` simulator (HTTPS on loopback, basic auth)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        # a dict keeps the first of two equal keys: drop the transport's https to default it to True
        **{k: v for k, v in ADDRESS_OPTIONS.items() if str(k) != "https"},
        vol.Optional("https", default=True): bool,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
        vol.Optional("outlet_prefix", default="AA"): vol.All(str, vol.Match(r"^[A-Za-z]*$")),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({**options, "auth": "basic"}, pdu=pdu, timeout=timeout)

    def outlet_id(self, port: int) -> str:
        name = self.port_names.get(port, str(port))
        return f"{self.config.get('outlet_prefix', '')}{name}" if name.isdigit() else name

    def _path(self, port: int) -> str:
        return f"/jaws/control/outlets/{quote(self.outlet_id(port), safe='')}"

    def _action(self, port: int, action: str) -> None:
        self.request("PATCH", self._path(port), json={"control_action": action}, expect=None)

    def set(self, port: int, on: bool) -> None:
        self._action(port, "on" if on else "off")

    def cycle(self, port: int, delay: float) -> bool:
        self._action(port, "reboot")  # the PDU's own reboot, with the delay set on the PDU
        return True

    def get(self, port: int) -> bool:
        outlet = self.request_json("GET", self._path(port))
        state = outlet.get("control_state", outlet.get("state")) if isinstance(outlet, dict) else None
        self.expect(isinstance(state, str), f"GET {self._path(port)}", outlet)
        state = state.lower()
        if state in ("on", "pend on", "idle on", "wake on"):
            return True
        if state in ("off", "pend off", "idle off", "wake off"):
            return False
        raise self.error(f"outlet {self.outlet_id(port)} is {state!r}, neither on nor off")

    def outlet_name(self, port: int) -> str | None:
        outlet = self.request_json("GET", self._path(port))
        return outlet.get("name") if isinstance(outlet, dict) else None


class Servertechpro2(ServertechPro2):
    """PDUDaemon's ``servertechpro2``: ip, protocol, username, password, insecure."""

    native_driver = "servertech_pro2"
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("ip"): HostAddress(default_port=80),
        vol.Optional("protocol", default="http"): vol.All(vol.Lower, vol.In(["http", "https"])),
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
        vol.Optional("insecure", default=False): vol.Boolean(),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({"host": options.get("ip") or pdu, "https": options["protocol"] == "https",
                          "verify": not options["insecure"], "username": options["username"],
                          "password": options["password"], "outlet_prefix": ""}, pdu=pdu, timeout=timeout)
