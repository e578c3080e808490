"""Tasmota (``tasmota_http`` and PDUDaemon's three names) against the Tasmota simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.tasmota import BrennenstuhlWSPL01Tasmota, GenericTasmota, SonoffS20Tasmota, Tasmota
from pdumqtt.simulators.tasmota import TasmotaSimulator


def make(cls: type[Tasmota], timeout: float = 2.0, pdu: str = "plug", **options: Any) -> Tasmota:
    return cls(vol.Schema(cls.options)(options), pdu=pdu, timeout=timeout)


@pytest.fixture
def sim() -> Iterator[TasmotaSimulator]:
    with TasmotaSimulator({"relays": 4, "password": "webpw"}) as s:
        yield s


def test_switch_and_read_with_the_password_in_the_query(sim: TasmotaSimulator) -> None:
    d = make(Tasmota, host=sim.address, password="webpw")
    d.set(3, True)
    assert sim.outlets == {1: False, 2: False, 3: True, 4: False}
    assert d.get(3) is True and d.get(1) is False
    d.set(3, False)
    assert d.get(3) is False
    first = sim.requests[0]
    assert first.query == {"cmnd": "Power3 ON", "user": "admin", "password": "webpw"}
    assert "authorization" not in first.headers


def test_wrong_password_names_the_device_not_the_password(sim: TasmotaSimulator) -> None:
    with pytest.raises(DriverError, match="refused the credentials") as err:
        make(Tasmota, host=sim.address, password="guess").set(1, True)
    assert sim.address in str(err.value) and "guess" not in str(err.value)


def test_older_firmware_refuses_with_http_200() -> None:
    with TasmotaSimulator({"password": "webpw", "refusal_status": 200}) as sim:
        with pytest.raises(DriverError, match=r"refused the credentials \(Need user=") as err:
            make(Tasmota, host=sim.address, password="guess").get(1)
        assert "guess" not in str(err.value)
        with pytest.raises(DriverError, match="set password"):
            make(Tasmota, host=sim.address).get(1)


def test_one_relay_device_answers_power() -> None:
    with TasmotaSimulator({}) as sim:
        d = make(Tasmota, host=sim.address)
        d.set(1, True)
        assert d.get(1) is True
        assert sim.requests[-1].query == {"cmnd": "Power1"}
    with TasmotaSimulator({"setoption26": True}) as sim:
        assert make(Tasmota, host=sim.address).get(1) is False


def test_relay_the_device_lacks(sim: TasmotaSimulator) -> None:
    with pytest.raises(DriverError, match=r"unexpected answer \"\{'Command': 'Unknown'\}\""):
        make(Tasmota, host=sim.address, password="webpw").set(5, True)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "not JSON: '<!DOCTYPE html>"),
])
def test_faults_then_back(sim: TasmotaSimulator, failure: str, message: str) -> None:
    d = make(Tasmota, timeout=0.5, host=sim.address, password="webpw")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.set(2, True)
    sim.set_failure(None)
    d.set(2, True)
    assert d.get(2) is True


def test_pdudaemon_names() -> None:
    with TasmotaSimulator({"relays": 2, "password": "pw"}) as sim:
        # PDUDaemon sends the credentials only when both are set
        with pytest.raises(DriverError, match="HTTP 401"):
            make(BrennenstuhlWSPL01Tasmota, ip=sim.address, password="pw").set(1, True)
        plug = make(BrennenstuhlWSPL01Tasmota, ip=sim.address, username="admin", password="pw")
        plug.set(2, True)
        assert sim.outlets[2] is True and plug.get(2) is True
        with pytest.raises(DriverError, match="outlets 1 to 2"):
            plug.set(3, True)
        generic = make(GenericTasmota, ip=sim.address, username="admin", password="pw", port_count="2")
        generic.set(1, True)
        assert sim.outlets[1] is True
    with TasmotaSimulator({}) as one:
        host = one.address.split(":")[0]
        # no ip: the PDU's name is the device's host, as in PDUDaemon
        s20 = SonoffS20Tasmota(vol.Schema(SonoffS20Tasmota.options)({}), pdu=host, timeout=2)
        assert s20.config["host"] == host
        s20 = make(SonoffS20Tasmota, ip=one.address)
        s20.set(1, True)
        assert one.outlets[1] is True
        with pytest.raises(DriverError, match="outlets 1 to 1"):
            s20.set(2, True)
    assert (GenericTasmota.fixed_ports, SonoffS20Tasmota.fixed_ports, BrennenstuhlWSPL01Tasmota.fixed_ports) == (
        None, 1, 2)
    assert GenericTasmota.native_driver == "tasmota_http"
    with pytest.raises(vol.Invalid):
        vol.Schema(SonoffS20Tasmota.options)({"port_count": 2})
