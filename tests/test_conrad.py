"""Conrad 197720 relay cards against the `conrad197720` pty simulator: frames, chained cards, daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
from support import accepts, free_port, run_cli, wait_until
from test_pdudaemon import http, requests_get, tcp

from pdumqtt import registry
from pdumqtt.config import ConfigError, load_config_data
from pdumqtt.drivers import DriverError
from pdumqtt.simulators.conrad197720 import ConradSimulator


def frame(command: int, card: int, data: int) -> bytes:
    return bytes([command, card, data, command ^ card ^ data])


def driver(name: str, **options: Any) -> Any:
    cls = registry.load(name)
    return cls(vol.Schema(cls.options)(options), pdu="cards", timeout=1)


def test_setup_options_and_switch_frames() -> None:
    with ConradSimulator({"cards": 2, "option": 3}) as sim:
        cards = driver("conrad_relay", device=sim.address)
        cards.set(10, True)  # card 2, relay 2
        assert sim.frames == [frame(1, 1, 0), frame(4, 1, 0), frame(5, 1, 1), frame(4, 2, 0), frame(5, 2, 1),
                              frame(6, 2, 0b10)]
        assert sim.outlet(2, 2) and sim.card_options == [1, 1]
        assert cards.get(10) is True and cards.get(9) is False and sim.frames[-1] == frame(2, 2, 0)
        cards.set(10, False)
        assert sim.frames[-1] == frame(7, 2, 0b10) and not sim.outlet(2, 2)
        with pytest.raises(DriverError, match=r"port 17 does not exist: 2 cards on .* have ports 1 to 16"):
            cards.set(17, True)
        assert sim.bad_frames == 0 and sim.frames.count(frame(1, 1, 0)) == 1  # SETUP once per connection


def test_pdudaemon_name_counts_from_zero() -> None:
    assert registry.load("conrad197720").first_port == 0
    assert registry.load("conrad197720").native_driver == "conrad_relay"
    with ConradSimulator({"cards": 3}) as sim:
        cards = driver("conrad197720", device=sim.address)
        cards.set(0, True)
        cards.set(16, True)  # PDUDaemon's port 16: card 3, relay 1
        assert sim.outlet(1, 1) and sim.outlet(3, 1) and sim.frames[-1] == frame(6, 3, 1)
        with pytest.raises(DriverError, match="have ports 0 to 23"):
            cards.get(24)
    assert driver("conrad197720").config["device"] == "/dev/ttyUSB0"


def test_port_zero_only_where_the_driver_counts_from_zero() -> None:
    config = load_config_data({"pdus": {"c": {"driver": "conrad197720", "device": "/dev/null", "ports": 16},
                                        "d": {"driver": "conrad197720", "ports": {"dut": 0}}}})
    assert list(config.pdus["c"].ports.values()) == list(range(16)) and config.pdus["c"].resolve_port("0") == ("0", 0)
    assert config.pdus["d"].resolve_port("dut") == ("dut", 0)
    with pytest.raises(ConfigError, match="expected a number from 1"):
        load_config_data({"pdus": {"n": {"driver": "conrad_relay", "device": "/dev/null", "ports": {"dut": 0}}}})


def test_unplug_plug_and_bad_answers() -> None:
    with ConradSimulator({"cards": 1}) as sim:
        cards = driver("conrad_relay", device=sim.address)
        cards.set(1, True)
        sim.unplug()
        with pytest.raises(DriverError, match=sim.address):
            cards.set(1, False)
        sim.plug()
        cards.set(1, False)  # a fresh connection: SETUP again
        assert sim.frames.count(frame(1, 1, 0)) == 1 and not sim.outlet(1, 1)
        sim.failure = "garbage"
        with pytest.raises(DriverError, match="bad checksum"):
            cards.get(1)
        sim.failure = "silent"
        with pytest.raises(DriverError, match=r"no complete answer .* within 1 s"):
            cards.get(1)


# --- through the daemon -----------------------------------------------------------------------


def test_daemon_on_off_cycle_get_and_unplug(daemon, probe, unique) -> None:
    with ConradSimulator({"cards": 2}) as sim:
        daemon({"pdus": {unique: {"driver": "conrad_relay", "device": sim.address, "ports": 16, "retries": 0,
                                  "timeout": 2, "cycle_delay": 0.1, "poll_interval": 0.3}}})
        base = f"pdu/{unique}/12"
        probe.subscribe(f"pdu/{unique}/availability")
        assert probe.request(f"{base}/set", "ON")["state"] == "ON" and sim.outlet(2, 4)
        assert probe.request(f"{base}/get")["state"] == "ON"
        ack = probe.request(f"{base}/set", "CYCLE")
        assert ack["status"] == "ok" and ack["state"] == "ON"
        assert probe.request(f"{base}/set", "OFF")["state"] == "OFF" and not sim.outlet(2, 4)
        start = len(probe.messages)
        sim.unplug()
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline", start=start)
        start = len(probe.messages)
        sim.plug()
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", start=start)


def pdudaemon_conf(port: int, device: str) -> dict[str, Any]:
    return {"daemon": {"hostname": "127.0.0.1", "port": port},
            "pdus": {"conrad": {"driver": "conrad197720", "device": device, "retries": 1}},
            "aliases": {"dut0": {"hostname": "conrad", "port": 0}}}


def test_pdudaemon_conf_converts(tmp_path: Path) -> None:
    import yaml

    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(pdudaemon_conf(16421, "/dev/ttyUSB1")))
    done = run_cli("migrate", str(conf))
    assert done.returncode == 0, done.stderr
    converted = yaml.safe_load(done.stdout)
    assert converted["pdus"]["conrad"] == {"driver": "conrad197720", "ports": 8, "retries": 0,
                                           "device": "/dev/ttyUSB1"}
    assert converted["aliases"] == {"dut0": {"pdu": "conrad", "port": "0"}}


def test_pdudaemon_conf_runs(daemon) -> None:
    with ConradSimulator({"cards": 1}) as sim:
        port = free_port()
        daemon(pdudaemon_conf(port, sim.address))
        wait_until(lambda: accepts(port), 10, "the PDUDaemon listener")
        assert tcp(("127.0.0.1", port), b"conrad 0 on") == b"ack\n" and sim.outlet(1, 1)
        assert tcp(("127.0.0.1", port), b"conrad 7 on") == b"ack\n" and sim.outlet(1, 8)
        assert tcp(("127.0.0.1", port), b"conrad 8 on") == b"nack\n"  # one card: ports 0 to 7
        status, _ = http(("127.0.0.1", port), requests_get(("127.0.0.1", port), "/power/control/off?alias=dut0"))
        assert status == 200 and not sim.outlet(1, 1)  # PDUDaemon's alias to port 0


def test_simulator_is_registered_for_pdumqtt_sim() -> None:
    assert registry.load("conrad197720", registry.SIMULATOR_GROUP) is ConradSimulator
