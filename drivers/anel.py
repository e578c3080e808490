"""ANEL NET-PwrCtrl power strips (HOME, ADV, IO, PRO) over their HTTP control URL.

``GET /?Sw_on=N,<user><password>`` switches outlet N on, ``Sw_off=N,...`` off: the user
name and password are written together, with nothing between them, after the comma.
A refused login is the body ``User or password error.`` (HTTP 200). The strip's answer
carries no state here, so ``get`` answers what the daemon last switched; ``ping`` fetches
the start page (``GET /``), which switches nothing. The credentials
travel in the query and are kept out of errors and logs.

PDUDaemon's names take ``username`` (``admin``) and ``password`` (``anel``), and the PDU's
name as host (or ``hostname``, a pdumqtt addition): ``anel_netpwrctrlhome`` (3 outlets),
``anel_netpwrctrladv``, ``anel_netpwrctrlio``, ``anel_netpwrctrlpro`` (8).
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

REFUSED = "User or password error."


class Anel(HttpDriver):
    model = "ANEL NET-PwrCtrl"
    protocol = "HTTP (GET ?Sw_on=N,userpassword)"
    tested_against = "`anel` simulator (HTTP on loopback)"
    can_read = False
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="anel"): str,
        vol.Optional("outlets", default=8): vol.All(int, vol.Range(min=1, max=8)),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self.add_secret(f"{options.get('username', '')}{options.get('password', '')}")

    def set(self, port: int, on: bool) -> None:
        self.check_port(port, self.config.get("outlets", 8))
        # the strip parses the raw query: a comma, then user and password run together
        query = f"Sw_{'on' if on else 'off'}={port},{self.config.get('username', '')}{self.config.get('password', '')}"
        text = self.request("GET", "/", params=query, auth=False).text
        if text.strip() == REFUSED:
            self.close()
            raise self.error(f"refused the login ({REFUSED!r}): check username and password")

    def ping(self) -> None:
        # the strip's start page switches nothing; any answer short of a server error will do
        self.request("GET", "/", auth=False, expect=tuple(range(200, 500)))


def _pdudaemon_class(name: str, model: str, outlets: int) -> type[Anel]:
    class Compat(Anel):
        native_driver = "anel"
        fixed_ports = outlets
        options: ClassVar[dict[Any, Any]] = {
            vol.Optional("hostname"): str,
            vol.Optional("username", default="admin"): str,
            vol.Optional("password", default="anel"): str,
        }

        def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
            super().__init__({"host": options.get("hostname") or pdu, "username": options["username"],
                              "password": options["password"], "outlets": outlets}, pdu=pdu, timeout=timeout)

    Compat.__name__ = Compat.__qualname__ = name
    Compat.__doc__ = f"PDUDaemon's {name.lower()}: username, password; {outlets} outlets."
    Compat.model = model
    return Compat


# PDUDaemon's names
AnelNETPwrCtrlHOME = _pdudaemon_class("AnelNETPwrCtrlHOME", "ANEL NET-PwrCtrl HOME", 3)
AnelNETPwrCtrlADV = _pdudaemon_class("AnelNETPwrCtrlADV", "ANEL NET-PwrCtrl ADV", 8)
AnelNETPwrCtrlIO = _pdudaemon_class("AnelNETPwrCtrlIO", "ANEL NET-PwrCtrl IO", 8)
AnelNETPwrCtrlPRO = _pdudaemon_class("AnelNETPwrCtrlPRO", "ANEL NET-PwrCtrl PRO", 8)
