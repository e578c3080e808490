"""Power and energy readings through the daemon: topics, acks, deadband, a slow or failing meter,
Home Assistant sensors, ``bridge/info`` and ``pdumqtt status``."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

import pytest
from support import Probe, run_cli, wait_until

from pdumqtt.config import ConfigError, load_config_data
from pdumqtt.drivers import sim
from pdumqtt.readings import Deadband, payload

NODE = "pdumqtt_pdu"


def metered(ports: Any = 2, **options: Any) -> dict[str, Any]:
    return {"driver": "sim", "ports": ports, "meter_interval": 0.05, "retries": 0, **options}


def number(message: Any) -> float:
    return float(message.payload)


def test_readings_reach_mqtt_retained_and_the_ack_carries_the_switchs(daemon, probe, make_probe, unique):
    daemon({"pdus": {unique: metered(load=40, loads={2: 12.5})}})
    probe.subscribe(f"pdu/{unique}/#")
    # off at start: every outlet and the total read 0 W, at the configured voltage
    assert probe.wait_for(f"pdu/{unique}/1/power").payload == b"0"
    assert probe.wait_for(f"pdu/{unique}/voltage").payload == b"230"
    ack = probe.request(f"pdu/{unique}/1/set", "ON")
    assert ack["status"] == "ok" and ack["readings"]["power"] == 40 and ack["readings"]["voltage"] == 230
    on = probe.wait_for(f"pdu/{unique}/1/power", lambda m: m.payload == b"40")
    assert on.retain is False  # live delivery; the retained copy is checked below
    assert probe.wait_for(f"pdu/{unique}/1/current", lambda m: number(m) == pytest.approx(40 / 230, abs=1e-3))
    assert probe.wait_for(f"pdu/{unique}/power", lambda m: m.payload == b"40")
    assert probe.request(f"pdu/{unique}/2/set", "ON")["readings"]["power"] == 12.5
    assert probe.wait_for(f"pdu/{unique}/power", lambda m: m.payload == b"52.5")
    sim.device(unique).loads[1] = 36_000  # 10 Wh a second: energy shows within the three decimals
    energy = probe.wait_for(f"pdu/{unique}/1/energy", lambda m: number(m) > 0)
    assert number(energy) < 1  # kWh
    late = make_probe()
    late.subscribe(f"pdu/{unique}/+/power")
    late.subscribe(f"pdu/{unique}/power")
    assert late.wait_for(f"pdu/{unique}/2/power").retain
    assert late.wait_for(f"pdu/{unique}/power").payload == b"36012.5"


def test_a_pdu_without_meter_interval_publishes_no_readings(daemon, probe, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": 1}}})
    probe.subscribe(f"pdu/{unique}/#")
    ack = probe.request(f"pdu/{unique}/1/set", "ON")
    assert ack["status"] == "ok" and "readings" not in ack
    assert sim.device(unique).meter_reads == 0
    assert not [m for m in probe.all(f"pdu/{unique}/#") if m.topic.endswith(("/power", "/energy"))]


def test_a_slow_meter_read_delays_a_command_by_at_most_the_read_under_way(daemon, probe, unique):
    """A command sent while a 0.5 s meter read runs is acked once that read ends plus the
    switch, not after the round's other reads; commands queued meanwhile all go first."""
    daemon({"pdus": {unique: metered(4, meter_latency=0.5)}})
    dev = sim.device(unique)
    probe.subscribe(f"pdu/{unique}/+/ack")
    worst = 0.0
    for attempt in range(3):
        reads = dev.meter_reads
        wait_until(lambda reads=reads: dev.meter_reads > reads, 5, "a meter read to begin")
        sent = time.monotonic()
        ack = probe.request(f"pdu/{unique}/1/set", "ON" if attempt % 2 == 0 else "OFF")
        worst = max(worst, time.monotonic() - sent)
        assert ack["status"] == "ok", ack
        # commands queued behind a read that has just begun all run before the next read
        reads = dev.meter_reads
        wait_until(lambda reads=reads: dev.meter_reads > reads, 5, "the next meter read to begin")
        before = dev.meter_reads
        transactions = [f"{unique}-{attempt}-{port}" for port in (2, 3)]
        for port, tx in zip((2, 3), transactions, strict=True):
            probe.publish(f"pdu/{unique}/{port}/set", json.dumps({"action": "toggle", "transaction": tx}))
        for tx in transactions:
            probe.wait_for(f"pdu/{unique}/+/ack", lambda m, tx=tx: json.loads(m.payload)["transaction"] == tx)
        assert dev.meter_reads <= before + 1, "a meter read started before the queued commands ran"
    print(f"\ncommand sent during a 0.5 s meter read: acked within {worst * 1000:.0f} ms (worst of 3)")
    # the read under way (at most 0.5 s) plus the switch and MQTT round trips; a round is 2.5 s
    assert worst < 0.5 + 0.3


def test_a_failing_meter_keeps_switching_and_logs_once_per_round(daemon, probe, unique, caplog):
    caplog.set_level(logging.WARNING, logger="pdumqtt.runner")
    daemon({"pdus": {unique: metered(3, meter_fail=True)}})
    dev = sim.device(unique)
    probe.subscribe(f"pdu/{unique}/availability")
    wait_until(lambda: dev.meter_reads >= 8, 10, "two rounds of failing meter reads")
    for action in ("ON", "OFF", "ON"):
        ack = probe.request(f"pdu/{unique}/2/set", action)
        assert ack["status"] == "ok", ack
    assert [m.payload for m in probe.all(f"pdu/{unique}/availability")] == [b"online"]
    lines = [r.getMessage() for r in caplog.records if unique in r.getMessage() and "meter" in r.getMessage()]
    outlet_lines = [line for line in lines if "outlet meter reads failed" in line]
    pdu_lines = [line for line in lines if "PDU meter read failed" in line]
    assert outlet_lines and pdu_lines
    assert "3 outlet meter reads failed" in outlet_lines[0] and "and 2 more" in outlet_lines[0]
    # once per kind per round: never more lines of a kind than rounds begun
    assert len(outlet_lines) <= dev.meter_reads // 4 + 1 and len(pdu_lines) <= dev.meter_reads // 4 + 1
    probe.subscribe(f"pdu/{unique}/2/power")
    dev.meter_fail = False  # the meter comes back: readings follow
    assert probe.wait_for(f"pdu/{unique}/2/power", lambda m: m.payload == b"25").payload == b"25"


def test_deadband_suppresses_small_changes(daemon, probe, unique):
    daemon({"pdus": {unique: metered(1, load=100, initial="on", meter_deadband={"power": 5, "percent": 10})}})
    dev = sim.device(unique)
    topic = f"pdu/{unique}/1/power"
    probe.subscribe(topic)
    assert probe.wait_for(topic).payload == b"100"
    dev.loads[1] = 108  # 8 W: beyond 5 W but within 10 %
    reads = dev.meter_reads
    wait_until(lambda: dev.meter_reads >= reads + 6, 10, "three more rounds")
    assert [m.payload for m in probe.all(topic)] == [b"100"]
    dev.loads[1] = 125
    assert probe.wait_for(topic, lambda m: m.payload != b"100").payload == b"125"
    assert probe.request(f"pdu/{unique}/1/set", "OFF")["status"] == "ok"  # to zero always goes out
    assert probe.wait_for(topic, lambda m: m.payload == b"0")


def test_deadband_rules() -> None:
    config = load_config_data({"pdus": {
        "a": metered(1, meter_deadband={"power": 2}), "b": metered(1, meter_deadband={"percent": 5}),
        "c": metered(1)}})
    band = Deadband(config)
    assert band.admit("a", "1", {"power": 10, "voltage": 230}) == {"power": 10, "voltage": 230}
    assert band.admit("a", "1", {"power": 11.5, "voltage": 230}) == {}
    assert band.admit("a", "1", {"power": 12.5, "voltage": 231}) == {"power": 12.5, "voltage": 231}
    assert band.admit("a", None, {"power": 12.5}) == {"power": 12.5}  # the total is its own series
    assert band.admit("b", "1", {"energy": 100}) == {"energy": 100}
    assert band.admit("b", "1", {"energy": 104}) == {}
    assert band.admit("b", "1", {"energy": 106}) == {"energy": 106}
    assert band.admit("b", "1", {"energy": 0}) == {"energy": 0}
    assert band.admit("c", "1", {"current": 0.1}) == {"current": 0.1}
    assert band.admit("c", "1", {"current": 0.1}) == {}
    assert band.admit("c", "1", {"current": 0.101}) == {"current": 0.101}
    assert [payload(v) for v in (0.0, 40.0, 52.5, 0.1739130, 1e-7)] == [b"0", b"40", b"52.5", b"0.174", b"0"]


def test_config_refuses_meter_interval_on_a_driver_that_cannot_meter() -> None:
    with pytest.raises(ConfigError, match=r"pdus\.r\.meter_interval: driver 'localcmdline' cannot read power"):
        load_config_data({"pdus": {"r": {"driver": "localcmdline", "ports": 1, "meter_interval": 10,
                                         "cmd_on": "true", "cmd_off": "true"}}})
    with pytest.raises(ConfigError, match=r"pdus\.s\.meter_deadband\.watts"):
        load_config_data({"pdus": {"s": metered(1, meter_deadband={"watts": 1})}})
    # a default for every PDU is fine on those that cannot meter
    config = load_config_data({"defaults": {"meter_interval": 30}, "pdus": {
        "r": {"driver": "localcmdline", "ports": 1, "cmd_on": "true", "cmd_off": "true"}, "s": {"driver": "sim",
                                                                                              "ports": 1}}})
    assert config.pdus["s"].meter_interval == 30


def test_bridge_info_says_which_pdus_meter(daemon, probe, unique):
    daemon({"pdus": {unique: metered(1), f"{unique}-plain": {"driver": "sim", "ports": 1}}})
    probe.subscribe("pdu/bridge/info")
    info = json.loads(probe.wait_for("pdu/bridge/info", lambda m: unique.encode() in m.payload).payload)
    kinds = ["power", "current", "voltage", "energy"]
    assert info["pdus"][unique]["meter"] == {"interval": 0.05, "outlet": kinds, "pdu": kinds}
    assert "meter" not in info["pdus"][f"{unique}-plain"]


def test_home_assistant_sensors_per_reading(daemon, broker, unique):
    prefix = f"{unique}-ha"
    pdu = f"{unique}-pdu"
    d = daemon({"homeassistant": {"discovery": True, "prefix": prefix},
                "pdus": {pdu: metered(2), f"{unique}-plain": {"driver": "sim", "ports": 1}}})
    assert d.discovery.synced.wait(10)
    configs = _retained(broker, f"{prefix}/sensor/#")
    kinds = {"power": ("power", "W", "measurement"), "current": ("current", "A", "measurement"),
             "voltage": ("voltage", "V", "measurement"), "energy": ("energy", "kWh", "total_increasing")}
    expected = {f"{prefix}/sensor/{NODE}/{pdu}_{port}_{kind}/config" for port in (1, 2) for kind in kinds}
    expected |= {f"{prefix}/sensor/{NODE}/{pdu}_{kind}/config" for kind in kinds}
    assert set(configs) == expected  # none for the PDU that does not meter
    for kind, (device_class, unit, state_class) in kinds.items():
        outlet = configs[f"{prefix}/sensor/{NODE}/{pdu}_2_{kind}/config"]
        total = configs[f"{prefix}/sensor/{NODE}/{pdu}_{kind}/config"]
        for sensor in (outlet, total):
            assert (sensor["device_class"], sensor["unit_of_measurement"], sensor["state_class"]) == \
                (device_class, unit, state_class)
            assert sensor["device"]["identifiers"] == [f"{NODE}_{pdu}"]
            assert sensor["availability"] == [{"topic": "pdu/bridge/state"}, {"topic": f"pdu/{pdu}/availability"}]
            assert sensor["availability_mode"] == "all"
        assert outlet["state_topic"] == f"pdu/{pdu}/2/{kind}" and outlet["name"] == f"Outlet 2 {kind}"
        assert total["state_topic"] == f"pdu/{pdu}/{kind}" and total["name"] == f"Total {kind}"
        assert outlet["unique_id"] == f"{NODE}_{pdu}_2_{kind}"
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)


def test_home_assistant_device_based_sensors(daemon, broker, unique):
    prefix = f"{unique}-ha"
    pdu = f"{unique}-pdu"
    d = daemon({"homeassistant": {"discovery": True, "prefix": prefix, "device_based": True},
                "pdus": {pdu: metered({"total": 1, "b": 2})}})
    assert d.discovery.synced.wait(10)
    device = _retained(broker, f"{prefix}/device/#")[f"{prefix}/device/{NODE}/{pdu}/config"]
    components = device["components"]
    # a port named "total" keeps its own ids; the PDU's totals are bare kinds
    assert components["total_power"]["state_topic"] == f"pdu/{pdu}/total/power"
    assert components["power"]["state_topic"] == f"pdu/{pdu}/power"
    assert components["energy"]["state_class"] == "total_increasing"
    assert components["b_switch"]["platform"] == "switch"


def _retained(broker: Any, pattern: str) -> dict[str, Any]:
    reader = Probe(broker)
    try:
        reader.subscribe(pattern)
        marker = f"test/{uuid.uuid4().hex}/marker"
        reader.subscribe(marker)
        reader.publish(marker, b"x")
        reader.wait_for(marker)
        return {m.topic: json.loads(m.payload) for m in reader.all(pattern) if m.retain and m.payload}
    finally:
        reader.close()


def test_status_shows_readings(daemon, probe, broker, unique):
    base, rack = f"{unique}-base", f"{unique}-rack"  # sim devices are per PDU name: one of its own
    daemon({"mqtt": {"base_topic": base}, "pdus": {rack: metered(2, load=40)}})
    probe.subscribe(f"{base}/{rack}/#")
    assert probe.request(f"{base}/{rack}/1/set", "ON")["status"] == "ok"
    probe.wait_for(f"{base}/{rack}/power", lambda m: m.payload == b"40")
    probe.wait_for(f"{base}/{rack}/energy")
    env = {"PDUMQTT_BROKER": broker.address}
    done = run_cli("status", "--base-topic", base, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "READINGS" in lines[1]
    assert any(line.split()[:3] == [rack, "1", "ON"] and "40 W" in line and "230 V" in line for line in lines)
    assert any(line.split()[:2] == [rack, "(total)"] and "40 W" in line for line in lines)
    as_json = json.loads(run_cli("status", "--json", "--base-topic", base, env=env).stdout)
    assert as_json["outlets"][0]["readings"]["power"] == 40
    assert as_json["totals"][rack]["power"] == 40


def test_readings_pass_the_monitor_to_mqtt_and_the_status_feed(daemon, probe, unique):
    """With the HTTP monitor on, the runner publishes through the Observer: readings still reach
    MQTT, and the status page's feed holds them."""
    from support import free_port

    d = daemon({"http": {"listen": f"127.0.0.1:{free_port()}", "status_page": True},
                "pdus": {unique: metered(1, load=30, initial="on")}})
    probe.subscribe(f"pdu/{unique}/#")
    assert probe.wait_for(f"pdu/{unique}/1/power", lambda m: m.payload == b"30")
    assert probe.wait_for(f"pdu/{unique}/power", lambda m: m.payload == b"30")
    feed = d.monitor.feed
    wait_until(lambda: feed.snapshot()[unique].get("readings", {}).get("power") == 30, 5, "the feed's total")
    assert feed.snapshot()[unique]["ports"]["1"]["readings"]["voltage"] == 230
