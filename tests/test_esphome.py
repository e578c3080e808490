"""ESPHome (``esphome`` and PDUDaemon's ``esphome-http``) against the ESPHome simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.esphome import Esphome, EsphomeHttp
from pdumqtt.simulators.esphome import EsphomeSimulator


def make(cls: type[Esphome], timeout: float = 2.0, names: dict[int, str] | None = None, **options: Any) -> Esphome:
    d = cls(vol.Schema(cls.options)(options), pdu="esp", timeout=timeout)
    d.port_names = names or {}
    return d


@pytest.fixture
def sim() -> Iterator[EsphomeSimulator]:
    with EsphomeSimulator({"switches": ["relay_1", "relay_2", "3"], "password": "esppw"}) as s:
        yield s


def test_ports_named_after_object_ids(sim: EsphomeSimulator) -> None:
    d = make(Esphome, names={1: "relay_1", 2: "relay_2"}, host=sim.address, username="admin", password="esppw")
    d.set(2, True)
    assert sim.switch("relay_2") is True and d.get(2) is True and d.get(1) is False
    assert sim.requests[0].method == "POST" and sim.requests[-1].path == "/switch/relay_1"
    assert sim.requests[-1].headers["authorization"].startswith("Digest ")
    d.set(2, False)
    assert sim.switch("relay_2") is False


@pytest.mark.parametrize("scheme", ["basic", "digest"])
def test_auto_auth_answers_the_devices_challenge(scheme: str) -> None:
    with EsphomeSimulator({"password": "esppw", "auth": scheme}) as sim:
        d = make(Esphome, names={1: "relay_1"}, host=sim.address, username="admin", password="esppw")
        d.set(1, True)
        assert d.get(1) is True
        assert "authorization" not in sim.requests[0].headers  # asked without credentials first
        assert sim.requests[-1].headers["authorization"].lower().startswith(scheme)
        # the scheme is learnt once (digest then fetches its nonce, and reuses it for the get)
        assert len(sim.requests) == (3 if scheme == "basic" else 4)


def test_a_port_named_by_its_number_is_that_object_id(sim: EsphomeSimulator) -> None:
    d = make(Esphome, names={3: "3"}, host=sim.address, username="admin", password="esppw")
    d.set(3, True)
    assert sim.switch("3") is True


def test_unknown_entity_and_wrong_password(sim: EsphomeSimulator) -> None:
    d = make(Esphome, names={1: "fan"}, host=sim.address, username="admin", password="esppw")
    with pytest.raises(DriverError, match="POST /switch/fan/turn_on: answered HTTP 404"):
        d.set(1, True)
    with pytest.raises(DriverError, match="HTTP 401") as err:
        make(Esphome, names={1: "relay_1"}, host=sim.address, username="admin", password="bad").get(1)
    assert "bad" not in str(err.value)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "not JSON"),
])
def test_faults_then_back(sim: EsphomeSimulator, failure: str, message: str) -> None:
    d = make(Esphome, names={1: "relay_1"}, timeout=0.5, host=sim.address, username="admin", password="esppw")
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.get(1)
    sim.set_failure(None)
    d.set(1, True)
    assert d.get(1) is True


def test_pdudaemon_esphome_http(sim: EsphomeSimulator) -> None:
    host, port = sim.address.split(":")
    d = make(EsphomeHttp, names={1: "relay_1"}, hostname=host, port=port, username="admin", password="esppw")
    d.set(1, True)
    assert sim.switch("relay_1") is True
    # PDUDaemon sends no auth unless both are set
    with pytest.raises(DriverError, match="HTTP 401"):
        make(EsphomeHttp, names={1: "relay_1"}, hostname=host, port=port, password="esppw").set(1, True)
    assert EsphomeHttp(vol.Schema(EsphomeHttp.options)({}), pdu="esp-relay").config["host"] == "esp-relay:80"
