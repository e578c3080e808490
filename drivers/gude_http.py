"""Gude Expert Power Control (EPC) PDUs over their HTTP interface (``gude_epc``).

``GET /ov.html?cmd=1&p=<N>&s=0|1`` switches output N (from 1). The state is read one of the
three ways Gude firmware offers, picked by ``read`` to suit the model:

- ``ov.html`` (EPC 8008, 8080, 8316; the default): the page carries one ``<meta
  http-equiv="powerstate" content="Power Port <N>,0|1">`` per output. The 8316's firmware
  leaves out the number (``content="Power Port ,1"``); then the tags count in order.
- ``statusjsn.js`` (EPC 8225): ``GET /statusjsn.js?components=1`` answers JSON with
  ``outputs: [{"name": ..., "state": 0|1}, ...]``.
- ``status.json`` (EPC 8031, 87-1210-18; "Basic Compatible" mode): ``GET
  /status.json?components=1``, the same JSON; switching goes to ``status.json`` too
  (``components=0&cmd=1...``), as on those models.

A device held by another web session answers "Device is blocked by another user with IP
..."; that becomes the error. With the JSON pages, ``cycle`` is the device's batch mode
(``cmd=5``: off, then on after the delay in whole seconds, counted by the device), and the
outputs' names are read; ``ov.html`` models leave the cycle to pdumqtt. HTTP basic auth.
labgrid's plain ``gude`` model (older firmware: ``switch.html``, state in the index page's
table) is another protocol and not covered here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import NoSuchOutlet
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

READS = ("ov.html", "statusjsn.js", "status.json")
POWERSTATE = re.compile(r"""<meta[^>]*content\s*=\s*["']Power Port\s*(\d*)\s*,\s*([01])\s*["']""", re.IGNORECASE)
BLOCKED = re.compile(r"Device is blocked by another user with IP ([^\s<]+)")


class GudeEpc(HttpDriver):
    model = "Gude Expert Power Control"
    protocol = "HTTP (Gude EPC CGI, ov.html / statusjsn.js / status.json)"
    tested_against = "`gude_epc` simulator (HTTP on loopback, models 8008, 8316, 8225, 8031)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password"): str,
        vol.Optional("read", default="ov.html"): vol.In(READS, msg=f"expected one of {', '.join(READS)}"),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({"read": "ov.html", **options, "auth": "basic"}, pdu=pdu, timeout=timeout)

    @property
    def _json(self) -> bool:
        return self.config["read"] != "ov.html"

    def _page(self, params: dict[str, Any] | None = None, *, switch: bool = False) -> str:
        """GET the state page (with ``params``, a command), or ov.html for a command on other models."""
        read = self.config["read"]
        page = "ov.html" if read == "ov.html" or (switch and read == "statusjsn.js") else read
        if page != "ov.html":
            params = {"components": 0 if switch else 1, **(params or {})}
        text = self.request("GET", f"/{page}", params=params).text
        blocked = BLOCKED.search(text)
        if blocked:
            self.close()
            raise self.error(f"GET /{page}: the device is blocked by another user's web session (from "
                             f"{blocked.group(1)}): log out there or wait for it to time out")
        return text

    def _states(self, text: str, what: str) -> dict[int, tuple[str, bool]]:
        """Every output's number to ``(name, on)``, from ov.html's meta tags or a JSON answer."""
        if not self._json:
            tags = POWERSTATE.findall(text)
            self.expect(bool(tags), f"{what} (powerstate meta tags)", text)
            if all(n for n, _ in tags):
                return {int(n): ("", s == "1") for n, s in tags}
            return {i: ("", s == "1") for i, (_, s) in enumerate(tags, 1)}  # the 8316's tags without numbers
        try:
            outputs = json.loads(text).get("outputs")
        except (ValueError, AttributeError):
            outputs = None
        self.expect(isinstance(outputs, list) and all(isinstance(o, dict) and o.get("state") in (0, 1)
                                                      for o in outputs), f"{what} (outputs)", text)
        return {i: (str(o.get("name") or ""), o["state"] == 1) for i, o in enumerate(outputs, 1)}  # type: ignore[arg-type]

    def _output(self, states: dict[int, tuple[str, bool]], port: int) -> tuple[str, bool]:
        if port not in states:
            raise self.error(f"output {port} does not exist: the device reports outputs "
                             f"{min(states)} to {max(states)}")
        return states[port]

    def _check(self, port: int) -> None:
        if port < 1:
            raise NoSuchOutlet(f"port {port} does not exist: Gude outputs count from 1")

    def set(self, port: int, on: bool) -> None:
        self._check(port)
        text = self._page({"cmd": 1, "p": port, "s": int(on)}, switch=True)
        if self.config["read"] == "ov.html":  # the answer is ov.html itself: check the output took it
            state = self._output(self._states(text, "GET /ov.html"), port)[1]
            if state != on:
                raise self.error(f"output {port} is {'on' if state else 'off'} after switching it "
                                 f"{'on' if on else 'off'}")
        elif self.config["read"] == "status.json":  # components=0: an empty JSON object
            try:
                reply = json.loads(text)
            except ValueError:
                reply = None
            self.expect(isinstance(reply, dict), "GET /status.json (cmd=1)", text)

    def get(self, port: int) -> bool:
        self._check(port)
        return self._output(self._states(self._page(), f"GET /{self.config['read']}"), port)[1]

    def cycle(self, port: int, delay: float) -> bool:
        if not self._json or delay <= 0:
            return False  # older ov.html firmware has no batch mode
        self._check(port)
        self._page({"cmd": 5, "p": port, "a1": 0, "a2": 1, "s": max(1, math.ceil(delay))}, switch=True)
        return True

    def outlet_name(self, port: int) -> str | None:
        if not self._json:
            return None
        return self._output(self._states(self._page(), f"GET /{self.config['read']}"), port)[0] or None
