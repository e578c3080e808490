"""Server Technology PRO2 (``servertech_pro2`` and PDUDaemon's ``servertechpro2``) over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
from support import wait_until

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.servertech_pro2 import ServertechPro2, Servertechpro2
from pdumqtt.simulators.servertech_pro2 import ServertechPro2Simulator


def make(cls: type[ServertechPro2], names: dict[int, str] | None = None, timeout: float = 2.0,
         **options: Any) -> ServertechPro2:
    d = cls(vol.Schema(cls.options)(options), pdu="pro2", timeout=timeout)
    d.port_names = names or {}
    return d


@pytest.fixture
def sim() -> Iterator[ServertechPro2Simulator]:
    with ServertechPro2Simulator({"password": "jawspw", "outlet_ids": ["AA1", "AA2", "AB1", "7"]}) as s:
        yield s


def test_https_verified_switch_read_reboot(sim: ServertechPro2Simulator) -> None:
    d = make(ServertechPro2, {3: "AB1"}, host=sim.address, ca_file=sim.ca_file, password="jawspw")
    d.set(2, True)  # a port named by its number: AA2
    assert sim.outlet_by_id("AA2") is True and d.get(2) is True
    assert sim.requests[0].method == "PATCH" and sim.requests[0].json() == {"control_action": "on"}
    d.set(3, True)  # a port named after its outlet id
    assert sim.outlet_by_id("AB1") is True and d.outlet_name(3) == "Outlet_AB1"
    assert d.cycle(3, 5) is True and sim.reboots == 1 and sim.outlet_by_id("AB1") is False
    wait_until(lambda: sim.outlet_by_id("AB1"), 5, "AB1 back on after the reboot")


def test_certificate_checked_unless_told_not_to(sim: ServertechPro2Simulator) -> None:
    with pytest.raises(DriverError, match="certificate not trusted"):
        make(ServertechPro2, host=sim.address, password="jawspw").get(1)
    assert make(ServertechPro2, host=sim.address, password="jawspw", verify=False).get(1) is False


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "unexpected answer"),
])
def test_faults_then_back(sim: ServertechPro2Simulator, failure: str, message: str) -> None:
    d = make(ServertechPro2, timeout=0.5, host=sim.address, ca_file=sim.ca_file, password="jawspw")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.get(1)
    sim.set_failure(None)
    d.set(1, True)
    assert d.get(1) is True


def test_pdudaemon_servertechpro2(sim: ServertechPro2Simulator) -> None:
    d = make(Servertechpro2, {7: "7"}, ip=sim.address, protocol="https", insecure=True, password="jawspw")
    d.set(7, True)  # PDUDaemon passes the port as the outlet id
    assert sim.outlet_by_id("7") is True and sim.requests[-1].path == "/jaws/control/outlets/7"
    with pytest.raises(DriverError, match="HTTP 401") as err:
        make(Servertechpro2, {7: "7"}, ip=sim.address, protocol="https", insecure="true").set(7, True)
    assert "admin" not in str(err.value).split(":", 2)[-1]
    with pytest.raises(DriverError, match="certificate not trusted"):
        make(Servertechpro2, {7: "7"}, ip=sim.address, protocol="https", password="jawspw").set(7, True)
