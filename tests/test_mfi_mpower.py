"""Ubiquiti mFi mPower (``mfi_mpower``) against its simulator: the cookie session and the sensors API."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.mfi_mpower import MfiMpower
from pdumqtt.simulators.mfi_mpower import MfiMpowerSimulator


def make(timeout: float = 2.0, **options: Any) -> MfiMpower:
    return MfiMpower(vol.Schema(MfiMpower.options)(options), pdu="mpower", timeout=timeout)


def test_login_once_then_switch_and_read() -> None:
    with MfiMpowerSimulator({}) as sim:
        d = make(host=sim.address)
        d.set(2, True)
        assert [(r.method, r.path) for r in sim.requests[:3]] == [
            ("GET", "/"), ("POST", "/login.cgi"), ("GET", "/power")]
        login = sim.requests[1]
        assert login.body == b"username=ubnt&password=ubnt" and "AIROS_SESSIONID=" in login.headers["cookie"]
        assert sim.requests[-1].body == b"output=1" and sim.outlets[2] is True
        assert d.get(2) is True and d.get(1) is False
        d.set(2, False)
        assert d.get(2) is False and sim.logins == 1
        with pytest.raises(DriverError, match=r"port 4 does not exist: the device reports ports \[1, 2, 3\]"):
            d.get(4)


def test_an_expired_session_is_renewed() -> None:
    with MfiMpowerSimulator({}) as sim:
        d = make(host=sim.address)
        d.set(1, True)
        sim.expire_sessions()
        assert d.get(1) is True and sim.logins == 2


def test_wrong_password_and_faults(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with MfiMpowerSimulator({"username": "lab", "password": "Mf-s3cret"}) as sim:
        with pytest.raises(DriverError, match=r"refused the login .* check username and password") as err:
            make(host=sim.address, username="lab", password="Mf-guess").get(1)
        assert "Mf-guess" not in str(err.value) and sim.address in str(err.value)
        d = make(timeout=0.5, host=sim.address, username="lab", password="Mf-s3cret")
        for failure, message in (("error", "HTTP 500"), ("unauthorized", "HTTP 401"),
                                 ("hang", r"no answer within 0\.5 s"), ("garbage", "not JSON: '<html><body>mFi")):
            sim.set_failure(failure)
            with pytest.raises(DriverError, match=message):
                d.set(3, True)
        sim.set_failure(None)
        d.set(3, True)
        assert d.get(3) is True
    assert not [r for r in caplog.records if "Mf-s3cret" in r.getMessage()]
