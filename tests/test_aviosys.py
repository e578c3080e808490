"""Aviosys IP Power (``aviosys`` and PDUDaemon's ``ip9850``) against the set.cmd simulator."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.aviosys import Aviosys, Ip9850
from pdumqtt.simulators.aviosys import AviosysSimulator


def make(cls: type[Aviosys], timeout: float = 2.0, **options: Any) -> Aviosys:
    return cls(vol.Schema(cls.options)(options), pdu="ip9850", timeout=timeout)


@pytest.fixture
def sim() -> Iterator[AviosysSimulator]:
    with AviosysSimulator({"password": "12345678"}) as s:
        yield s


def test_switch_and_read_credentials_in_the_query(sim: AviosysSimulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    d = make(Aviosys, host=sim.address, password="12345678")
    d.set(4, True)
    assert sim.outlets[4] is True and d.get(4) is True and d.get(1) is False
    assert sim.requests[0].query == {"user": "admin", "pass": "12345678", "cmd": "setpower", "p64": "1"}
    assert not [r for r in caplog.records if "12345678" in r.getMessage()]


def test_refused_and_unknown(sim: AviosysSimulator) -> None:
    with pytest.raises(DriverError, match="HTTP 401") as err:
        make(Aviosys, host=sim.address, password="guess").set(1, True)
    assert "guess" not in str(err.value)
    with pytest.raises(DriverError, match="outlets 1 to 4"):
        make(Aviosys, host=sim.address, password="12345678").set(5, True)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "unexpected answer"),
])
def test_faults_then_back(sim: AviosysSimulator, failure: str, message: str) -> None:
    d = make(Aviosys, timeout=0.5, host=sim.address, password="12345678")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.set(2, True)
    sim.set_failure(None)
    d.set(2, True)
    assert d.get(2) is True


def test_pdudaemon_ip9850(sim: AviosysSimulator) -> None:
    d = make(Ip9850, hostname=sim.address, username="admin", password="12345678")
    d.set(3, True)
    assert sim.outlets[3] is True and d.get(3) is True
    with pytest.raises(DriverError, match="HTTP 401"):  # no credentials configured: none are sent
        make(Ip9850, hostname=sim.address).set(3, True)
    assert sim.requests[-1].query == {"cmd": "setpower", "p63": "1"}
    assert Ip9850.fixed_ports == 4 and Ip9850.native_driver == "aviosys"
