"""In-memory outlets for the demo, the tests and the benchmarks.

The outlets live in a module-level table keyed by PDU name, so they outlast a driver
instance the way a real device outlasts a connection. Latency and failures can be
injected; ``journal`` appends one JSON line per call with its start and end times,
which is how the tests prove that calls to one PDU never overlap.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError


@dataclass
class SimDevice:
    """The simulated device behind a driver; tests may flip ``reachable``."""

    outlets: dict[int, bool] = field(default_factory=dict)
    reachable: bool = True
    calls: int = 0
    switches: int = 0
    release: threading.Event = field(default_factory=threading.Event)


_devices: dict[str, SimDevice] = {}
_devices_lock = threading.Lock()


def device(pdu: str) -> SimDevice:
    """The simulated device of PDU ``pdu``, created on first use."""
    with _devices_lock:
        return _devices.setdefault(pdu, SimDevice())


class SimDriver(Driver):
    model = "simulated PDU"
    protocol = "none (in memory)"
    tested_against = "itself"
    can_read = True
    options = {
        vol.Optional("latency", default=0.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("initial", default="off"): vol.Any("on", "off"),
        vol.Optional("fail_ports", default=[]): [vol.All(int, vol.Range(min=1))],
        vol.Optional("fail_first", default=0): vol.All(int, vol.Range(min=0)),  # the first N switches fail
        vol.Optional("hang_ports", default=[]): [vol.All(int, vol.Range(min=1))],
        vol.Optional("unreachable", default=False): bool,
        vol.Optional("fail_init", default=False): bool,  # the driver cannot be built
        vol.Optional("journal"): str,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        if options["fail_init"]:
            raise ValueError("simulated driver that cannot be built")
        self.device = device(pdu)

    def _call(self, port: int, action: str, on: bool | None = None) -> bool:
        started = time.monotonic()
        dev = self.device
        dev.calls += 1
        if self.config["latency"]:
            time.sleep(self.config["latency"])
        if port in self.config["hang_ports"]:
            dev.release.wait(3600)
        if self.config["unreachable"] or not dev.reachable:
            raise DriverError("connection refused (simulated)")
        if on is not None:
            dev.switches += 1
        failing_switch = on is not None and dev.switches <= self.config["fail_first"]
        if failing_switch or port in self.config["fail_ports"]:
            raise DriverError(f"outlet {port} did not switch (simulated failure)")
        if on is not None:
            dev.outlets[port] = on
        state = dev.outlets.get(port, self.config["initial"] == "on")
        if "journal" in self.config:
            line = json.dumps({"pdu": self.pdu, "port": port, "action": action,
                               "start": started, "end": time.monotonic()})
            fd = os.open(self.config["journal"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        return state

    def set(self, port: int, on: bool) -> None:
        self._call(port, "on" if on else "off", on)

    def get(self, port: int) -> bool:
        return self._call(port, "get")
