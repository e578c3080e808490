"""EnerGenie USB strips and V-USB relays through the pyusb MOCK (tests/usb_mock.py): transfers byte for byte."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
from support import accepts, free_port, run_cli, wait_until
from test_pdudaemon import tcp
from usb_mock import MockBus, MockEnergenie, MockVusbRelay

from pdumqtt import registry
from pdumqtt.drivers import DriverError


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> MockBus:
    return MockBus().install(monkeypatch)


def driver(name: str, **options: Any) -> Any:
    cls = registry.load(name)
    return cls(vol.Schema(cls.options)(options), pdu="x", timeout=1)


# --- EnerGenie ------------------------------------------------------------------------------


def test_energenie_transfers(bus: MockBus) -> None:
    other = bus.add(MockEnergenie(bus, "01:02:03:04:05", 0xFD15))
    strip = bus.add(MockEnergenie(bus, "aa:bb:cc:dd:ee"))
    d = driver("EG-PM2", device="aa:bb:cc:dd:ee")
    d.set(3, True)
    assert strip.transfers == [(0xA1, 0x01, 0x0301, 0, 5), (0x21, 0x09, 0x0309, 0, bytes([9, 3, 0, 0, 0]))]
    assert strip.on == [False, False, True, False] and other.on == [False] * 4
    assert d.get(3) is True and strip.transfers[-1] == (0xA1, 0x01, 0x0309, 0, 5)
    d.set(3, False)
    assert strip.transfers[-1] == (0x21, 0x09, 0x0309, 0, bytes([9, 0, 0, 0, 0])) and d.get(3) is False
    assert other.transfers == [(0xA1, 0x01, 0x0301, 0, 5)] * 4  # only ever asked for its id
    with pytest.raises(DriverError, match="outlet 5 does not exist"):
        d.set(5, True)
    assert registry.load("EG-PMS").fixed_ports == 4 and registry.load("EG-PMS").native_driver == "energenie_usb"


def test_energenie_absent_unplugged_and_denied(bus: MockBus) -> None:
    strip = bus.add(MockEnergenie(bus, "aa:bb:cc:dd:ee"))
    with pytest.raises(DriverError) as e:
        driver("energenie_usb", serial="AA:BB:CC:DD:00").get(1)
    assert "'aa:bb:cc:dd:00'" in str(e.value) and "found serials aa:bb:cc:dd:ee" in str(e.value)
    bus.unplug(strip)
    with pytest.raises(DriverError, match="none is plugged in at all"):
        driver("EG-PMS", device="aa:bb:cc:dd:ee").set(1, True)
    bus.plug(strip)
    driver("EG-PMS", device="aa:bb:cc:dd:ee").set(1, True)
    strip.denied = True
    with pytest.raises(DriverError, match=r"permission denied on the EnerGenie USB strip: install examples/udev/"):
        driver("energenie_usb").get(1)
    with pytest.raises(vol.Invalid, match="sispmctl"):
        driver("EG-PMS", device="aa:bb:cc:xx:yy")


def test_pyusb_missing_or_without_libusb(bus: MockBus, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_backend(**kwargs: Any) -> Any:
        raise bus.usb_core.NoBackendError("No backend available")

    monkeypatch.setattr(bus.usb_core, "find", no_backend)
    with pytest.raises(DriverError, match=r"apt-get install libusb-1\.0-0"):
        driver("energenie_usb").get(1)
    monkeypatch.setitem(sys.modules, "usb.core", None)
    with pytest.raises(DriverError, match=r"needs pyusb, which is not installed: pip install 'pdumqtt\[usb\]'"):
        driver("vusbhid").get(1)


# --- V-USB relays -----------------------------------------------------------------------------


def test_vusb_transfers_and_invert(bus: MockBus) -> None:
    bus.add(MockVusbRelay(bus, "XXXXX", product="SomeOtherGadget"))  # V-USB's shared ids: not a relay
    board = bus.add(MockVusbRelay(bus, "QWERT", relays=4))
    d = driver("vusbhid", serial="QWERT")
    d.set(4, True)
    assert board.transfers == [(0xA0, 0x01, 0x0300, 0, 8), (0x20, 0x09, 0x0300, 0, bytes([0xFF, 4]))]
    assert board.closed == [False, False, False, True] and d.get(4) is True and d.get(3) is False
    inverted = driver("vusb_relay", invert=True)  # the one USBRelay board here
    inverted.set(4, True)
    assert board.transfers[-1] == (0x20, 0x09, 0x0300, 0, bytes([0xFD, 4])) and inverted.get(4) is True
    with pytest.raises(DriverError, match="relay 5 does not exist: the board has relays 1 to 4"):
        d.set(5, True)


def test_vusb_serials_and_unplug(bus: MockBus) -> None:
    a, b = bus.add(MockVusbRelay(bus, "AAAAA")), bus.add(MockVusbRelay(bus, "BBBBB"))
    with pytest.raises(DriverError, match=r"2 USBRelay board .* are plugged in \(serials AAAAA, BBBBB\)"):
        driver("vusbhid").set(1, True)
    bus.unplug(b)
    with pytest.raises(DriverError, match=r"serial 'BBBBB'.*found serials AAAAA"):
        driver("vusbhid", serial="BBBBB").set(1, True)
    bus.plug(b)
    driver("vusbhid", serial="BBBBB").set(1, True)
    assert b.closed[0] and not a.closed[0]
    b.denied = True
    with pytest.raises(DriverError, match="permission denied"):
        driver("vusbhid", serial="BBBBB").set(1, True)


# --- through the daemon -----------------------------------------------------------------------


def test_daemon_energenie_and_vusb(daemon, probe, unique, bus) -> None:
    strip = bus.add(MockEnergenie(bus, "aa:bb:cc:dd:ee"))
    board = bus.add(MockVusbRelay(bus, "R2D2X", relays=2))
    daemon({"pdus": {
        f"{unique}e": {"driver": "energenie_usb", "serial": "aa:bb:cc:dd:ee", "ports": 4, "retries": 0,
                       "cycle_delay": 0.1, "poll_interval": 0.2},
        f"{unique}v": {"driver": "vusbhid", "serial": "R2D2X", "ports": 2, "retries": 0, "cycle_delay": 0.1},
    }})
    probe.subscribe(f"pdu/{unique}e/availability")
    for name, sim_state in ((f"{unique}e", lambda: strip.on[1]), (f"{unique}v", lambda: board.closed[1])):
        assert probe.request(f"pdu/{name}/2/set", "ON")["state"] == "ON" and sim_state()
        assert probe.request(f"pdu/{name}/2/get")["state"] == "ON"
        ack = probe.request(f"pdu/{name}/2/set", "CYCLE")
        assert ack["status"] == "ok" and ack["state"] == "ON" and sim_state()
        assert probe.request(f"pdu/{name}/2/set", "OFF")["state"] == "OFF" and not sim_state()
    start = len(probe.messages)
    bus.unplug(strip)
    probe.wait_for(f"pdu/{unique}e/availability", lambda m: m.payload == b"offline", start=start)
    start = len(probe.messages)
    bus.plug(strip)
    probe.wait_for(f"pdu/{unique}e/availability", lambda m: m.payload == b"online", start=start)


def pdudaemon_conf(port: int) -> dict[str, Any]:
    return {"daemon": {"hostname": "127.0.0.1", "port": port},
            "pdus": {"energenie": {"driver": "EG-PMS", "device": "aa:bb:cc:dd:ee"},
                     "eg-pm2": {"driver": "EG-PM2", "device": "01:02:03:04:05"},
                     "relays": {"driver": "vusbhid", "serial": "R2D2X", "invert": True}}}


def test_pdudaemon_conf_converts(tmp_path: Path) -> None:
    import yaml

    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(pdudaemon_conf(16421)))
    done = run_cli("migrate", str(conf))
    assert done.returncode == 0, done.stderr
    pdus = yaml.safe_load(done.stdout)["pdus"]
    assert pdus["energenie"] == {"driver": "EG-PMS", "ports": 4, "device": "aa:bb:cc:dd:ee"}
    assert pdus["eg-pm2"]["driver"] == "EG-PM2"
    assert pdus["relays"] == {"driver": "vusbhid", "ports": 8, "serial": "R2D2X", "invert": True}


def test_pdudaemon_conf_runs(daemon, bus) -> None:
    strip = bus.add(MockEnergenie(bus, "aa:bb:cc:dd:ee"))
    board = bus.add(MockVusbRelay(bus, "R2D2X", relays=2))
    port = free_port()
    daemon(pdudaemon_conf(port))
    wait_until(lambda: accepts(port), 10, "the PDUDaemon listener")
    assert tcp(("127.0.0.1", port), b"energenie 4 on") == b"ack\n" and strip.on[3]
    assert tcp(("127.0.0.1", port), b"relays 1 off") == b"ack\n"  # inverted: the relay closes
    assert board.closed[0] and board.transfers[-1][-1] == bytes([0xFF, 1])
