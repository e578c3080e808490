"""Intellinet 163682 (``intellinet_pdu`` and PDUDaemon's ``intellinet``) against its simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
from support import wait_until

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.intellinet import Intellinet, IntellinetPdu
from pdumqtt.simulators._http import Response
from pdumqtt.simulators.intellinet import IntellinetSimulator


def make(cls: type[IntellinetPdu], timeout: float = 2.0, **options: Any) -> IntellinetPdu:
    return cls(vol.Schema(cls.options)(options), pdu="pdu", timeout=timeout)


@pytest.fixture
def sim() -> Iterator[IntellinetSimulator]:
    with IntellinetSimulator({"password": "pdupw"}) as s:
        yield s


def test_front_panel_numbering_switch_read_reboot(sim: IntellinetSimulator) -> None:
    d = make(IntellinetPdu, host=sim.address, password="pdupw")
    d.set(1, True)  # front panel 1 is outlet 0
    assert sim.outlets[0] is True and d.get(1) is True and d.get(8) is False
    assert sim.requests[0].query == {"outlet0": "1", "op": "0", "submit": "Anwenden"}
    assert sim.requests[0].headers["authorization"].startswith("Basic ")
    assert d.cycle(1, 5) is True
    assert sim.reboots == 1 and sim.outlets[0] is False
    wait_until(lambda: sim.outlets[0], 5, "outlet 0 back on after the reboot")
    with pytest.raises(DriverError, match="ports 1 to 8"):
        d.set(9, True)


def test_wrong_password_by_status_or_by_page(sim: IntellinetSimulator) -> None:
    with pytest.raises(DriverError, match="HTTP 401") as err:
        make(IntellinetPdu, host=sim.address, password="nope").set(1, True)
    assert "nope" not in str(err.value)
    sim._routes[("GET", "/control_outlet.htm")] = lambda r: Response(200, "<html>Error 401: Unauthorized</html>")
    with pytest.raises(DriverError, match="the page says 401"):
        make(IntellinetPdu, host=sim.address, password="pdupw").set(1, True)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "unexpected answer"),
])
def test_faults_then_back(sim: IntellinetSimulator, failure: str, message: str) -> None:
    d = make(IntellinetPdu, timeout=0.5, host=sim.address, password="pdupw")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.get(2)
    sim.set_failure(None)
    d.set(2, True)
    assert d.get(2) is True


def test_pdudaemon_intellinet_counts_from_0() -> None:
    with IntellinetSimulator({}) as sim:  # admin/admin, PDUDaemon's defaults
        host, port = sim.address.split(":")
        d = make(Intellinet, hostname=host, port=port)
        d.set(0, True)
        d.set(7, True)
        assert sim.outlets[0] is True and sim.outlets[7] is True and d.get(7) is True
        with pytest.raises(DriverError, match="ports 0 to 7"):
            d.set(8, True)
    assert (Intellinet.first_port, Intellinet.fixed_ports, Intellinet.native_driver) == (0, 8, "intellinet_pdu")
