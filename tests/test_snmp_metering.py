"""Metered SNMP PDUs against the snmpsim agent: APC rPDU2, Raritan PX, ServerTech Sentry4, Eaton ePDU.

The simulated outlet draws its load while on and nothing while off, so a reading that
follows the switch proves the driver reads the outlet's own column with the MIB's scale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt import registry
from pdumqtt.drivers import Driver
from pdumqtt.simulators.snmp import SnmpSimulator

# simulated device -> (driver, options, readings per outlet)
METERED: dict[str, tuple[str, dict[str, Any], set[str]]] = {
    "apc_rpdu2": ("apc_snmp", {}, {"power", "current", "energy"}),
    "raritan": ("raritan_snmp", {}, {"power", "current", "voltage", "energy"}),
    "sentry4": ("servertech_snmp", {"generation": 4}, {"power", "current", "voltage", "energy"}),
    "eaton": ("eaton_snmp", {}, {"power", "current", "voltage", "energy"}),
}


@pytest.fixture
def snmp_sim() -> Iterator[Callable[..., SnmpSimulator]]:
    made: list[SnmpSimulator] = []

    def make(**options: Any) -> SnmpSimulator:
        sim = SnmpSimulator({"reboot_time": 0.3, **options})
        made.append(sim)
        sim.start()
        return sim

    yield make
    for sim in made:
        sim.remove()


def driver(name: str, **options: Any) -> Driver:
    cls = registry.load(name)
    return cls(vol.Schema(cls.options)(options), pdu="test", timeout=2.0)


@pytest.mark.parametrize("device", sorted(METERED))
def test_outlet_and_pdu_readings_follow_the_switch(snmp_sim: Callable[..., SnmpSimulator], device: str) -> None:
    sim = snmp_sim(device=device, outlets=4, load=120, loads={3: 60}, voltage=230)
    name, extra, kinds = METERED[device]
    d = driver(name, host=sim.address, version="2c", **extra)
    assert type(d).readings(extra)[0] == tuple(k for k in ("power", "current", "voltage", "energy") if k in kinds)
    try:
        off = d.meter_outlet(3)
        assert off is not None and off.power == 0 and off.current == 0
        d.set(3, True)
        d.set(1, True)
        on = d.meter_outlet(3)
        assert on is not None and set(on.values()) == kinds
        assert on.power == pytest.approx(60)
        assert on.current == pytest.approx(60 / 230, abs=0.06)  # APC gives tenths of amps
        if "voltage" in kinds:
            assert on.voltage == pytest.approx(230, abs=0.1)
        assert on.energy is not None and on.energy >= 0
        total = d.meter_pdu()
        assert total is not None and set(total.values()) == {"power", "current", "voltage", "energy"}
        assert total.power == pytest.approx(180) and total.voltage == pytest.approx(230, abs=0.1)
        assert total.current == pytest.approx(180 / 230, abs=0.06)
        sim.set_load(3, 2000)
        assert d.meter_outlet(3).power == pytest.approx(2000)  # type: ignore[union-attr]
    finally:
        d.close()


def test_switched_only_model_reports_no_meter(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    """An rPDU2 without outlet metering answers noSuchObject: None, and the runner stops asking."""
    sim = snmp_sim(device="apc_rpdu2", outlets=2, metered=False)
    for version in ("1", "2c"):
        d = driver("apc_snmp", host=sim.address, version=version)
        assert d.meter_outlet(1) is None and d.meter_pdu() is None
        d.set(1, True)  # switching is untouched
        assert sim.outlet(1)
        d.set(1, False)


def test_older_apc_families_are_not_asked(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu", outlets=2)
    d = driver("apc_snmp", host=sim.address)
    assert d.meter_outlet(1) is None
    assert registry.load("apc_snmp").readings({"family": "rpdu"}) == ((), ())
    assert registry.load("servertech_snmp").readings({"generation": 3}) == ((), ())


def test_daemon_publishes_snmp_readings(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any,
                                        unique: str) -> None:
    sim = snmp_sim(device="apc_rpdu2", outlets=2, load=100)
    pdu = f"{unique}-apc"
    daemon({"pdus": {pdu: {"driver": "apc_snmp", "host": sim.address, "ports": 2, "timeout": 2,
                           "meter_interval": 0.1}}})
    probe.subscribe(f"pdu/{pdu}/#")
    assert probe.wait_for(f"pdu/{pdu}/2/power").payload == b"0"
    assert probe.request(f"pdu/{pdu}/2/set", "ON")["status"] == "ok"
    assert probe.wait_for(f"pdu/{pdu}/2/power", lambda m: m.payload == b"100")
    assert probe.wait_for(f"pdu/{pdu}/2/current", lambda m: m.payload == b"0.4")  # 100 W / 230 V in tenths
    assert probe.wait_for(f"pdu/{pdu}/power", lambda m: m.payload == b"100")
    assert probe.wait_for(f"pdu/{pdu}/voltage").payload == b"230"
