"""Digital Loggers' legacy web API (``dli_http``) and REST API (``dli_rest``) against their simulators."""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol
from support import wait_until

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.dli import DliHttp, DliRest
from pdumqtt.simulators._http import HttpSimulator
from pdumqtt.simulators.dli import DliHttpSimulator, DliRestSimulator

KINDS = [(DliHttp, DliHttpSimulator, 0), (DliRest, DliRestSimulator, -1)]


def make(cls: type[DliHttp], timeout: float = 2.0, **options: Any) -> DliHttp:
    return cls(vol.Schema(cls.options)(options), pdu="dli", timeout=timeout)


def test_legacy_switches_reads_the_hex_mask_and_cycles() -> None:
    with DliHttpSimulator({"password": "1234", "cycle_delay": 0.1}) as sim:
        d = make(DliHttp, host=sim.address, password="1234")
        d.set(8, True)
        d.set(2, True)
        assert sim.requests[0].query == {"8": "ON"} and sim.requests[0].headers["authorization"].startswith("Basic")
        assert d.get(8) is True and d.get(2) is True and d.get(1) is False
        assert d.cycle(2, 5) is True and sim.requests[-1].query == {"2": "CCL"} and sim.cycles == 1
        wait_until(lambda: sim.outlets[2], 5, "outlet 2 on again after the controller's cycle")
        with pytest.raises(DriverError, match="outlets 1 to 8"):
            d.set(9, True)


def test_rest_sends_csrf_and_digest_and_uses_zero_based_indexes() -> None:
    with DliRestSimulator({"password": "1234", "cycle_delay": 0.1, "names": ["router"]}) as sim:
        d = make(DliRest, host=sim.address, password="1234")
        d.set(1, True)
        put = [r for r in sim.requests if r.method == "PUT"][-1]  # the first one met the digest challenge
        assert put.path == "/restapi/relay/outlets/=0/state/" and put.body == b"value=true"
        assert put.headers["x-csrf"] == "x" and put.headers["authorization"].startswith("Digest ")
        assert sim.outlets[0] is True and d.get(1) is True and d.get(2) is False
        assert d.cycle(1, 5) is True and sim.cycles == 1 and sim.outlets[0] is False
        wait_until(lambda: sim.outlets[0], 5, "outlet index 0 on again after the controller's cycle")
        assert d.outlet_name(1) == "router" and d.outlet_name(2) == "Outlet 2"
        with pytest.raises(DriverError, match="HTTP 404"):
            d.get(9)


def test_rest_without_csrf_is_refused_as_the_device_does() -> None:
    import requests

    with DliRestSimulator({}) as sim:
        assert requests.put(f"{sim.url}/restapi/relay/outlets/=0/state/", data={"value": "true"}).status_code == 403
        assert sim.outlets[0] is False


@pytest.mark.parametrize("cls, sim_class, offset", KINDS, ids=["legacy", "rest"])
@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "check username and password"), ("hang", "no answer within 0.5 s"),
    ("garbage", "(unexpected answer|not JSON)"),
])
def test_faults_then_back(cls: type[DliHttp], sim_class: type[HttpSimulator], offset: int,
                          failure: str, message: str) -> None:
    with sim_class({"password": "pw"}) as sim:
        d = make(cls, timeout=0.5, host=sim.address, password="pw")
        sim.set_failure(failure)
        with pytest.raises(DriverError, match=message) as err:
            d.get(3)
        assert sim.address in str(err.value)
        sim.set_failure(None)
        d.set(3, True)
        assert d.get(3) is True and sim.outlets[3 + offset] is True
