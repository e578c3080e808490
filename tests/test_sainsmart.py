"""SainSmart relay board (``sainsmart_relay`` and PDUDaemon's ``sainsmart``) against its simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.sainsmart import Sainsmart, SainsmartRelay
from pdumqtt.simulators.sainsmart import SainsmartSimulator


def make(cls: type[SainsmartRelay], timeout: float = 2.0, **options: Any) -> SainsmartRelay:
    return cls(vol.Schema(cls.options)(options), pdu="relays", timeout=timeout)


@pytest.fixture
def sim() -> Iterator[SainsmartSimulator]:
    with SainsmartSimulator({}) as s:
        yield s


def test_codes(sim: SainsmartSimulator) -> None:
    d = make(SainsmartRelay, host=sim.address)
    d.set(1, True)
    d.set(16, True)
    d.set(1, False)
    assert [r.path for r in sim.requests] == ["/30000/01", "/30000/31", "/30000/00"]
    assert sim.outlets[16] is True and sim.outlets[1] is False
    with pytest.raises(DriverError, match="outlets 1 to 16"):
        d.set(17, True)
    assert SainsmartRelay.can_read is False


def test_another_path() -> None:
    with SainsmartSimulator({"path": "12345"}) as sim:
        make(SainsmartRelay, host=sim.address, path="12345").set(2, True)
        assert sim.outlets[2] is True
        with pytest.raises(DriverError, match="GET /30000/03: answered HTTP 404"):
            make(SainsmartRelay, host=sim.address).set(2, True)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s")])
def test_faults_then_back(sim: SainsmartSimulator, failure: str, message: str) -> None:
    d = make(SainsmartRelay, timeout=0.5, host=sim.address)
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.set(2, True)
    sim.set_failure(None)
    d.set(2, True)
    assert sim.outlets[2] is True


def test_ping_switches_nothing(sim: SainsmartSimulator) -> None:
    d = make(SainsmartRelay, timeout=0.5, host=sim.address)
    d.ping()
    assert sim.requests[-1].path == "/30000/" and not any(sim.outlets.values())
    sim.set_failure("error")
    with pytest.raises(DriverError, match="HTTP 500"):
        d.ping()


def test_pdudaemon_sainsmart(sim: SainsmartSimulator) -> None:
    make(Sainsmart, ip=sim.address).set(5, True)
    assert sim.outlets[5] is True and sim.requests[-1].path == "/30000/09"
    assert make(Sainsmart).config["host"] == "relays"  # the PDU's name
