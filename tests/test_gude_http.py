"""Gude Expert Power Control (``gude_epc``) against its simulator, in each of the ways its state is read."""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol
from support import wait_until

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.gude_http import GudeEpc
from pdumqtt.simulators.gude_http import GudeSimulator

MODELS = [("8008", "ov.html"), ("8316", "ov.html"), ("8225", "statusjsn.js"), ("8031", "status.json")]


def make(timeout: float = 2.0, **options: Any) -> GudeEpc:
    return GudeEpc(vol.Schema(GudeEpc.options)(options), pdu="epc", timeout=timeout)


@pytest.mark.parametrize("model, read", MODELS)
def test_switch_and_read(model: str, read: str) -> None:
    with GudeSimulator({"model": model, "password": "pw"}) as sim:
        d = make(host=sim.address, password="pw", read=read)
        d.set(7, True)
        assert sim.outlets[7] is True and sum(sim.outlets.values()) == 1
        switch = sim.requests[0]
        assert switch.query["cmd"] == "1" and switch.query["p"] == "7" and switch.query["s"] == "1"
        assert switch.path == ("/status.json" if model == "8031" else "/ov.html")
        assert d.get(7) is True and d.get(8) is False and d.get(1) is False
        assert sim.requests[-1].path == f"/{read}"
        d.set(7, False)
        assert d.get(7) is False
        with pytest.raises(DriverError, match="outputs 1 to 8"):
            d.get(9)


def test_batch_mode_cycles_on_json_models_and_names_come_from_them() -> None:
    with GudeSimulator({"model": "8225", "names": ["dut"]}) as sim:
        d = make(host=sim.address, read="statusjsn.js")
        d.set(2, True)
        assert d.cycle(2, 0.3) is True
        assert sim.batches[-1] == {"cmd": "5", "p": "2", "a1": "0", "a2": "1", "s": "1"}
        assert sim.outlets[2] is False and sim.requests[-1].path == "/ov.html"
        wait_until(lambda: sim.outlets[2], 5, "output 2 on again after the batch")
        assert d.outlet_name(1) == "dut" and d.outlet_name(2) == "Power Port"
    assert make(host="127.0.0.1:9").cycle(1, 1) is False  # ov.html firmware: pdumqtt cycles


def test_blocked_by_another_session() -> None:
    with GudeSimulator({"blocked_by": "10.1.2.3"}) as sim:
        with pytest.raises(DriverError, match=r"blocked by another user.s web session \(from 10\.1\.2\.3\)"):
            make(host=sim.address).get(1)


def test_read_option_is_checked() -> None:
    with pytest.raises(vol.Invalid, match=r"expected one of ov\.html, statusjsn\.js, status\.json"):
        vol.Schema(GudeEpc.options)({"host": "epc", "read": "index.html"})


@pytest.mark.parametrize("model, read", [MODELS[0], MODELS[3]])
@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "check username and password"), ("hang", "no answer within 0.5 s"),
    ("garbage", "unexpected answer '<html><body>Expert Power Control"),
])
def test_faults_then_back(model: str, read: str, failure: str, message: str) -> None:
    with GudeSimulator({"model": model, "password": "pw"}) as sim:
        d = make(timeout=0.5, host=sim.address, password="pw", read=read)
        sim.set_failure(failure)
        with pytest.raises(DriverError, match=message) as err:
            d.set(3, True)
        assert sim.address in str(err.value)
        sim.set_failure(None)
        d.set(3, True)
        assert d.get(3) is True
