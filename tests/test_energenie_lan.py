"""Energenie EG-PMS2-LAN (``energenie_lan``) against its simulator: log in, act, log out."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.energenie_lan import EnergenieLan
from pdumqtt.simulators.energenie_lan import EnergenieSimulator


def make(timeout: float = 2.0, **options: Any) -> EnergenieLan:
    return EnergenieLan(vol.Schema(EnergenieLan.options)(options), pdu="eg-pms2", timeout=timeout)


def test_each_call_logs_in_and_out() -> None:
    with EnergenieSimulator({}) as sim:
        d = make(host=sim.address)
        d.set(2, True)
        assert [(r.method, r.path, r.body) for r in sim.requests] == [
            ("POST", "/login.html", b"pw=1"), ("POST", "/", b"cte2=1"), ("GET", "/login.html", b"")]
        assert sim.outlets[2] is True and sim.session is False
        assert d.get(2) is True and d.get(1) is False
        assert (sim.logins, sim.logouts) == (3, 3)
        with pytest.raises(DriverError, match="outlets 1 to 4"):
            d.set(5, True)


def test_wrong_password_and_faults(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with EnergenieSimulator({"password": "Eg-s3cret"}) as sim:
        with pytest.raises(DriverError, match="refused the password") as err:
            make(host=sim.address, password="Eg-guess").set(1, True)
        assert "Eg-guess" not in str(err.value) and sim.address in str(err.value)
        d = make(timeout=0.5, host=sim.address, password="Eg-s3cret")
        d.set(1, True)
        for failure, message in (("error", "HTTP 500"), ("hang", r"no answer within 0\.5 s"),
                                 ("garbage", "no Log Out link")):
            sim.set_failure(failure)
            with pytest.raises(DriverError, match=message) as err:
                d.get(1)
            assert "Eg-s3cret" not in str(err.value)
        sim.set_failure(None)
        assert d.get(1) is True
    assert not [r for r in caplog.records if "Eg-s3cret" in r.getMessage()]
