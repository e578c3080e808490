"""An OpenWrt switch's ubus over HTTP, ``POST /ubus``, with realtek-poe's ``poe`` object.

``call [session, "poe", "info", {}]`` answers ``[0, {"firmware", "budget", "consumption",
"ports": {"lanN": "Disabled" | {"priority", "mode", "status", "consumption"}}}]``;
``call [session, "poe", "manage", {"port", "enable"}]`` answers ``[0]``, or ``[4]`` for an
unknown port. ``session login`` with ``username``/``password`` answers a session id; with
``acl: login`` only such a session may call ``poe`` (the null session gets -32002
Access denied), with ``acl: open`` (the default) the null session may too.
"""

from __future__ import annotations

import secrets
from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response

NULL_SESSION = "0" * 32


class OpenwrtPoeSimulator(HttpSimulator):
    garbage_body = "<html><head><title>LuCI</title></head><body>Bad Gateway</body></html>"
    options = {
        vol.Optional("ports", default=8): vol.All(int, vol.Range(min=1, max=48)),
        vol.Optional("acl", default="open"): vol.In(["open", "login"]),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        config = vol.Schema(self.options)(options)
        self.outlet_numbers = range(1, config["ports"] + 1)
        super().__init__(config)
        self.sessions: set[str] = set()

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("POST", "/ubus"): self.ubus}

    def ubus(self, request: Request) -> Response | dict[str, Any]:
        try:
            frame = request.json()
            session, obj, method, message = frame["params"]
        except (ValueError, KeyError, TypeError):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        reply = {"jsonrpc": "2.0", "id": frame.get("id")}
        if obj == "session" and method == "login":
            if message.get("username") != self.config["username"] or \
                    message.get("password") != self.config["password"]:
                return {**reply, "result": [6]}
            token = secrets.token_hex(16)
            self.sessions.add(token)
            return {**reply, "result": [0, {"ubus_rpc_session": token, "timeout": 300}]}
        if session not in self.sessions and not (session == NULL_SESSION and self.config["acl"] == "open"):
            return {**reply, "error": {"code": -32002, "message": "Access denied"}}
        if obj != "poe" or method not in ("info", "manage"):
            return {**reply, "result": [3]}
        if method == "info":
            ports = {f"lan{n}": {"priority": 2, "mode": "PoE+", "status": "Delivering power", "consumption": 3.4}
                     if on else "Disabled" for n, on in self.outlets.items()}
            return {**reply, "result": [0, {"firmware": "v17.1", "mcu": "ST Micro ST32F100", "budget": 65.0,
                                            "consumption": 3.4 * sum(self.outlets.values()), "ports": ports}]}
        name = str(message.get("port", ""))
        number = int(name[3:]) if name.startswith("lan") and name[3:].isdigit() else 0
        if number not in self.outlets or not isinstance(message.get("enable"), bool):
            return {**reply, "result": [4 if number not in self.outlets else 2]}
        self.outlets[number] = message["enable"]
        return {**reply, "result": [0]}
