"""Shelly Gen1 (``shelly_gen1``) against its simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
from support import wait_until

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.shelly_gen1 import ShellyGen1
from pdumqtt.simulators.shelly_gen1 import ShellyGen1Simulator


def make(timeout: float = 2.0, **options: Any) -> ShellyGen1:
    return ShellyGen1(vol.Schema(ShellyGen1.options)(options), pdu="plug", timeout=timeout)


@pytest.fixture
def sim() -> Iterator[ShellyGen1Simulator]:
    with ShellyGen1Simulator({"relays": 2, "password": "pw", "names": ["dut-1"]}) as s:
        yield s


def test_switch_read_and_name(sim: ShellyGen1Simulator) -> None:
    d = make(host=sim.address, password="pw")
    d.set(2, True)
    assert sim.outlets == {0: False, 1: True}
    assert d.get(2) is True and d.get(1) is False
    last = sim.requests[0]
    assert (last.method, last.path, last.body) == ("POST", "/relay/1", b"turn=on")
    assert last.headers["authorization"].startswith("Basic ")
    d.set(2, False)
    assert d.get(2) is False
    assert d.outlet_name(1) == "dut-1" and d.outlet_name(2) is None


def test_cycle_is_the_flip_back_timer(sim: ShellyGen1Simulator) -> None:
    d = make(host=sim.address, password="pw")
    d.set(1, True)
    assert d.cycle(1, 0.2) is True
    assert sim.outlets[0] is False and sim.requests[-1].body == b"turn=off&timer=1"
    wait_until(lambda: sim.outlets[0], 5, "relay 0 back on by the device's timer")
    assert d.cycle(1, 0) is False


def test_relay_the_device_lacks(sim: ShellyGen1Simulator) -> None:
    with pytest.raises(DriverError, match=r"no relay 2 \(port 3; HTTP 404\)"):
        make(host=sim.address, password="pw").set(3, True)
    with pytest.raises(DriverError, match="port 0 has no relay"):
        make(host=sim.address, password="pw").get(0)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "refused the credentials"), ("hang", "no answer within 0.5 s"),
    ("garbage", "unexpected answer '<html><body>Shelly"),
])
def test_faults_then_back(sim: ShellyGen1Simulator, failure: str, message: str) -> None:
    d = make(timeout=0.5, host=sim.address, password="pw")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message) as err:
        d.set(1, True)
    assert sim.address in str(err.value) and "pw" not in str(err.value).replace(sim.address, "")
    sim.set_failure(None)
    d.set(1, True)
    assert d.get(1) is True


def test_wrong_password(sim: ShellyGen1Simulator) -> None:
    with pytest.raises(DriverError, match="check username and password"):
        make(host=sim.address, password="guess").get(1)
    with pytest.raises(DriverError, match="set username and password"):
        make(host=sim.address).get(1)
