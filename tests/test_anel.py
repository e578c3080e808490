"""ANEL NET-PwrCtrl (``anel`` and PDUDaemon's four names) against the ANEL simulator."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.anel import Anel, AnelNETPwrCtrlHOME, AnelNETPwrCtrlPRO
from pdumqtt.simulators.anel import AnelSimulator


def make(cls: type[Anel], timeout: float = 2.0, **options: Any) -> Anel:
    return cls(vol.Schema(cls.options)(options), pdu="anel", timeout=timeout)


@pytest.fixture
def sim() -> Iterator[AnelSimulator]:
    with AnelSimulator({"username": "lab", "password": "strip-pw"}) as s:
        yield s


def test_user_and_password_run_together(sim: AnelSimulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    d = make(Anel, host=sim.address, username="lab", password="strip-pw")
    d.set(8, True)
    assert sim.outlets[8] is True
    assert sim.requests[0].raw_query == "Sw_on=8,labstrip-pw"
    d.set(8, False)
    assert sim.outlets[8] is False
    assert not [r for r in caplog.records if "strip-pw" in r.getMessage()]


def test_refused_login(sim: AnelSimulator) -> None:
    with pytest.raises(DriverError, match="refused the login") as err:
        make(Anel, host=sim.address, username="lab", password="nope").set(1, True)
    assert "nope" not in str(err.value) and sim.outlets[1] is False


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s")])
def test_faults_then_back(sim: AnelSimulator, failure: str, message: str) -> None:
    d = make(Anel, timeout=0.5, host=sim.address, username="lab", password="strip-pw")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.set(2, True)
    sim.set_failure(None)
    d.set(2, True)
    assert sim.outlets[2] is True


def test_ping_switches_nothing(sim: AnelSimulator) -> None:
    d = make(Anel, timeout=0.5, host=sim.address)
    d.ping()
    assert sim.requests[-1].query == {} and not any(sim.outlets.values())
    sim.set_failure("hang")
    with pytest.raises(DriverError, match="no answer"):
        d.ping()


def test_pdudaemon_names_and_defaults() -> None:
    with AnelSimulator({"outlets": 3}) as sim:  # admin/anel
        home = make(AnelNETPwrCtrlHOME, hostname=sim.address)
        home.set(3, True)
        assert sim.outlets[3] is True and sim.requests[-1].raw_query == "Sw_on=3,adminanel"
        with pytest.raises(DriverError, match="outlets 1 to 3"):
            home.set(4, True)
    assert (AnelNETPwrCtrlHOME.fixed_ports, AnelNETPwrCtrlPRO.fixed_ports) == (3, 8)
    assert make(AnelNETPwrCtrlPRO).config["host"] == "anel"
