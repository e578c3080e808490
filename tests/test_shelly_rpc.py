"""Shelly Gen2+ (``shelly_rpc`` and PDUDaemon's ``shelly_gen2``) against the Shelly RPC simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
from support import wait_until

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.shelly_rpc import ShellyGen2, ShellyRpc
from pdumqtt.simulators.shelly_rpc import ShellyRpcSimulator


def make(cls: type[ShellyRpc], timeout: float = 2.0, pdu: str = "shelly", **options: Any) -> ShellyRpc:
    return cls(vol.Schema(cls.options)(options), pdu=pdu, timeout=timeout)


@pytest.fixture
def sim() -> Iterator[ShellyRpcSimulator]:
    with ShellyRpcSimulator({"switches": 4, "password": "shellypw", "names": ["lamp", None]}) as s:
        yield s


def test_switch_read_and_names_with_sha256_digest(sim: ShellyRpcSimulator) -> None:
    d = make(ShellyRpc, host=sim.address, password="shellypw")
    d.set(2, True)  # port 2 is switch id 1
    assert sim.outlets == {0: False, 1: True, 2: False, 3: False}
    assert d.get(2) is True and d.get(1) is False
    assert d.outlet_name(1) == "lamp" and d.outlet_name(2) is None
    body = sim.requests[-1].json()
    assert body["jsonrpc"] == "2.0" and body["method"] == "Switch.GetConfig" and body["params"] == {"id": 1}
    assert 'algorithm="SHA-256"' in sim.requests[-1].headers["authorization"] or \
        "algorithm=SHA-256" in sim.requests[-1].headers["authorization"]


def test_wrong_or_missing_password(sim: ShellyRpcSimulator) -> None:
    for options in ({"password": "nope"}, {}):
        with pytest.raises(DriverError, match="refused the credentials") as err:
            make(ShellyRpc, host=sim.address, **options).set(1, True)
        assert "nope" not in str(err.value)


def test_native_cycle_flips_back_on_by_itself(sim: ShellyRpcSimulator) -> None:
    d = make(ShellyRpc, host=sim.address, password="shellypw")
    d.set(1, True)
    assert d.cycle(1, 0.2) is True
    assert sim.outlets[0] is False and sim.requests[-1].json()["params"]["toggle_after"] == 0.2
    wait_until(lambda: sim.outlets[0], 5, "the switch to flip back on")
    assert d.cycle(1, 0) is False  # no delay: the runner switches off and on itself


def test_device_error_frame(sim: ShellyRpcSimulator) -> None:
    with pytest.raises(DriverError, match=r"Switch.Set refused: Argument 'id', value 4 not found! \(code -105\)"):
        make(ShellyRpc, host=sim.address, password="shellypw").set(5, True)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "not JSON"),
])
def test_faults_then_back(sim: ShellyRpcSimulator, failure: str, message: str) -> None:
    d = make(ShellyRpc, timeout=0.5, host=sim.address, password="shellypw")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.get(1)
    sim.set_failure(None)
    d.set(1, True)
    assert d.get(1) is True


def test_pdudaemon_shelly_gen2_counts_from_0() -> None:
    with ShellyRpcSimulator({"switches": 2}) as sim:
        d = make(ShellyGen2, hostname=sim.address)
        d.set(0, True)
        assert sim.outlets[0] is True and d.get(0) is True
        with pytest.raises(DriverError, match="0 to 3"):
            d.set(4, True)
        with pytest.raises(DriverError, match="value 3 not found"):
            d.set(3, True)
        by_name = ShellyGen2(vol.Schema(ShellyGen2.options)({}), pdu="shelly-lab.local")
        assert by_name.config["host"] == "shelly-lab.local"
    assert (ShellyGen2.first_port, ShellyGen2.fixed_ports, ShellyGen2.native_driver) == (0, 4, "shelly_rpc")
