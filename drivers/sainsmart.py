"""SainSmart ethernet relay boards (the 16-channel IMSC board) over their web interface.

``GET /30000/NN`` switches a relay: NN (two digits) is ``2(N-1)+1`` for relay N on and
``2(N-1)`` for off; ``30000`` is the board's control path (``path``, set on the board). The
board answers its control page either way, and has no state to read back here, so
``get`` answers what the daemon last switched; ``ping`` fetches the control page
(``GET /30000/``), which switches nothing.

PDUDaemon's ``sainsmart`` takes ``ip`` (else the PDU's name).
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import HostAddress
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver


class SainsmartRelay(HttpDriver):
    model = "SainSmart ethernet relay board"
    protocol = "HTTP (GET /30000/NN)"
    tested_against = "`sainsmart` simulator (HTTP on loopback)"
    can_read = False
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("path", default="30000"): vol.All(str, vol.Match(r"^[A-Za-z0-9]+$")),
        vol.Optional("relays", default=16): vol.All(int, vol.Range(min=1, max=50)),
    }

    def set(self, port: int, on: bool) -> None:
        self.check_port(port, self.config.get("relays", 16))
        code = 2 * (port - 1) + (1 if on else 0)
        self.request("GET", f"/{self.config.get('path', '30000')}/{code:02d}")

    def ping(self) -> None:
        # the board's control page switches nothing; any answer short of a server error will do
        self.request("GET", f"/{self.config.get('path', '30000')}/", expect=tuple(range(200, 500)))


class Sainsmart(SainsmartRelay):
    """PDUDaemon's ``sainsmart``: ``ip``, else the PDU's name."""

    native_driver = "sainsmart_relay"
    fixed_ports = 16
    options: ClassVar[dict[Any, Any]] = {vol.Optional("ip"): HostAddress(default_port=80)}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({"host": options.get("ip") or pdu, "path": "30000", "relays": 16}, pdu=pdu, timeout=timeout)
