"""servod's XML-RPC interface on loopback: ``set(ctrl, value)`` and ``get(ctrl)``.

A stdlib SimpleXMLRPCServer on its own thread. ``controls`` holds each control's value
(``cold_reset``, ``warm_reset``: ``on`` holds the board in reset; ``power_state``);
``log`` records each call; ``controls`` (the option) limits the controls the board has.
An unknown control or value is answered with a Fault, as
servod does. Failures: ``silent`` (read the request, never answer), ``garbage`` (an HTML
page instead of XML-RPC), ``drop`` (close the connection).
"""

from __future__ import annotations

import socketserver
import threading
from typing import Any
from xmlrpc.client import Fault
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import voluptuous as vol

from pdumqtt.simulators import Simulator
from pdumqtt.simulators._aio import FAILURES, loopback_listen, parse_listen

VALUES = {"cold_reset": ("on", "off"), "warm_reset": ("on", "off"),
          "power_state": ("on", "off", "rec", "reset", "cr50_reset")}


class _Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True


class ServodSimulator(Simulator):
    options = {
        vol.Optional("listen", default="127.0.0.1:0"): loopback_listen,
        vol.Optional("failure", default=None): vol.In(FAILURES),
        # the controls this board's servod knows (a board without warm_reset, say)
        vol.Optional("controls", default=list(VALUES)): [vol.In(list(VALUES))],
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(vol.Schema(self.options)(options))
        self.failure: str | None = self.config["failure"]
        self.host, self.port = parse_listen(self.config["listen"])
        initial = {"cold_reset": "on", "warm_reset": "off", "power_state": "off"}
        self.controls = {ctrl: initial[ctrl] for ctrl in self.config["controls"]}
        self.log: list[tuple[str, ...]] = []
        self._server: _Server | None = None
        self._released = threading.Event()

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"{self.host}:{self._server.server_address[1]}"

    def powered(self) -> bool:
        return all(self.controls.get(ctrl, "off") == "off" for ctrl in ("cold_reset", "warm_reset"))

    def _set(self, ctrl: str, value: str) -> bool:
        self.log.append(("set", ctrl, value))
        if ctrl not in self.controls:
            raise Fault(1, f"<class 'servo.servod.ServodError'>:No control named {ctrl}")
        if value not in VALUES[ctrl]:
            raise Fault(1, f"<class 'servo.drv.hw_driver.HwDriverError'>:Bad value {value!r} for {ctrl}")
        self.controls[ctrl] = value
        return True

    def _get(self, ctrl: str) -> str:
        self.log.append(("get", ctrl))
        if ctrl not in self.controls:
            raise Fault(1, f"<class 'servo.servod.ServodError'>:No control named {ctrl}")
        return self.controls[ctrl]

    def start(self) -> None:
        sim = self

        class Handler(SimpleXMLRPCRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server method name
                if sim.failure is None:
                    return super().do_POST()
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if sim.failure == "silent":
                    sim._released.wait()
                elif sim.failure == "garbage":
                    body = b"<html><body>It works!</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._released.clear()
        self._server = _Server((self.host, self.port), requestHandler=Handler, logRequests=False,
                               allow_none=True)
        self._server.register_function(self._set, "set")
        self._server.register_function(self._get, "get")
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="sim-servod", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._released.set()
            self._server.shutdown()
            self._server.server_close()
