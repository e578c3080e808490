"""OpenWrt PoE over ubus (``openwrt_poe`` and PDUDaemon's ``ubus``) against the ubus simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.openwrt_poe import OpenwrtPoe, Ubus
from pdumqtt.simulators.openwrt_poe import OpenwrtPoeSimulator


def make(cls: type[OpenwrtPoe], timeout: float = 2.0, pdu: str = "switch", **options: Any) -> OpenwrtPoe:
    return cls(vol.Schema(cls.options)(options), pdu=pdu, timeout=timeout)


@pytest.fixture
def sim() -> Iterator[OpenwrtPoeSimulator]:
    with OpenwrtPoeSimulator({"ports": 8}) as s:
        yield s


def test_null_session_switch_and_read(sim: OpenwrtPoeSimulator) -> None:
    d = make(OpenwrtPoe, host=sim.address)
    d.set(5, True)
    assert sim.outlets[5] is True and d.get(5) is True and d.get(4) is False
    assert sim.requests[0].json() == {"jsonrpc": "2.0", "id": 1, "method": "call",
                                      "params": ["0" * 32, "poe", "manage", {"port": "lan5", "enable": True}]}
    d.set(5, False)
    assert d.get(5) is False


def test_login_session_kept_and_renewed_after_a_failure() -> None:
    with OpenwrtPoeSimulator({"acl": "login", "username": "pdu", "password": "rpcpw"}) as sim:
        with pytest.raises(DriverError, match=r"Access denied \(log in with username"):
            make(OpenwrtPoe, host=sim.address).set(1, True)
        with pytest.raises(DriverError, match="session login failed: permission denied") as err:
            make(OpenwrtPoe, host=sim.address, username="pdu", password="nope").set(1, True)
        assert "nope" not in str(err.value)
        d = make(OpenwrtPoe, host=sim.address, username="pdu", password="rpcpw")
        d.set(1, True)
        assert d.get(1) is True and len(sim.sessions) == 1  # one login for both calls
        sim.sessions.clear()  # the session expired on the switch
        with pytest.raises(DriverError, match="Access denied"):
            d.get(1)
        assert d.get(1) is True and len(sim.sessions) == 1


def test_unknown_port(sim: OpenwrtPoeSimulator) -> None:
    d = make(OpenwrtPoe, host=sim.address)
    with pytest.raises(DriverError, match=r"poe manage failed: not found \(4\)"):
        d.set(9, True)
    with pytest.raises(DriverError, match="no port lan9"):
        d.get(9)
    assert make(OpenwrtPoe, host=sim.address, port_name="lan{port}").get(8) is False
    with pytest.raises(vol.Invalid):
        vol.Schema(OpenwrtPoe.options)({"host": "h", "port_name": "lan"})


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "not JSON"),
])
def test_faults_then_back(sim: OpenwrtPoeSimulator, failure: str, message: str) -> None:
    d = make(OpenwrtPoe, timeout=0.5, host=sim.address)
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message):
        d.set(2, True)
    sim.set_failure(None)
    d.set(2, True)
    assert d.get(2) is True


def test_pdudaemon_ubus(sim: OpenwrtPoeSimulator) -> None:
    d = make(Ubus, hostname=sim.address)
    d.set(3, True)
    assert sim.outlets[3] is True and d.get(3) is True
    assert make(Ubus, pdu="poe-switch.lab").config["host"] == "poe-switch.lab"
    assert Ubus.native_driver == "openwrt_poe"
