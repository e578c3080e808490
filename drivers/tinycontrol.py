"""Tinycontrol's LAN power switches: the IP Power Socket 6G10A v2 and the tcPDU, over HTTP.

- ``tinycontrol`` (IP Power Socket 6G10A v2, LANLIS-010/015): ``GET /outs.cgi?out<A>=0|1``
  switches output A (OUT0 to OUT5); ``GET /st0.xml`` answers ``<response>...<out0>1</out0>
  ...</response>``. Port N is output N-1 (port 1 is OUT0, the socket marked 1).
- ``tinycontrol_tcpdu`` (tcPDU): ``GET /api/v1/save/?out<N>=0|1`` switches output N (from 1);
  ``GET /api/v1/read/status/?outValues`` answers JSON with ``"out<N>": 0|1``. Port N is
  output N.

Both ask for HTTP basic auth when their web login is on.
"""

from __future__ import annotations

from typing import Any, ClassVar
from xml.etree import ElementTree

import voluptuous as vol

from pdumqtt.drivers import NoSuchOutlet
from pdumqtt.drivers.http_transport import ADDRESS_OPTIONS, HttpDriver

SOCKET_OUTPUTS = 6
TCPDU_STATUS = "/api/v1/read/status/?outValues"  # a bare group name, not key=value


class _Basic(HttpDriver):
    options: ClassVar[dict[Any, Any]] = {
        **ADDRESS_OPTIONS,
        vol.Optional("username", default="admin"): str,
        vol.Optional("password"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({**options, "auth": "basic"}, pdu=pdu, timeout=timeout)


class Tinycontrol(_Basic):
    model = "Tinycontrol IP Power Socket 6G10A v2"
    protocol = "HTTP (outs.cgi, st0.xml)"
    tested_against = "`tinycontrol` simulator (HTTP on loopback, basic auth)"
    can_read = True

    def set(self, port: int, on: bool) -> None:
        self.check_port(port, SOCKET_OUTPUTS)
        self.request("GET", "/outs.cgi", params={f"out{port - 1}": int(on)})

    def get(self, port: int) -> bool:
        self.check_port(port, SOCKET_OUTPUTS)
        text = self.request("GET", "/st0.xml").text
        try:
            state = ElementTree.fromstring(text).findtext(f"out{port - 1}")
        except ElementTree.ParseError:
            state = None
        self.expect(state is not None and state.strip() in ("0", "1"), f"GET /st0.xml (out{port - 1})", text)
        return state.strip() == "1"  # type: ignore[union-attr] - checked above


class TinycontrolTcpdu(_Basic):
    model = "Tinycontrol tcPDU"
    protocol = "HTTP (tcPDU /api/v1)"
    tested_against = "`tinycontrol_tcpdu` simulator (HTTP on loopback, basic auth)"
    can_read = True

    def set(self, port: int, on: bool) -> None:
        self._check(port)
        self.request("GET", "/api/v1/save/", params={f"out{port}": int(on)})

    def get(self, port: int) -> bool:
        self._check(port)
        reply = self.request_json("GET", TCPDU_STATUS)
        self.expect(isinstance(reply, dict) and any(k.startswith("out") for k in reply),
                    "GET /api/v1/read/status/", reply)
        if f"out{port}" not in reply:
            outputs = sorted(k for k in reply if k[3:].isdigit())
            raise self.error(f"the tcPDU has no output out{port} (it reports {', '.join(outputs)})")
        state = reply[f"out{port}"]
        self.expect(state in (0, 1, "0", "1"), f"GET /api/v1/read/status/ (out{port})", reply)
        return int(state) == 1

    def _check(self, port: int) -> None:
        if port < 1:
            raise NoSuchOutlet(f"port {port} does not exist: tcPDU outputs count from 1")
