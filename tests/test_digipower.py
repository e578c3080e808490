"""Digipower (``digipower``, Lindy's CGI under Digipower's defaults) against the Lindy iPower simulator."""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.digipower import Digipower
from pdumqtt.drivers.lindy_ipower import LindyIpower
from pdumqtt.simulators.lindy_ipower import LindyIpowerSimulator


def make(timeout: float = 2.0, **options: Any) -> Digipower:
    return Digipower(vol.Schema(Digipower.options)(options), pdu="digipower", timeout=timeout)


def test_digipower_is_lindys_code_with_the_snmp_user() -> None:
    assert issubclass(Digipower, LindyIpower) and Digipower.set is LindyIpower.set
    with LindyIpowerSimulator({"username": "snmp", "password": "1234"}) as sim:
        d = make(host=sim.address, password="1234")
        assert d.config["username"] == "snmp"
        d.set(5, True)
        assert sim.requests[0].query == {"led": "000010000000000000000000"} and sim.outlets[5] is True
        assert d.get(5) is True and d.get(1) is False
        with pytest.raises(DriverError, match="set username and password"):
            make(host=sim.address).get(1)
        sim.set_failure("garbage")
        with pytest.raises(DriverError, match="unexpected answer"):
            d.get(5)
