"""Cleware USB-Switch 4/8 through the hidapi MOCK (tests/usb_mock.py): reports byte for byte, serials, daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
from support import accepts, free_port, run_cli, wait_until
from test_pdudaemon import tcp
from usb_mock import MockBus, MockCleware

from pdumqtt import registry
from pdumqtt.drivers import DriverError


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> MockBus:
    return MockBus().install(monkeypatch)


def driver(name: str, **options: Any) -> Any:
    cls = registry.load(name)
    return cls(vol.Schema(cls.options)(options), pdu="sw", timeout=1)


def test_switch4_reports(bus: MockBus) -> None:
    sw = bus.add(MockCleware(123456))
    d = driver("clewareusbswitch4", serial=123456)
    d.set(1, True)
    d.set(4, True)
    d.set(1, False)
    assert sw.reports == [bytes([0, 0, 0x10, 1]), bytes([0, 0, 0x13, 1]), bytes([0, 0, 0x10, 0])]
    assert sw.on == [False, False, False, True]
    with pytest.raises(DriverError, match="switch 5 does not exist"):
        d.set(5, True)


def test_switch8_reports(bus: MockBus) -> None:
    sw = bus.add(MockCleware(777, 0x0030))
    d = driver("clewareusbswitch8", serial="777")  # PDUDaemon's int(...) takes text too
    d.set(8, True)
    d.set(2, True)
    d.set(8, False)
    assert sw.reports == [bytes([0, 3, 0, 0x80, 0, 0x80]), bytes([0, 3, 0, 0x02, 0, 0x02]),
                          bytes([0, 3, 0, 0, 0, 0x80])]
    assert sw.on[:8] == [False, True] + [False] * 6
    assert registry.load("clewareusbswitch8").fixed_ports == 8
    assert registry.load("clewareusbswitch4").native_driver == "cleware_switch"


def test_newer_switches_are_told_apart_by_their_eeprom_serial(bus: MockBus) -> None:
    a = bus.add(MockCleware(0x1A2B3C4, shared_serial=True))
    b = bus.add(MockCleware(0x0000042, shared_serial=True))
    driver("cleware_switch", serial=0x42).set(3, True)
    assert b.on[2] is True and a.on[2] is False
    # each was asked for its serial, digit by digit, before b was switched
    assert a.reports == [bytes([0, 2, address]) for address in range(8, 15)]
    assert b.reports[-1] == bytes([0, 0, 0x12, 1])
    with pytest.raises(DriverError) as e:
        driver("cleware_switch", serial=5).set(1, True)
    assert "serial '5'" in str(e.value) and f"{0x1A2B3C4}, 66" in str(e.value)


def test_unplugged_permission_and_bad_serial(bus: MockBus) -> None:
    sw = bus.add(MockCleware(9))
    bus.unplug(sw)
    with pytest.raises(DriverError, match=r"serial '9'.*none is plugged in"):
        driver("clewareusbswitch4", serial=9).set(1, True)
    bus.plug(sw)
    sw.denied = True
    with pytest.raises(DriverError, match=r"permission denied .*70-pdumqtt-usb\.rules"):
        driver("clewareusbswitch4", serial=9).set(1, True)
    with pytest.raises(vol.Invalid, match="decimal"):
        driver("clewareusbswitch4", serial="0x1f")


# --- through the daemon ---------------------------------------------------------------------


def test_daemon_switches_and_reports_the_unplug(daemon, probe, unique, bus) -> None:
    sw = bus.add(MockCleware(31337, 0x0030))
    daemon({"pdus": {unique: {"driver": "cleware_switch", "model": "switch8", "serial": 31337, "ports": 8,
                              "retries": 0, "cycle_delay": 0.1}}})
    probe.subscribe(f"pdu/{unique}/availability")
    ack = probe.request(f"pdu/{unique}/6/set", "CYCLE")
    assert ack["status"] == "ok" and ack["state"] == "ON" and sw.on[5] is True
    assert sw.reports == [bytes([0, 3, 0, 0, 0, 0x20]), bytes([0, 3, 0, 0x20, 0, 0x20])]
    bus.unplug(sw)
    ack = probe.request(f"pdu/{unique}/6/set", "OFF")
    assert ack["status"] == "error" and "serial '31337'" in ack["error"]
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline")
    start = len(probe.messages)
    bus.plug(sw)
    assert probe.request(f"pdu/{unique}/6/set", "OFF")["status"] == "ok"
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", start=start)


def test_daemon_sees_the_unplug_and_the_replug_without_a_command(daemon, probe, unique, bus) -> None:
    sw = bus.add(MockCleware(4711, 0x0008))
    daemon({"pdus": {unique: {"driver": "cleware_switch", "model": "switch4", "serial": 4711, "ports": 4,
                              "retries": 0, "poll_interval": 0.1}}})
    probe.subscribe(f"pdu/{unique}/availability")
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
    start = len(probe.messages)
    bus.unplug(sw)
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline", start=start)
    start = len(probe.messages)
    bus.plug(sw)
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", start=start)
    assert sw.reports == [], "pinging never switches"


def pdudaemon_conf(port: int) -> dict[str, Any]:
    # PDUDaemon matches Cleware names in any case; its shipped example writes them so
    return {"daemon": {"hostname": "127.0.0.1", "port": port},
            "pdus": {"cleware-usb-switch-4": {"driver": "ClewareUsbSwitch4", "serial": 12345},
                     "cleware-8": {"driver": "clewareusbswitch8", "serial": "4242"}}}


def test_pdudaemon_conf_converts(tmp_path: Path) -> None:
    import yaml

    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(pdudaemon_conf(16421)))
    done = run_cli("migrate", str(conf))
    assert done.returncode == 0, done.stderr
    pdus = yaml.safe_load(done.stdout)["pdus"]
    assert pdus["cleware-usb-switch-4"] == {"driver": "clewareusbswitch4", "ports": 4, "serial": 12345}
    assert pdus["cleware-8"] == {"driver": "clewareusbswitch8", "ports": 8, "serial": "4242"}


def test_pdudaemon_conf_runs(daemon, bus) -> None:
    four = bus.add(MockCleware(12345))
    port = free_port()
    daemon(pdudaemon_conf(port))
    wait_until(lambda: accepts(port), 10, "the PDUDaemon listener")
    assert tcp(("127.0.0.1", port), b"cleware-usb-switch-4 3 on") == b"ack\n"
    wait_until(lambda: four.on[2], 10, "switch 3 on")
    assert four.reports == [bytes([0, 0, 0x12, 1])]
