"""A BMC on loopback UDP (IPMI 2.0, RMCP+): chassis status and chassis control.

pyghmi's own BMC server classes do the protocol, in a child process of their own:
pyghmi keeps one I/O thread and one session table per process, and a BMC and its
clients sharing them race each other. This adds the chassis (``power`` is ``"on"`` or
``"off"``; ``log`` lists each control: ``on``, ``off``, ``cycle``, ``reset``), the user
(``username``/``password``) and what a BMC in a lab does where pyghmi's server does
not: only cipher suite 3 (a client proposing another is told no, and asks again), and
"unauthorized name" for an unknown user (pyghmi's server says nothing). Power cycle
while off is refused with completion code 0xD5, as the IPMI spec allows.
Failures: ``silent`` answers nothing at all (a BMC gone quiet), ``garbage`` answers
chassis commands with completion code 0xFF, ``drop`` is ``silent`` too (UDP has no
connection to drop). ``power``, ``log`` and ``failure`` are read and set from this
process through the child's stdin and stdout.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
from typing import Any

import voluptuous as vol

from pdumqtt.simulators import Simulator
from pdumqtt.simulators._aio import FAILURES, loopback_listen, parse_listen

HMAC_SHA1 = 1
INVALID_AUTH_ALGORITHM, UNAUTHORIZED_NAME = 0x11, 0x0D  # RMCP+ status codes
NOT_IN_PRESENT_STATE = 0xD5


class _Chassis:
    """The simulated server, in the child process."""

    def __init__(self, power: str, failure: str | None) -> None:
        self.power = power
        self.failure = failure
        self.log: list[str] = []

    def control(self, directive: str) -> int:
        self.log.append(directive)
        if directive == "cycle" and self.power == "off":
            return NOT_IN_PRESENT_STATE
        if directive in ("on", "off"):
            self.power = directive
        return 0


def _bmc_class() -> type:
    """pyghmi's BMC, with the behaviour of a lab BMC (imported in the child only)."""
    import pyghmi.ipmi.bmc as bmc
    import pyghmi.ipmi.private.constants as constants
    import pyghmi.ipmi.private.serversession as serversession

    class SuiteThreeSession(serversession.ServerSession):
        def create_open_session_response(self, request: bytearray) -> bytearray:
            if request[12] != HMAC_SHA1:  # the authentication algorithm the client proposes
                return bytearray([request[0], INVALID_AUTH_ALGORITHM, 0, 0]) + request[4:8]
            return super().create_open_session_response(request)

        def _got_rakp1(self, data: bytearray) -> None:
            name = bytes(data[28:28 + data[27]]).decode("utf-8", "replace")
            if name not in self.authdata:
                reply = bytearray([data[0], UNAUTHORIZED_NAME, 0, 0]) + self.clientsessionid
                self.send_payload(reply, constants.payload_types["rakp2"], retry=False)
                return
            super()._got_rakp1(data)

    class SimulatedBmc(bmc.Bmc):
        chassis: _Chassis

        def sessionless_data(self, data: bytes, sockaddr: Any) -> None:
            if self.chassis.failure in ("silent", "drop"):
                return
            raw = bytearray(data)
            if len(raw) >= 22 and raw[0] == 6 and raw[2:4] == b"\xff\x07" and raw[4] == 6 and raw[5] == 16:
                # an RMCP+ open session request: a session of ours, which knows the above
                SuiteThreeSession(self.authdata, self.kg, sockaddr, self.serversocket, raw[16:], self.uuid, bmc=self)
                return
            super().sessionless_data(data, sockaddr)

        def handle_raw_request(self, request: dict[str, Any], session: Any) -> None:
            if self.chassis.failure in ("silent", "drop"):
                return
            if self.chassis.failure == "garbage" and request["netfn"] == 0:
                session.send_ipmi_response(code=0xFF)
                return
            super().handle_raw_request(request, session)

        def get_power_state(self) -> str:
            return self.chassis.power

        def power_on(self) -> int:
            return self.chassis.control("on")

        def power_off(self) -> int:
            return self.chassis.control("off")

        def power_cycle(self) -> int:
            return self.chassis.control("cycle")

        def power_reset(self) -> int:
            return self.chassis.control("reset")

    return SimulatedBmc


def _child(config: dict[str, Any], host: str, port: int) -> None:
    """The child process: the BMC, and a thread answering the parent's requests on stdin, one JSON per line."""
    import pyghmi.ipmi.private.session as ipmisession

    if port == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # pyghmi binds the number it is given
            s.bind((host, 0))
            port = s.getsockname()[1]
    chassis = _Chassis(config["power"], config["failure"])
    try:
        bmc = _bmc_class()({config["username"]: config["password"]}, port=port, address=host)
    except OSError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return
    bmc.chassis = chassis

    def requests() -> None:
        for line in sys.stdin:
            request = json.loads(line)
            if request.get("stop"):
                break
            for key in ("power", "failure"):
                if key in request:
                    setattr(chassis, key, request[key])
            print(json.dumps({"power": chassis.power, "log": chassis.log, "failure": chassis.failure}), flush=True)
        os._exit(0)  # pyghmi's I/O thread would keep the process alive

    print(json.dumps({"port": port}), flush=True)
    threading.Thread(target=requests, daemon=True).start()
    while True:
        ipmisession.Session.wait_for_rsp(1)


class IpmiSimulator(Simulator):
    options = {
        vol.Optional("listen", default="127.0.0.1:0"): loopback_listen,
        vol.Optional("failure", default=None): vol.In(FAILURES),
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default="admin"): str,
        vol.Optional("power", default="off"): vol.In(["on", "off"]),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(vol.Schema(self.options)(options))
        self.host, self.port = parse_listen(self.config["listen"])
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        # a fresh interpreter: no pyghmi state shared with (or inherited from) this process
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, json.dumps({"config": self.config, "host": self.host, "port": self.port})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self._read(30)
        if "port" not in ready:
            self.stop()
            raise OSError(f"the IPMI simulator cannot listen on {self.host}:{self.port}: {ready.get('error')}")
        self.port = ready["port"]

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        if not select.select([stdout], [], [], timeout)[0]:
            raise TimeoutError(f"the IPMI simulator said nothing within {timeout:g} s")
        line = stdout.readline()
        if not line:
            raise OSError(f"the IPMI simulator exited with status {self._process.wait(5)}")
        return json.loads(line)

    def _ask(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            assert self._process is not None and self._process.stdin is not None, "the simulator is not running"
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            return self._read(10)

    @property
    def power(self) -> str:
        return self._ask()["power"]

    @power.setter
    def power(self, value: str) -> None:
        self._ask(power=vol.In(["on", "off"])(value))

    @property
    def log(self) -> list[str]:
        return self._ask()["log"]

    @property
    def failure(self) -> str | None:
        return self._ask()["failure"]

    @failure.setter
    def failure(self, value: str | None) -> None:
        self._ask(failure=vol.In(FAILURES)(value))

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            assert process.stdin is not None
            process.stdin.write(json.dumps({"stop": True}) + "\n")
            process.stdin.close()
            process.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait(5)
        if process.stdout is not None:
            process.stdout.close()


if __name__ == "__main__":
    _args = json.loads(sys.argv[1])
    _child(_args["config"], _args["host"], _args["port"])
