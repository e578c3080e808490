"""servod driver against the servod XML-RPC simulator, direct and through the daemon.

Active-low resets, several controls, read back, faults and failures; PDUDaemon's
``SERVO``; a pdudaemon.conf converted and run unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
from support import free_port

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.servo import Servo, Servod
from pdumqtt.pdudaemon_conf import convert
from pdumqtt.simulators.servod import ServodSimulator


@pytest.fixture
def servod() -> Iterator[ServodSimulator]:
    with ServodSimulator({}) as sim:
        yield sim


def make(address: str, timeout: float = 3.0, **options: Any) -> Servod:
    return Servod(vol.Schema(Servod.options)({"host": address, **options}), pdu="servo", timeout=timeout)


def test_cold_reset_is_active_low(servod: ServodSimulator) -> None:
    d = make(servod.address)
    assert d.get(1) is False  # held in reset
    d.set(1, True)
    assert servod.controls["cold_reset"] == "off" and servod.powered() and d.get(1) is True
    d.set(1, False)
    assert servod.controls["cold_reset"] == "on" and d.get(1) is False
    assert servod.log[1] == ("set", "cold_reset", "off")


def test_several_controls_in_order(servod: ServodSimulator) -> None:
    d = make(servod.address, ctrls=["power_state", "warm_reset", "cold_reset"])
    d.set(1, True)
    assert [entry for entry in servod.log if entry[0] == "set"] == [
        ("set", "power_state", "on"), ("set", "warm_reset", "off"), ("set", "cold_reset", "off")]
    assert d.get(1) is True
    servod.controls["warm_reset"] = "on"  # someone holds the board in warm reset
    assert d.get(1) is False


def test_unknown_control_is_a_config_error() -> None:
    with pytest.raises(vol.Invalid, match="unknown control 'pwr_button'"):
        vol.Schema(Servod.options)({"ctrls": ["cold_reset", "pwr_button"]})


def test_servod_fault_is_readable(servod: ServodSimulator) -> None:
    d = make(servod.address)
    servod.controls["cold_reset"] = "maybe"
    with pytest.raises(DriverError, match="says cold_reset is 'maybe', expected on or off"):
        d.get(1)
    with ServodSimulator({"controls": ["cold_reset"]}) as board:
        with pytest.raises(DriverError, match=r"refused set\('warm_reset', 'on'\): .*No control named warm_reset"):
            make(board.address, ctrls=["cold_reset", "warm_reset"]).set(1, False)


@pytest.mark.parametrize("failure, message", [
    ("silent", r"no answer from servod at 127\.0\.0\.1:\d+ to set\('cold_reset', 'on'\) within 1 s"),
    ("garbage", "with something that is not XML-RPC"),
    ("drop", r"servod at 127\.0\.0\.1:\d+ closed the connection without answering set"),
])
def test_failures(servod: ServodSimulator, failure: str, message: str) -> None:
    d = make(servod.address, timeout=1.0)
    d.set(1, True)
    servod.failure = failure
    with pytest.raises(DriverError, match=message):
        d.set(1, False)
    servod.failure = None
    d.set(1, False)
    assert servod.controls["cold_reset"] == "on"


def test_unreachable() -> None:
    with pytest.raises(DriverError, match=r"cannot reach servod at 127\.0\.0\.1:\d+: Connection refused"):
        make(f"127.0.0.1:{free_port()}").get(1)


def test_pdudaemon_defaults_and_single_control() -> None:
    d = Servo(vol.Schema(Servo.options)({}), pdu="servo-1")
    assert d.config == {"host": "localhost:9999", "ctrls": ["cold_reset"]}
    d = Servo(vol.Schema(Servo.options)({"ip": "192.0.2.5", "port": 9901, "ctrls": "warm_reset"}), pdu="s")
    assert d.config == {"host": "192.0.2.5:9901", "ctrls": ["warm_reset"]}


# --- through the daemon ---------------------------------------------------------------


def test_daemon_on_off_cycle_get(daemon: Any, probe: Any, unique: str, servod: ServodSimulator) -> None:
    daemon({"pdus": {unique: {"driver": "servod", "host": servod.address, "ctrls": ["cold_reset", "warm_reset"],
                              "ports": 1, "retries": 0, "timeout": 2, "cycle_delay": 0.1}}})
    for payload, state in (("ON", "ON"), ("OFF", "OFF"), ("CYCLE", "ON")):
        ack = probe.request(f"pdu/{unique}/1/set", payload)
        assert (ack["status"], ack["state"]) == ("ok", state), ack
    assert probe.request(f"pdu/{unique}/1/get")["state"] == "ON" and servod.powered()


def test_daemon_offline_and_back(daemon: Any, probe: Any, unique: str) -> None:
    sim = ServodSimulator({})
    sim.start()
    port = sim.address.rsplit(":", 1)[1]
    try:
        daemon({"pdus": {unique: {"driver": "servod", "host": sim.address, "ports": 1, "retries": 0,
                                  "timeout": 1, "poll_interval": 0.3}}})
        probe.subscribe(f"pdu/{unique}/availability")
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
        sim.failure = "garbage"
        ack = probe.request(f"pdu/{unique}/1/set", "ON")
        assert ack["status"] == "error" and "not XML-RPC" in ack["error"], ack
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline")
        sim.stop()
        assert "Connection refused" in probe.request(f"pdu/{unique}/1/set", "ON")["error"]
        mark = len(probe.messages)
        sim = ServodSimulator({"listen": f"127.0.0.1:{port}"})
        sim.start()
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", timeout=15, start=mark)
        assert probe.request(f"pdu/{unique}/1/set", "ON")["status"] == "ok" and sim.powered()
    finally:
        sim.stop()


def test_converted_pdudaemon_conf() -> None:
    result = convert({"daemon": {"hostname": "127.0.0.1", "port": 16421},
                      "pdus": {"servo-v4": {"driver": "SERVO", "ip": "127.0.0.1", "port": 9902,
                                            "ctrls": ["cold_reset", "warm_reset"]}}})
    assert result.config["pdus"]["servo-v4"] == {"driver": "SERVO", "ports": 1, "ip": "127.0.0.1", "port": 9902,
                                                 "ctrls": ["cold_reset", "warm_reset"]}


def test_daemon_runs_an_unchanged_pdudaemon_conf(daemon: Any, probe: Any, unique: str,
                                                 servod: ServodSimulator) -> None:
    host, port = servod.address.rsplit(":", 1)
    daemon({"daemon": {"hostname": "127.0.0.1", "port": free_port(), "listener": "http"},
            "pdus": {unique: {"driver": "SERVO", "ip": host, "port": int(port), "ctrls": "cold_reset"}}})
    ack = probe.request(f"pdu/{unique}/1/set", "ON")
    assert (ack["status"], ack["state"]) == ("ok", "ON") and servod.powered()
