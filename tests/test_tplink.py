"""TP-Link Kasa driver against the Kasa legacy-protocol simulator, direct and through the daemon.

The XOR framing, children by index and by alias, a plug without children, newer (KLAP)
firmware and failures; PDUDaemon's ``tplink``; a pdudaemon.conf converted and run unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
from support import free_port

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.tplink import Kasa, TPLink, decrypt, encrypt
from pdumqtt.pdudaemon_conf import convert
from pdumqtt.simulators.tplink import KasaSimulator


@pytest.fixture
def strip() -> Iterator[KasaSimulator]:
    with KasaSimulator({"children": 3, "aliases": ["Plug 1", "DUT power", "Fan"]}) as sim:
        yield sim


def make(sim: KasaSimulator | str, timeout: float = 3.0, **options: Any) -> Kasa:
    address = sim if isinstance(sim, str) else sim.address
    return Kasa(vol.Schema(Kasa.options)({"host": address, **options}), pdu="kasa", timeout=timeout)


def test_framing_is_the_published_autokey_cipher() -> None:
    # the well-known first bytes of '{"system":{"get_sysinfo":{}}}' on the wire
    frame = encrypt('{"system":{"get_sysinfo":{}}}')
    assert frame[:4] == b"\x00\x00\x00\x1d" and frame[4:8] == bytes([0xd0, 0xf2, 0x81, 0xf8])
    assert decrypt(frame[4:]) == '{"system":{"get_sysinfo":{}}}'


def test_children_by_index(strip: KasaSimulator) -> None:
    d = make(strip)
    d.set(2, True)
    assert strip.relays == [False, True, False] and d.get(2) is True and d.get(1) is False
    assert strip.log[1] == {"system": {"set_relay_state": {"state": 1}}, "context": {"child_ids": [strip.child_id(1)]}}
    d.set(2, False)
    assert strip.relays[1] is False and d.outlet_name(3) == "Fan"
    with pytest.raises(DriverError, match=r"outlet 4 does not exist: .* has 3"):
        d.set(4, True)


def test_children_by_alias(strip: KasaSimulator) -> None:
    d = make(strip, outlets=["DUT power", "Fan"])
    d.set(1, True)
    d.set(2, True)
    assert strip.relays == [False, True, True] and d.get(1) is True
    with pytest.raises(DriverError, match=r"no child named 'Lamp' \(it has 'Plug 1', 'DUT power', 'Fan'\)"):
        make(strip, outlets=["Lamp"]).set(1, True)


def test_plug_without_children() -> None:
    with KasaSimulator({"children": 0}) as plug:
        d = make(plug)
        d.set(1, True)
        assert plug.relays == [True] and d.get(1) is True and "context" not in plug.log[-1]
        with pytest.raises(DriverError, match="a plug with one outlet"):
            d.set(2, True)


def test_newer_firmware_is_named() -> None:
    with KasaSimulator({"firmware": "klap"}) as sim:
        with pytest.raises(DriverError, match=r"closed the connection without answering; .*KLAP.*python-kasa"):
            make(sim).get(1)
    with pytest.raises(DriverError, match=r"refused the connection.*python-kasa"):
        make(f"127.0.0.1:{free_port()}").get(1)


@pytest.mark.parametrize("failure, message", [
    ("silent", r"no answer from 127\.0\.0\.1:\d+ within 1 s"),
    ("garbage", r"answered 0x48545450\.\.\., not a Kasa legacy reply; .*python-kasa"),
    ("drop", "closed the connection without answering"),
])
def test_failures(strip: KasaSimulator, failure: str, message: str) -> None:
    d = make(strip, timeout=1.0)
    d.set(1, True)
    strip.failure = failure
    with pytest.raises(DriverError, match=message):
        d.set(1, False)
    strip.failure = None
    d.set(1, False)
    assert strip.relays[0] is False


def test_device_error_code(strip: KasaSimulator) -> None:
    d = make(strip)
    d.get(1)
    assert d._sysinfo is not None
    d._sysinfo["children"][0]["id"] = "gone"  # a child the device no longer has
    with pytest.raises(DriverError, match=r"refused set_relay_state: error -14 \(entry not exist\)"):
        d.set(1, True)


# --- through the daemon ---------------------------------------------------------------


def test_daemon_on_off_cycle_get_and_names(daemon: Any, probe: Any, unique: str, strip: KasaSimulator) -> None:
    daemon({"pdus": {unique: {"driver": "kasa", "host": strip.address, "ports": {"dut": 2, "fan": 3},
                              "retries": 0, "timeout": 2, "cycle_delay": 0.1}}})
    probe.subscribe("pdu/bridge/info")
    for payload, state in (("ON", "ON"), ("OFF", "OFF"), ("CYCLE", "ON")):
        ack = probe.request(f"pdu/{unique}/dut/set", payload)
        assert (ack["status"], ack["state"]) == ("ok", state), ack
    assert probe.request(f"pdu/{unique}/2/get")["state"] == "ON" and strip.relays[1] is True
    info = probe.wait_for("pdu/bridge/info", lambda m: unique in json.loads(m.payload)["pdus"]
                          and "outlet_names" in json.loads(m.payload)["pdus"][unique])
    assert json.loads(info.payload)["pdus"][unique]["outlet_names"] == {"dut": "DUT power", "fan": "Fan"}


def test_daemon_offline_and_back(daemon: Any, probe: Any, unique: str) -> None:
    sim = KasaSimulator({"children": 2})
    sim.start()
    port = sim.address.rsplit(":", 1)[1]
    try:
        daemon({"pdus": {unique: {"driver": "kasa", "host": sim.address, "ports": 2, "retries": 0,
                                  "timeout": 1, "poll_interval": 0.3}}})
        probe.subscribe(f"pdu/{unique}/availability")
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
        sim.failure = "silent"
        ack = probe.request(f"pdu/{unique}/1/set", "ON")
        assert ack["status"] == "error" and "no answer" in ack["error"], ack
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline")
        sim.stop()
        ack = probe.request(f"pdu/{unique}/1/set", "ON")
        assert ack["status"] == "error" and "refused the connection" in ack["error"]
        mark = len(probe.messages)
        sim = KasaSimulator({"children": 2, "listen": f"127.0.0.1:{port}"})
        sim.start()
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", timeout=15, start=mark)
        assert probe.request(f"pdu/{unique}/1/set", "ON")["status"] == "ok" and sim.relays[0] is True
    finally:
        sim.stop()


def test_pdudaemon_name_takes_the_pdu_name_as_host(strip: KasaSimulator) -> None:
    d = TPLink(vol.Schema(TPLink.options)({}), pdu="kp303.lab.example", timeout=1)
    assert d.config["host"] == "kp303.lab.example"
    d = TPLink(vol.Schema(TPLink.options)({"host": strip.address}), pdu="kp303", timeout=1)
    d.set(3, True)
    assert strip.relays[2] is True


def test_converted_pdudaemon_conf() -> None:
    result = convert({"daemon": {"hostname": "127.0.0.1", "port": 16421},
                      "pdus": {"kp303.lab.example": {"driver": "tplink"}},
                      "aliases": {"dut1": {"hostname": "kp303.lab.example", "port": 3}}})
    assert result.config["pdus"]["kp303.lab.example"]["driver"] == "tplink"
    assert result.config["aliases"] == {"dut1": {"pdu": "kp303.lab.example", "port": "3"}}


def test_daemon_runs_an_unchanged_pdudaemon_conf(daemon: Any, probe: Any, strip: KasaSimulator) -> None:
    # PDUDaemon reaches the plug by the PDU's name on port 9999; `host` (ours) points it at the simulator
    daemon({"daemon": {"hostname": "127.0.0.1", "port": free_port(), "listener": "http"},
            "pdus": {"kasa-strip": {"driver": "tplink", "host": strip.address, "retries": 2}},
            "aliases": {"kasa-dut": {"hostname": "kasa-strip", "port": 2}}})
    ack = probe.request("pdu/alias/kasa-dut/set", "ON")
    assert (ack["status"], ack["state"]) == ("ok", "ON") and strip.relays[1] is True
