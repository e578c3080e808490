"""Tinycontrol's IP Power Socket (``tinycontrol``) and tcPDU (``tinycontrol_tcpdu``) against their simulators."""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.tinycontrol import Tinycontrol, TinycontrolTcpdu
from pdumqtt.simulators._http import HttpSimulator
from pdumqtt.simulators.tinycontrol import TinycontrolSimulator, TinycontrolTcpduSimulator

KINDS = [(Tinycontrol, TinycontrolSimulator, -1), (TinycontrolTcpdu, TinycontrolTcpduSimulator, 0)]


def make(cls: type[Tinycontrol], timeout: float = 2.0, **options: Any) -> Tinycontrol:
    return cls(vol.Schema(cls.options)(options), pdu="strip", timeout=timeout)


@pytest.mark.parametrize("cls, sim_class, offset", KINDS, ids=["socket", "tcpdu"])
def test_switch_and_read(cls: type[Tinycontrol], sim_class: type[HttpSimulator], offset: int) -> None:
    with sim_class({"password": "pw"}) as sim:
        d = make(cls, host=sim.address, password="pw")
        d.set(3, True)
        assert sim.outlets[3 + offset] is True and sum(sim.outlets.values()) == 1
        assert sim.requests[0].query == {f"out{3 + offset}": "1"}
        assert d.get(3) is True and d.get(1) is False
        d.set(3, False)
        assert d.get(3) is False


def test_socket_has_six_outputs_and_tcpdu_says_what_it_has() -> None:
    with pytest.raises(DriverError, match="outlets 1 to 6"):
        make(Tinycontrol, host="127.0.0.1:9").set(7, True)
    with TinycontrolTcpduSimulator({}) as sim:
        with pytest.raises(DriverError, match=r"no output out8 \(it reports out1, out2, .*, out7\)"):
            make(TinycontrolTcpdu, host=sim.address).get(8)
        assert sim.requests[-1].raw_query == "outValues"
    with pytest.raises(DriverError, match="count from 1"):
        make(TinycontrolTcpdu, host="127.0.0.1:9").set(0, True)


@pytest.mark.parametrize("cls, sim_class, offset", KINDS, ids=["socket", "tcpdu"])
@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "check username and password"), ("hang", "no answer within 0.5 s"),
    ("garbage", "(unexpected answer|not JSON)"),
])
def test_faults_then_back(cls: type[Tinycontrol], sim_class: type[HttpSimulator], offset: int,
                          failure: str, message: str) -> None:
    with sim_class({"password": "pw"}) as sim:
        d = make(cls, timeout=0.5, host=sim.address, password="pw")
        sim.set_failure(failure)
        with pytest.raises(DriverError, match=message) as err:
            d.get(2)
        assert sim.address in str(err.value)
        sim.set_failure(None)
        d.set(2, True)
        assert d.get(2) is True
