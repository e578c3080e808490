"""YKUSH hubs through the hidapi MOCK (tests/usb_mock.py): frames byte for byte, serials, unplug, daemon."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support import free_port, run_cli, wait_until
from test_pdudaemon import tcp
from usb_mock import MockBus, MockYkush

from pdumqtt import registry
from pdumqtt.drivers import DriverError


def report(command: int) -> bytes:
    return bytes([0x00, command] + [0] * 63)


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> MockBus:
    return MockBus().install(monkeypatch)


def driver(name: str, **options: Any) -> Any:
    cls = registry.load(name)
    import voluptuous as vol

    return cls(vol.Schema(cls.options)(options), pdu="hub", timeout=1)


def test_frames_byte_for_byte(bus: MockBus) -> None:
    hub = bus.add(MockYkush("YK10001"))
    ykush = driver("yepkit_ykush", serial="YK10001")
    ykush.set(2, False)
    assert hub.reports == [report(0x02)] and hub.up == [True, False, True]
    assert ykush.get(2) is False and ykush.get(1) is True
    ykush.set(2, True)
    assert hub.reports[1:] == [report(0x22), report(0x21), report(0x12)]
    assert len(hub.reports[0]) == 65 and hub.up[1] is True


def test_pdudaemon_names_and_models(bus: MockBus) -> None:
    three = bus.add(MockYkush("YK30001", 0xF11B, 4))
    xs = bus.add(MockYkush("YKX0001", 0xF0CD, 1))
    assert [registry.load(n).fixed_ports for n in ("YKUSH", "YKUSH3", "YKUSHXS")] == [3, 3, 1]
    assert registry.load("YKUSH3").native_driver == "yepkit_ykush"
    compat = driver("YKUSH3", serial="YK30001")
    compat.set(3, False)
    assert three.reports == [report(0x03)]
    with pytest.raises(DriverError, match="port 4 does not exist"):
        compat.set(4, False)  # PDUDaemon's YKUSH3 switches ports 1-3
    driver("yepkit_ykush", model="ykush3").set(4, False)  # the power-only port, for our own name
    assert three.up == [True, True, False, False]
    driver("YKUSHXS").set(1, False)  # PDUDaemon's default serial "": the one hub of that model
    assert xs.reports == [report(0x01)] and not xs.up[0]
    with pytest.raises(DriverError, match="has port 1"):
        driver("YKUSHXS").set(2, True)
    assert "ykush" not in registry.names() and "Ykush3" not in registry.names()  # exact case, as PDUDaemon


def test_chosen_by_serial_and_absent_serial_named(bus: MockBus) -> None:
    a, b = bus.add(MockYkush("YK1")), bus.add(MockYkush("YK2"))
    driver("YKUSH", serial="YK2").set(1, False)
    assert not a.reports and b.reports == [report(0x01)]
    with pytest.raises(DriverError) as e:
        driver("YKUSH", serial="YK9").set(1, True)
    assert "'YK9'" in str(e.value) and "YK1, YK2" in str(e.value) and "04d8:f2f7" in str(e.value)
    with pytest.raises(DriverError, match=r"2 YKUSH .* are plugged in \(serials YK1, YK2\): set serial"):
        driver("YKUSH").set(1, True)


def test_unplug_and_plug_in_again(bus: MockBus) -> None:
    hub = bus.add(MockYkush("YK1"))
    ykush = driver("yepkit_ykush", serial="YK1")
    bus.unplug(hub)
    with pytest.raises(DriverError, match=r"no YKUSH .*serial 'YK1'.*none is plugged in at all"):
        ykush.set(1, False)
    bus.plug(hub)
    ykush.set(1, False)
    assert hub.up[0] is False


def test_failures_say_what_to_do(bus: MockBus, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = bus.add(MockYkush("YK1"))
    hub.denied = True
    with pytest.raises(DriverError, match=r"permission denied .*YK1.*examples/udev/70-pdumqtt-usb\.rules"):
        driver("YKUSH").get(1)
    hub.denied, hub.silent = False, True
    with pytest.raises(DriverError, match="no answer from the YKUSH YK1 to reading port 1 within 1 s"):
        driver("YKUSH").get(1)
    monkeypatch.setitem(sys.modules, "hid", None)
    with pytest.raises(DriverError, match=r"needs hidapi, which is not installed: pip install 'pdumqtt\[usb\]'"):
        driver("YKUSH").get(1)


def test_udev_rules_cover_every_usb_device() -> None:
    rules = (Path(__file__).resolve().parent.parent / "examples/udev/70-pdumqtt-usb.rules").read_text().lower()
    checked = 0
    for name in registry.names():
        cls = registry.load(name)
        for pid in getattr(cls, "product_ids", ()):
            for subsystem in ('kernel=="hidraw*", subsystem=="hidraw"', 'subsystem=="usb"'):
                assert f'{subsystem}, attrs{{idvendor}}=="{cls.vendor_id:04x}", attrs{{idproduct}}=="{pid:04x}"' \
                    in rules, (name, hex(pid))
            checked += 1
    assert checked >= 3


# --- through the daemon ---------------------------------------------------------------------


def pdu(driver: str, ports: int, **options: Any) -> dict[str, Any]:
    return {"driver": driver, "ports": ports, "retries": 0, "timeout": 2, "cycle_delay": 0.1, **options}


def ok(ack: dict[str, Any], state: str) -> bool:
    return ack["status"] == "ok" and ack["state"] == state and ack["error"] is None


def test_daemon_switches_reads_and_follows_the_plug(daemon, probe, unique, bus) -> None:
    hub = bus.add(MockYkush("YK77"))
    daemon({"pdus": {unique: pdu("yepkit_ykush", 3, serial="YK77", poll_interval=0.2)}})
    probe.subscribe(f"pdu/{unique}/#")
    probe.wait_for(f"pdu/{unique}/2/state", lambda m: m.payload == b"ON")  # the probe read the hub
    assert ok(probe.request(f"pdu/{unique}/2/set", "OFF"), "OFF") and hub.up[1] is False
    assert ok(probe.request(f"pdu/{unique}/2/get"), "OFF")
    assert ok(probe.request(f"pdu/{unique}/2/set", "CYCLE"), "ON")
    assert report(0x02) in hub.reports and hub.reports[-1] == report(0x12)
    start = len(probe.messages)
    bus.unplug(hub)
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline", start=start)
    ack = probe.request(f"pdu/{unique}/1/set", "OFF")
    assert ack["status"] == "error" and "'YK77'" in ack["error"]
    start = len(probe.messages)
    bus.plug(hub)
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", start=start)
    assert ok(probe.request(f"pdu/{unique}/1/set", "OFF"), "OFF")


def test_daemon_without_hidapi_names_the_extra_and_others_work(daemon, probe, unique, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "hid", None)
    daemon({"pdus": {f"{unique}h": pdu("YKUSH", 3, serial="YK1"), f"{unique}s": pdu("sim", 2)}})
    probe.subscribe(f"pdu/{unique}h/availability")
    probe.wait_for(f"pdu/{unique}h/availability", lambda m: m.payload == b"offline")
    ack = probe.request(f"pdu/{unique}h/1/set", "ON")
    assert ack["status"] == "error" and "pip install 'pdumqtt[usb]'" in ack["error"]
    assert ok(probe.request(f"pdu/{unique}s/1/set", "ON"), "ON")


def pdudaemon_conf(port: int) -> dict[str, Any]:
    return {"daemon": {"hostname": "127.0.0.1", "port": port},
            "pdus": {"ykush-hub": {"driver": "YKUSH", "serial": "YK42"},
                     "ykush-xs": {"driver": "YKUSHXS"}},
            "aliases": {"dut1": {"hostname": "ykush-hub", "port": 2}}}


def test_pdudaemon_conf_converts(tmp_path: Path) -> None:
    import yaml

    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(pdudaemon_conf(16421)))
    done = run_cli("migrate", str(conf))
    assert done.returncode == 0, done.stderr
    pdus = yaml.safe_load(done.stdout)["pdus"]
    assert pdus["ykush-hub"] == {"driver": "YKUSH", "ports": 3, "serial": "YK42"}
    assert pdus["ykush-xs"] == {"driver": "YKUSHXS", "ports": 1}
    assert "# ports: 3, the outlets of a YKUSH" in done.stdout


def test_pdudaemon_conf_runs(daemon, probe, bus) -> None:
    hub = bus.add(MockYkush("YK42"))
    port = free_port()
    daemon(pdudaemon_conf(port))
    wait_until(lambda: _accepts(port), 10, "the PDUDaemon listener")
    assert tcp(("127.0.0.1", port), b"ykush-hub 2 off") == b"ack\n"
    wait_until(lambda: hub.up == [True, False, True], 10, "port 2 down")
    assert tcp(("127.0.0.1", port), b"ykush-hub 4 off") == b"nack\n"  # a YKUSH has 3 ports


def _accepts(port: int) -> bool:
    from support import accepts

    return accepts(port)
