"""PoE ports of an OpenWrt switch (realtek-poe), through ubus over HTTP (uhttpd-mod-ubus).

``POST /ubus`` with JSON-RPC ``call [session, "poe", "manage", {"port": "lanN", "enable":
bool}]`` switches a port; ``call [session, "poe", "info", {}]`` answers
``[0, {"ports": {"lan1": "Disabled" | {"status": "Delivering power", ...}, ...}}]``: a
disabled port is the string ``Disabled``, an enabled one a table. The tables'
``consumption`` (W) is the port's power reading, the top-level ``consumption`` the switch's. A ubus result is
``[status, data]`` (0 = ok, 6 = permission denied...); a refused session is the JSON-RPC
error -32002 ``Access denied``.

Without ``username`` the calls use the null session (32 zeros), which needs an rpcd ACL
for unauthenticated ``poe info``/``poe manage``; with ``username`` and ``password`` the
driver logs in first (``session login``) and keeps the session until a failure.

PDUDaemon's ``ubus`` reaches the switch by the PDU's name (or ``hostname``, a pdumqtt
addition) with the null session, port N = ``lanN``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import HostAddress, Reading
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

NULL_SESSION = "0" * 32
UBUS_STATUS = {1: "invalid command", 2: "invalid argument", 3: "method not found", 4: "not found",
               5: "no data", 6: "permission denied", 7: "timeout", 8: "not supported", 9: "unknown error",
               10: "connection failed"}


def _port_name(value: Any) -> str:
    if not isinstance(value, str) or "{port}" not in value:
        raise vol.Invalid("expected a port name template with {port}, such as lan{port}")
    return value


class OpenwrtPoe(HttpDriver):
    model = "OpenWrt PoE switch"
    protocol = "HTTP (ubus JSON-RPC)"
    tested_against = "`openwrt_poe` simulator (HTTP on loopback, rpcd sessions)"
    can_read = True
    can_meter = True
    outlet_readings = ("power",)
    pdu_readings = ("power",)
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username"): str,
        vol.Optional("password"): str,
        vol.Optional("port_name", default="lan{port}"): _port_name,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self._ubus_session: str | None = None

    def _rpc(self, session: str, obj: str, method: str, message: dict[str, Any]) -> Any:
        what = f"ubus {obj} {method}"
        # rpcd credentials go in the body, never in an Authorization header
        reply = self.request_json("POST", "/ubus", auth=False, json={
            "jsonrpc": "2.0", "id": 1, "method": "call", "params": [session, obj, method, message]})
        self.expect(isinstance(reply, dict) and ("result" in reply or "error" in reply), what, reply)
        if "error" in reply:
            self.close()
            error = reply["error"] if isinstance(reply["error"], dict) else {}
            hint = " (log in with username and password, or allow it in the rpcd ACLs)" \
                if error.get("code") == -32002 else ""
            raise self.error(f"{what} refused: {error.get('message', reply['error'])}{hint}")
        result = reply["result"]
        self.expect(isinstance(result, list) and result and isinstance(result[0], int), what, result)
        if result[0] != 0:
            self.close()
            raise self.error(f"{what} failed: {UBUS_STATUS.get(result[0], 'status')} ({result[0]})")
        return result[1] if len(result) > 1 else {}

    def _login(self) -> str:
        if not self.config.get("username"):
            return NULL_SESSION
        if self._ubus_session is None:
            data = self._rpc(NULL_SESSION, "session", "login",
                             {"username": self.config["username"], "password": self.config.get("password", "")})
            self.expect(isinstance(data, dict) and isinstance(data.get("ubus_rpc_session"), str),
                        "ubus session login", "a reply without ubus_rpc_session")
            self._ubus_session = data["ubus_rpc_session"]
            self.add_secret(self._ubus_session)
        return self._ubus_session

    def _name(self, port: int) -> str:
        return self.config.get("port_name", "lan{port}").replace("{port}", str(port))

    def set(self, port: int, on: bool) -> None:
        self._rpc(self._login(), "poe", "manage", {"port": self._name(port), "enable": on})

    def _port_info(self, port: int) -> tuple[dict[str, Any], Any]:
        info = self._rpc(self._login(), "poe", "info", {})
        ports = info.get("ports") if isinstance(info, dict) else None
        self.expect(isinstance(ports, dict), "ubus poe info", info)
        name = self._name(port)
        if name not in ports:
            raise self.error(f"ubus poe info: no port {name} (the switch has {', '.join(sorted(ports))})")
        return info, ports[name]

    def get(self, port: int) -> bool:
        return self._port_info(port)[1] != "Disabled"

    def meter_outlet(self, port: int) -> Reading | None:
        _info, state = self._port_info(port)
        if state == "Disabled":
            return Reading(power=0.0)
        watts = state.get("consumption") if isinstance(state, dict) else None
        return Reading(power=float(watts)) if isinstance(watts, int | float) else Reading()

    def meter_pdu(self) -> Reading | None:
        info = self._rpc(self._login(), "poe", "info", {})
        watts = info.get("consumption") if isinstance(info, dict) else None
        return Reading(power=float(watts)) if isinstance(watts, int | float) else None

    def close(self) -> None:
        self._ubus_session = None
        super().close()


class Ubus(OpenwrtPoe):
    """PDUDaemon's ``ubus``: the PDU's name is the switch, the null session, port N = lanN."""

    native_driver = "openwrt_poe"
    options: ClassVar[dict[Any, Any]] = {vol.Optional("hostname"): HostAddress(default_port=80)}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({"host": options.get("hostname") or pdu}, pdu=pdu, timeout=timeout)
