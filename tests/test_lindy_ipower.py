"""Lindy iPower Classic 8 (``lindy_ipower`` and PDUDaemon's ``LindyIPowerClassic8``) against its simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.lindy_ipower import LindyIpower, LindyIPowerClassic8
from pdumqtt.simulators.lindy_ipower import LindyIpowerSimulator


def make(cls: type[LindyIpower], timeout: float = 2.0, **options: Any) -> LindyIpower:
    return cls(vol.Schema(cls.options)(options), pdu="lindy", timeout=timeout)


@pytest.fixture
def sim() -> Iterator[LindyIpowerSimulator]:
    with LindyIpowerSimulator({"username": "snmp", "password": "1234"}) as s:
        yield s


def test_bit_strings_and_status(sim: LindyIpowerSimulator) -> None:
    d = make(LindyIpower, host=sim.address, username="snmp", password="1234")
    d.set(1, True)
    d.set(8, True)
    assert sim.requests[0].query == {"led": "100000000000000000000000"}
    assert sim.requests[1].query == {"led": "000000010000000000000000"}
    assert [n for n, on in sim.outlets.items() if on] == [1, 8]
    assert d.get(1) is True and d.get(8) is True and d.get(2) is False
    d.set(8, False)
    assert sim.requests[-1].path == "/offs.cgi" and d.get(8) is False
    with pytest.raises(DriverError, match="outlets 1 to 8"):
        d.set(9, True)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "unexpected answer"),
])
def test_faults_then_back(sim: LindyIpowerSimulator, failure: str, message: str) -> None:
    d = make(LindyIpower, timeout=0.5, host=sim.address, username="snmp", password="1234")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.get(2)
    sim.set_failure(None)
    d.set(2, True)
    assert d.get(2) is True


def test_pdudaemon_lindy(sim: LindyIpowerSimulator) -> None:
    host, port = sim.address.split(":")
    d = make(LindyIPowerClassic8, hostname=host, port=port, username="snmp", password="1234")
    d.set(5, True)
    assert sim.outlets[5] is True and d.get(5) is True
    with pytest.raises(DriverError, match="HTTP 401"):  # PDUDaemon sends auth only with both
        make(LindyIPowerClassic8, hostname=host, port=port, password="1234").set(5, True)
    assert LindyIPowerClassic8.fixed_ports == 8
