"""In-memory outlets for the demo, the tests and the benchmarks.

The outlets live in a module-level table keyed by PDU name, so they outlast a driver
instance the way a real device outlasts a connection. Latency (of every call, or of
switches only) and failures can be injected; ``journal`` appends one JSON line per call
with its start and end times, which is how the tests prove that calls to one PDU never
overlap.

It meters too: an outlet that is on draws ``load`` watts (``loads`` per port, or
``SimDevice.loads`` changed by a test at run time) at ``voltage``; energy counts up
with time. ``meter_latency`` makes each meter read that slow, ``meter_fail`` makes
it fail while switching goes on; a switch answers with the outlet's reading.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, Reading


@dataclass
class SimDevice:
    """The simulated device behind a driver; tests may flip ``reachable``."""

    outlets: dict[int, bool] = field(default_factory=dict)
    reachable: bool = True
    calls: int = 0
    switches: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    loads: dict[int, float] = field(default_factory=dict)  # watts drawn when on, set by tests
    energy: dict[int, float] = field(default_factory=dict)  # kWh counted so far
    metered_at: dict[int, float] = field(default_factory=dict)
    meter_reads: int = 0
    meter_fail: bool = False


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
    can_meter = True
    outlet_readings = ("power", "current", "voltage", "energy")
    pdu_readings = ("power", "current", "voltage", "energy")
    options = {
        vol.Optional("latency", default=0.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        # a switch this much slower: time to kill a daemon in the middle of one
        vol.Optional("switch_latency", default=0.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("initial", default="off"): vol.Any("on", "off"),
        vol.Optional("fail_ports", default=[]): [vol.All(int, vol.Range(min=1))],
        vol.Optional("fail_first", default=0): vol.All(int, vol.Range(min=0)),  # the first N switches fail
        vol.Optional("hang_ports", default=[]): [vol.All(int, vol.Range(min=1))],
        vol.Optional("unreachable", default=False): bool,
        vol.Optional("fail_init", default=False): bool,  # the driver cannot be built
        vol.Optional("journal"): str,
        vol.Optional("load", default=25.0): vol.All(vol.Coerce(float), vol.Range(min=0)),  # W when on
        vol.Optional("loads", default={}): {vol.All(int, vol.Range(min=0)): vol.All(vol.Coerce(float),
                                                                                     vol.Range(min=0))},
        vol.Optional("voltage", default=230.0): vol.All(vol.Coerce(float), vol.Range(min=1)),
        vol.Optional("meter_latency", default=0.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("meter_fail", default=False): bool,
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
        if on is not None and self.config["switch_latency"]:
            time.sleep(self.config["switch_latency"])
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

    def get(self, port: int) -> bool:
        return self._call(port, "get")

    def set(self, port: int, on: bool) -> Reading:  # type: ignore[override]
        self._account(port)  # the energy drawn so far, at the power before the switch
        self._call(port, "on" if on else "off", on)
        return self._outlet_reading(port)

    # --- the meter ----------------------------------------------------------------------

    def _power(self, port: int) -> float:
        dev = self.device
        on = dev.outlets.get(port, self.config["initial"] == "on")
        load = dev.loads.get(port, self.config["loads"].get(port, self.config["load"]))
        return load if on else 0.0

    def _account(self, port: int) -> None:
        """Count the energy the outlet drew since it was last looked at."""
        dev, now = self.device, time.monotonic()
        since = dev.metered_at.get(port, now)
        dev.energy[port] = dev.energy.get(port, 0.0) + self._power(port) * (now - since) / 3_600_000
        dev.metered_at[port] = now

    def _outlet_reading(self, port: int) -> Reading:
        dev = self.device
        self._account(port)
        power = self._power(port)
        voltage = self.config["voltage"]
        return Reading(power=power, current=power / voltage, voltage=voltage, energy=dev.energy[port])

    def _meter_read(self) -> None:
        dev = self.device
        dev.meter_reads += 1
        if self.config["meter_latency"]:
            time.sleep(self.config["meter_latency"])
        if self.config["unreachable"] or not dev.reachable:
            raise DriverError("connection refused (simulated)")
        if self.config["meter_fail"] or dev.meter_fail:
            raise DriverError("meter read failed (simulated)")

    def meter_outlet(self, port: int) -> Reading:
        self._meter_read()
        return self._outlet_reading(port)

    def meter_pdu(self) -> Reading:
        self._meter_read()
        ports = sorted(set(self.device.outlets) | set(self.device.energy) | set(self.config["loads"]))
        readings = [self._outlet_reading(p) for p in ports]
        voltage = self.config["voltage"]
        power = sum(r.power or 0.0 for r in readings)
        return Reading(power=power, current=power / voltage, voltage=voltage,
                       energy=sum(r.energy or 0.0 for r in readings))
