"""ATEN PE-series PDUs (``aten_pe``) against their simulator."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import pytest
import voluptuous as vol
from support import wait_until

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.aten import AtenPe
from pdumqtt.simulators.aten import AtenSimulator


def make(timeout: float = 2.0, **options: Any) -> AtenPe:
    return AtenPe(vol.Schema(AtenPe.options)(options), pdu="pe6216", timeout=timeout)


def test_factory_login_switches_reads_and_reboots() -> None:
    with AtenSimulator({"reboot_delay": 0.3}) as sim:
        d = make(host=sim.address)
        d.set(12, True)
        form = dict(parse_qsl(sim.requests[0].body.decode()))
        assert form == {"usr": "administrator", "pwd": "password", "index": "12", "method": "on"}
        assert "authorization" not in sim.requests[0].headers
        assert sim.outlets[12] is True and d.get(12) is True and d.get(1) is False
        assert d.cycle(12, 5) is True and sim.reboots == 1
        assert d.get(12) is False  # PENDING, read as off until the PDU switches it back on
        wait_until(lambda: d.get(12), 5, "outlet 12 on again after the PDU's reboot")
        with pytest.raises(DriverError, match=r"no outlet 17 \(HTTP 404\)"):
            d.get(17)


def test_own_password_stays_out_of_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with AtenSimulator({"username": "lab", "password": "Pe-s3cret"}) as sim:
        d = make(timeout=0.5, host=sim.address, username="lab", password="Pe-s3cret")
        d.set(1, True)
        assert d.get(1) is True
        with pytest.raises(DriverError, match="refused the credentials") as err:
            make(host=sim.address, username="lab", password="Pe-guess").get(1)
        assert "Pe-guess" not in str(err.value)
        with pytest.raises(DriverError, match=r"refused the credentials \(HTTP 401\): set username and password"):
            make(host=sim.address).get(1)
        for failure in ("error", "hang", "garbage"):
            sim.set_failure(failure)
            with pytest.raises(DriverError, match=r"HTTP 500|no answer within 0\.5 s|unexpected answer") as err:
                d.get(1)
            assert sim.address in str(err.value)
        sim.set_failure(None)
        assert d.get(1) is True
    assert not [r for r in caplog.records if "Pe-s3cret" in r.getMessage()]
