"""NETIO JSON API (``netio_json`` and PDUDaemon's ``netiojson``) against the NETIO simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
from support import wait_until

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.netio_json import NetioJson, NetioJsonPdudaemon
from pdumqtt.simulators.netio_json import NetioJsonSimulator


def make(cls: type[NetioJson], timeout: float = 2.0, **options: Any) -> NetioJson:
    return cls(vol.Schema(cls.options)(options), pdu="netio", timeout=timeout)


@pytest.fixture
def sim() -> Iterator[NetioJsonSimulator]:
    with NetioJsonSimulator({"password": "netpw", "username": "write"}) as s:
        yield s


def test_switch_read_and_names(sim: NetioJsonSimulator) -> None:
    d = make(NetioJson, host=sim.address, username="write", password="netpw")
    d.set(4, True)
    assert sim.outlets[4] is True and d.get(4) is True and d.get(1) is False
    assert sim.requests[0].json() == {"Outputs": [{"ID": 4, "Action": 1}]}
    assert sim.requests[0].headers["authorization"].startswith("Basic ")
    assert d.outlet_name(2) == "output_2"
    d.set(4, False)
    assert sim.outlets[4] is False


def test_native_cycle_is_a_short_off(sim: NetioJsonSimulator) -> None:
    d = make(NetioJson, host=sim.address, username="write", password="netpw")
    d.set(1, True)
    assert d.cycle(1, 0.2) is True
    assert sim.requests[-1].json() == {"Outputs": [{"ID": 1, "Action": 2, "Delay": 200}]}
    wait_until(lambda: sim.outlets[1], 5, "output 1 on again")


def test_read_only_user_and_missing_output() -> None:
    with NetioJsonSimulator({"read_only": True}) as sim:
        with pytest.raises(DriverError, match="allowed to write"):
            make(NetioJson, host=sim.address, password="admin").set(1, True)
        with pytest.raises(DriverError, match="has no output 9"):
            make(NetioJson, host=sim.address, password="admin").get(9)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "unexpected answer"),
])
def test_faults_then_back(sim: NetioJsonSimulator, failure: str, message: str) -> None:
    d = make(NetioJson, timeout=0.5, host=sim.address, username="write", password="netpw")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.set(2, True)
    sim.set_failure(None)
    d.set(2, True)
    assert d.get(2) is True


def test_pdudaemon_netiojson_defaults() -> None:
    with NetioJsonSimulator({}) as sim:  # admin/admin, as PDUDaemon's defaults
        ip, port = sim.address.split(":")
        d = make(NetioJsonPdudaemon, ip=ip, port=port)
        d.set(3, True)
        assert sim.outlets[3] is True and d.get(3) is True
        with pytest.raises(DriverError, match="number_of_outputs is 4"):
            d.set(5, True)
        with pytest.raises(DriverError, match="HTTP 401") as err:
            make(NetioJsonPdudaemon, ip=ip, port=port, password="wrong").set(1, True)
        assert "wrong" not in str(err.value)
