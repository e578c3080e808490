"""NETIO's KSHELL-era CGI (``netio_cgi``) against its simulator."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import voluptuous as vol
from support import wait_until

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.netio_cgi import NetioCgi
from pdumqtt.simulators.netio_cgi import NetioCgiSimulator

SECRET = "N3tio pw&x"  # a space and an & survive the query string


def make(timeout: float = 2.0, **options: Any) -> NetioCgi:
    return NetioCgi(vol.Schema(NetioCgi.options)(options), pdu="netio", timeout=timeout)


def test_factory_login_switch_list_and_interrupt() -> None:
    with NetioCgiSimulator({"interrupt_delay": 0.2}) as sim:
        d = make(host=sim.address)
        d.set(3, True)
        assert sim.requests[0].query == {"l": "p:admin:admin", "p": "uu1u"}
        assert sim.outlets == {1: False, 2: False, 3: True, 4: False}
        assert d.get(3) is True and d.get(4) is False
        assert d.cycle(3, 5) is True and sim.requests[-1].query["p"] == "uuiu" and sim.outlets[3] is False
        wait_until(lambda: sim.outlets[3], 5, "output 3 back on after the interrupt")
        with pytest.raises(DriverError, match="outlets 1 to 4"):
            d.set(5, True)


def test_credentials_stay_out_of_every_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with NetioCgiSimulator({"username": "lab", "password": SECRET}) as sim:
        d = make(timeout=0.5, host=sim.address, username="lab", password=SECRET)
        d.set(1, True)
        assert sim.requests[-1].query["l"] == f"p:lab:{SECRET}" and d.get(1) is True
        with pytest.raises(DriverError, match=r"refused the credentials \(553 INVALID LOGIN\)") as err:
            make(host=sim.address, username="lab", password="wrong-one").get(1)
        assert "wrong-one" not in str(err.value)
        messages = []
        for failure in ("error", "unauthorized", "hang", "garbage"):
            sim.set_failure(failure)
            with pytest.raises(DriverError, match=r"HTTP 500|HTTP 401|no answer within 0\.5 s|unexpected") as err:
                d.set(2, True)
            messages.append(str(err.value))
        sim.set_failure(None)
        d.set(2, True)
        assert sim.outlets[2] is True
    assert not [m for m in messages if SECRET in m or "lab:" in m]
    assert not [r for r in caplog.records if SECRET in r.getMessage() or "N3tio" in r.getMessage()]
