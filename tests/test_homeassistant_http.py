"""The Home Assistant switch driver (``homeassistant``, PDUDaemon's ``home-assistant-http``) against its simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.homeassistant import HomeAssistant, HomeAssistantHttp
from pdumqtt.simulators.homeassistant import HomeAssistantSimulator

TOKEN = "eyJhbGciOiJIUzI1NiJ9.long-lived"


def make(cls: type[HomeAssistant], names: dict[int, str], timeout: float = 2.0, **options: Any) -> HomeAssistant:
    d = cls(vol.Schema(cls.options)(options), pdu="ha", timeout=timeout)
    d.port_names = names
    return d


@pytest.fixture
def sim() -> Iterator[HomeAssistantSimulator]:
    with HomeAssistantSimulator({"entities": ["switch.bench_1", "light.bench", "switch.2"], "token": TOKEN,
                                 "unavailable": ["switch.2"]}) as s:
        yield s


def test_port_names_are_entities(sim: HomeAssistantSimulator) -> None:
    d = make(HomeAssistant, {1: "bench_1", 2: "light.bench"}, host=sim.address, token=TOKEN)
    d.set(1, True)
    assert sim.entity("switch.bench_1") is True and d.get(1) is True
    first = sim.requests[0]
    assert (first.path, first.json()) == ("/api/services/switch/turn_on", {"entity_id": "switch.bench_1"})
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    d.set(2, True)  # another domain
    assert sim.requests[-1].path == "/api/services/light/turn_on" and d.get(2) is True
    assert d.outlet_name(1) == "Bench_1"


def test_bad_token_unknown_and_unavailable_entities(sim: HomeAssistantSimulator) -> None:
    with pytest.raises(DriverError, match="refused the credentials") as err:
        make(HomeAssistant, {1: "bench_1"}, host=sim.address, token="stale-token").set(1, True)
    assert "stale-token" not in str(err.value)
    d = make(HomeAssistant, {1: "nope", 3: "2"}, host=sim.address, token=TOKEN)
    with pytest.raises(DriverError, match=r"GET /api/states/switch\.nope: answered HTTP 404"):
        d.get(1)
    with pytest.raises(DriverError, match=r"switch\.2 is 'unavailable'"):
        d.get(3)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "not JSON"),
])
def test_faults_then_back(sim: HomeAssistantSimulator, failure: str, message: str) -> None:
    d = make(HomeAssistant, {1: "bench_1"}, timeout=0.5, host=sim.address, token=TOKEN)
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.get(1)
    sim.set_failure(None)
    d.set(1, True)
    assert d.get(1) is True


def test_pdudaemon_home_assistant_http(sim: HomeAssistantSimulator) -> None:
    host, port = sim.address.split(":")
    d = make(HomeAssistantHttp, {1: "bench_1"}, hostname=host, port=port, api_key=TOKEN)
    d.set(1, True)
    assert sim.entity("switch.bench_1") is True
    with pytest.raises(DriverError, match="HTTP 401"):
        make(HomeAssistantHttp, {1: "bench_1"}, hostname=host, port=port).set(1, True)
    by_name = HomeAssistantHttp(vol.Schema(HomeAssistantHttp.options)({}), pdu="hass.lab")
    assert by_name.base_url == "http://hass.lab:80"
    assert HomeAssistant(vol.Schema(HomeAssistant.options)({"host": "hass", "token": "t"})).base_url == \
        "http://hass:8123"
