"""The daemon end to end over a real mosquitto: commands, acks, state, availability."""

from __future__ import annotations

import json
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import wait_until

from pdumqtt.drivers import sim

ACK_FIELDS = {"transaction", "pdu", "port", "action", "status", "state", "error", "queued_ms", "took_ms"}


def sim_pdu(ports: object = 4, **options: object) -> dict[str, object]:
    return {"driver": "sim", "ports": ports, "retries": 0, "timeout": 2, **options}


def test_on_off_toggle_get_through_a_raw_client(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu()}})
    probe.subscribe(f"pdu/{unique}/#")
    for payload, expected in [("ON", "ON"), ("off", "OFF"), ("Toggle", "ON"), ('{"action": "off"}', "OFF"),
                              ('{"state": "ON"}', "ON")]:
        ack = probe.request(f"pdu/{unique}/2/set", payload)
        assert (ack["status"], ack["state"], ack["error"]) == ("ok", expected, None), payload
    assert sim.device(unique).outlets[2] is True
    ack = probe.request(f"pdu/{unique}/2/get")
    assert (ack["action"], ack["status"], ack["state"]) == ("get", "ok", "ON")
    # the last state is retained: a newcomer sees it at once
    assert probe.wait_for(f"pdu/{unique}/2/state", lambda m: m.payload == b"ON").retain is False


def test_state_and_availability_are_retained(daemon, probe, unique, make_probe):
    daemon({"pdus": {unique: sim_pdu()}})
    assert probe.request(f"pdu/{unique}/3/set", "ON")["status"] == "ok"
    late = make_probe()
    late.subscribe(f"pdu/{unique}/#")
    late.subscribe("pdu/bridge/state")
    assert late.wait_for(f"pdu/{unique}/3/state").payload == b"ON"
    assert late.wait_for(f"pdu/{unique}/3/state").retain
    assert late.wait_for(f"pdu/{unique}/availability").payload == b"online"
    assert late.wait_for(f"pdu/{unique}/1/state").payload == b"OFF"  # read at start by the probe
    assert late.wait_for("pdu/bridge/state").payload == b"online"


def test_bridge_info_lists_pdus_ports_and_aliases(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu({"dut1": 1, "dut2": 2})}, "aliases": {f"{unique}-a": {"pdu": unique, "port": 2}}})
    probe.subscribe("pdu/bridge/info")
    info = json.loads(probe.wait_for("pdu/bridge/info", lambda m: unique.encode() in m.payload).payload)
    assert info["pdus"][unique] == {"driver": "sim", "model": "simulated PDU", "ports": {"dut1": 1, "dut2": 2}}
    assert info["aliases"][f"{unique}-a"] == {"pdu": unique, "port": "dut2"}
    assert info["version"]


def test_ack_fields_on_the_ack_topic(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu()}})
    probe.subscribe(f"pdu/{unique}/+/ack")
    probe.publish(f"pdu/{unique}/1/set", json.dumps({"action": "on", "transaction": "abc-1"}))
    ack = json.loads(probe.wait_for(f"pdu/{unique}/1/ack").payload)
    assert set(ack) == ACK_FIELDS
    assert ack["transaction"] == "abc-1" and ack["pdu"] == unique and ack["port"] == "1"
    assert ack["action"] == "on" and ack["status"] == "ok" and ack["state"] == "ON" and ack["error"] is None
    assert ack["queued_ms"] >= 0 and ack["took_ms"] >= 0
    # no transaction given: one is generated, different each time
    probe.publish(f"pdu/{unique}/1/set", "OFF")
    probe.publish(f"pdu/{unique}/1/set", "OFF")
    probe.wait_count(f"pdu/{unique}/1/ack", 3)
    generated = [json.loads(m.payload)["transaction"] for m in probe.all(f"pdu/{unique}/1/ack")[1:]]
    assert all(generated) and generated[0] != generated[1]


def test_v5_response_topic_gets_the_ack_with_its_correlation(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu()}})
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = probe.reply_topic
    props.CorrelationData = b"\x00\x01corr"
    probe.publish(f"pdu/{unique}/1/set", "ON", properties=props)
    reply = probe.wait_for(probe.reply_topic,
                           lambda m: getattr(m.properties, "CorrelationData", None) == b"\x00\x01corr")
    assert json.loads(reply.payload)["status"] == "ok"


def test_aliases_and_named_ports(daemon, probe, unique):
    alias = f"{unique}-board"
    daemon({"pdus": {unique: sim_pdu(["dut1", "dut2", "fan"])}, "aliases": {alias: {"pdu": unique, "port": "dut2"}}})
    probe.subscribe(f"pdu/{unique}/+/state")
    probe.subscribe(f"pdu/alias/{alias}/#")
    ack = probe.request(f"pdu/alias/{alias}/set", "ON")
    assert (ack["status"], ack["pdu"], ack["port"], ack["alias"]) == ("ok", unique, "dut2", alias)
    assert sim.device(unique).outlets[2] is True
    assert probe.wait_for(f"pdu/alias/{alias}/state", lambda m: m.payload == b"ON")
    assert probe.wait_for(f"pdu/alias/{alias}/ack")
    # a named port answers to its name and to its number; state is published under the name
    assert probe.request(f"pdu/{unique}/fan/set", "ON")["port"] == "fan"
    assert probe.request(f"pdu/{unique}/3/set", "OFF")["port"] == "fan"
    assert probe.wait_for(f"pdu/{unique}/fan/state", lambda m: m.payload == b"OFF")
    assert probe.request(f"pdu/alias/{alias}/get")["state"] == "ON"
    assert probe.request(f"pdu/alias/nope-{unique}/set", "ON")["error"].startswith("unknown alias")


def test_repeated_transaction_runs_once_and_gets_the_first_ack_again(daemon, probe, unique, tmp_path):
    journal = tmp_path / "journal"
    daemon({"pdus": {unique: sim_pdu(journal=str(journal))}})
    payload = json.dumps({"action": "toggle", "transaction": f"{unique}-tx"})
    first = probe.request(f"pdu/{unique}/1/set", payload)
    second = probe.request(f"pdu/{unique}/1/set", payload)
    assert first == second and first["state"] == "ON"
    toggles = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [c["action"] for c in toggles if c["port"] == 1 and c["action"] != "get"] == ["on"]


def test_repeat_while_the_first_still_runs_is_answered_when_it_finishes(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu(latency=0.3)}})
    payload = json.dumps({"action": "on", "transaction": f"{unique}-slow"})
    probe.subscribe(f"pdu/{unique}/1/ack")
    probe.publish(f"pdu/{unique}/1/set", payload)
    probe.publish(f"pdu/{unique}/1/set", payload)
    probe.wait_count(f"pdu/{unique}/1/ack", 2)
    acks = [m.payload for m in probe.all(f"pdu/{unique}/1/ack")]
    assert acks[0] == acks[1]
    assert sim.device(unique).switches == 1


def test_during_a_cycle_other_ports_go_on_and_an_on_ends_it(daemon, probe, unique, tmp_path):
    journal = tmp_path / "journal"
    daemon({"pdus": {unique: sim_pdu(journal=str(journal))}})
    probe.subscribe(f"pdu/{unique}/+/ack")
    probe.publish(f"pdu/{unique}/1/set", json.dumps({"action": "cycle", "delay": 60}))
    assert probe.request(f"pdu/{unique}/2/set", "ON")["status"] == "ok"  # does not wait for the cycle
    wait_until(lambda: sim.device(unique).outlets.get(1) is False, 10, "the cycle's off phase")
    for refused in ("TOGGLE", "CYCLE"):  # ambiguous during a cycle: refused at once, saying until when
        ack = probe.request(f"pdu/{unique}/1/set", refused, timeout=5)
        assert ack["status"] == "error" and "port 1 is in a cycle until" in ack["error"], ack
        assert "send ON or OFF to end it" in ack["error"] and ack["state"] == "OFF"
    assert probe.request(f"pdu/{unique}/1/get", timeout=5)["state"] == "OFF"  # a read goes on
    ack = probe.request(f"pdu/{unique}/1/set", "ON", timeout=5)
    assert (ack["status"], ack["state"]) == ("ok", "ON")
    cycle = json.loads(probe.wait_for(f"pdu/{unique}/1/ack", lambda m: b'ended early' in m.payload).payload)
    assert cycle["status"] == "error" and "cycle ended early by a later ON after" in cycle["error"]
    assert cycle["took_ms"] < 30000
    calls = [(c["port"], c["action"]) for c in map(json.loads, journal.read_text().splitlines())
             if c["action"] != "get"]
    assert calls == [(1, "off"), (2, "on"), (1, "on")]


def test_an_off_during_a_cycle_cancels_it_and_a_long_delay_is_refused(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu(max_cycle_delay=100)}})
    probe.subscribe(f"pdu/{unique}/+/ack")
    probe.publish(f"pdu/{unique}/3/set", json.dumps({"action": "cycle", "delay": 50}))
    wait_until(lambda: sim.device(unique).outlets.get(3) is False, 10, "the cycle's off phase")
    assert probe.request(f"pdu/{unique}/3/set", "OFF", timeout=5)["state"] == "OFF"
    cycle = json.loads(probe.wait_for(f"pdu/{unique}/3/ack", lambda m: b'ended early' in m.payload).payload)
    assert "cycle ended early by a later OFF" in cycle["error"]
    assert sim.device(unique).outlets[3] is False  # and it stays off: the cycle's on never comes
    ack = probe.request(f"pdu/{unique}/3/set", json.dumps({"action": "cycle", "delay": 3600}), timeout=5)
    assert ack["status"] == "error" and "above this PDU's max_cycle_delay (100 s)" in ack["error"]


def test_cycle_uses_the_configured_delay(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu(cycle_delay=0.3)}})
    ack = probe.request(f"pdu/{unique}/4/set", "CYCLE")
    assert ack["status"] == "ok" and 300 <= ack["took_ms"] < 3000


def test_a_timeout_gives_an_error_ack_and_never_delays_another_pdu(daemon, probe, unique):
    hung, fine = f"{unique}-hung", f"{unique}-fine"
    daemon({"pdus": {hung: sim_pdu(hang_ports=[2], timeout=0.3, retries=1, retry_delay=0.05),
                     fine: sim_pdu(latency=0.01)}})
    probe.subscribe(f"pdu/{hung}/2/ack")
    probe.publish(f"pdu/{hung}/2/set", "ON")
    start = time.monotonic()
    assert probe.request(f"pdu/{fine}/1/set", "ON")["status"] == "ok"
    assert time.monotonic() - start < 0.3  # answered while the hung PDU still waits
    ack = json.loads(probe.wait_for(f"pdu/{hung}/2/ack", timeout=5).payload)
    assert ack["status"] == "error" and "device timeout" in ack["error"] and "after 2 tries" in ack["error"]
    probe.subscribe(f"pdu/{hung}/availability")
    assert probe.wait_for(f"pdu/{hung}/availability", lambda m: m.payload == b"offline")
    sim.device(hung).release.set()  # the device answers again: the PDU recovers
    assert probe.request(f"pdu/{hung}/1/set", "ON", timeout=5)["status"] == "ok"
    assert probe.wait_for(f"pdu/{hung}/availability", lambda m: m.payload == b"online")


def test_retries_back_off_and_then_succeed(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu(fail_first=2, retries=2, retry_delay=0.1)}})
    ack = probe.request(f"pdu/{unique}/1/set", "ON")
    assert ack["status"] == "ok"
    assert sim.device(unique).switches == 3
    assert ack["took_ms"] >= 300  # 0.1 s, then 0.2 s


def test_a_failing_outlet_says_why_after_every_try(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu(fail_ports=[3], retries=2, retry_delay=0.01)}})
    ack = probe.request(f"pdu/{unique}/3/set", "ON")
    assert ack["status"] == "error"
    assert ack["error"] == "outlet 3 did not switch (simulated failure) (after 3 tries)"
    assert probe.request(f"pdu/{unique}/1/set", "ON")["status"] == "ok"


def test_an_unreachable_pdu_goes_offline_and_comes_back(daemon, probe, unique):
    down, up = f"{unique}-down", f"{unique}-up"
    sim.device(down).reachable = False
    daemon({"pdus": {down: sim_pdu(), up: sim_pdu()}})
    probe.subscribe(f"pdu/{down}/availability")
    assert probe.wait_for(f"pdu/{down}/availability", lambda m: m.payload == b"offline")
    ack = probe.request(f"pdu/{down}/1/set", "ON")
    assert ack["status"] == "error" and "connection refused" in ack["error"]
    assert probe.request(f"pdu/{up}/1/set", "ON")["status"] == "ok"
    sim.device(down).reachable = True
    assert probe.request(f"pdu/{down}/1/set", "ON")["status"] == "ok"
    assert probe.wait_for(f"pdu/{down}/availability", lambda m: m.payload == b"online")


def test_a_driver_that_cannot_be_built_fails_only_its_own_pdu(daemon, probe, unique):
    broken, fine = f"{unique}-broken", f"{unique}-fine"
    daemon({"pdus": {broken: sim_pdu(fail_init=True), fine: sim_pdu()}})
    probe.subscribe(f"pdu/{broken}/availability")
    assert probe.wait_for(f"pdu/{broken}/availability", lambda m: m.payload == b"offline")
    ack = probe.request(f"pdu/{broken}/1/set", "ON")
    assert ack["status"] == "error" and "could not start" in ack["error"]
    assert probe.request(f"pdu/{fine}/1/set", "ON")["status"] == "ok"


def test_toggle_and_get_without_a_readable_driver(daemon, probe, unique, tmp_path):
    daemon({"pdus": {unique: {"driver": "localcmdline", "ports": 2, "cmd_on": ["true"], "cmd_off": ["true"]}}})
    ack = probe.request(f"pdu/{unique}/1/set", "TOGGLE")
    assert ack["status"] == "error" and "not known yet" in ack["error"]
    assert probe.request(f"pdu/{unique}/1/set", "ON")["state"] == "ON"
    assert probe.request(f"pdu/{unique}/1/set", "TOGGLE")["state"] == "OFF"
    assert probe.request(f"pdu/{unique}/1/get")["state"] == "OFF"


def test_a_command_older_than_max_command_age_is_not_run(daemon, probe, unique):
    daemon({"mqtt": {"max_command_age": 5}, "pdus": {unique: sim_pdu()}})
    ack = probe.request(f"pdu/{unique}/1/set", json.dumps({"action": "on", "ts": time.time() - 60}))
    assert ack["status"] == "error" and "expired" in ack["error"]
    assert 1 not in sim.device(unique).outlets
    assert probe.request(f"pdu/{unique}/1/set", json.dumps({"action": "on", "ts": time.time()}))["status"] == "ok"


def test_a_command_whose_v5_expiry_passes_in_the_queue_is_not_run(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu(ports=2, latency=1.0)}})
    probe.subscribe(f"pdu/{unique}/+/ack")
    probe.publish(f"pdu/{unique}/1/set", "ON")  # keeps the PDU busy for a second
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 1
    ack = probe.request(f"pdu/{unique}/2/set", "ON", properties=props)
    assert ack["status"] == "error" and "expired" in ack["error"]
    assert 2 not in sim.device(unique).outlets


def test_commands_published_while_the_daemon_is_down_run_when_it_returns(daemon, probe, unique):
    config = {"mqtt": {"client_id": f"{unique}-session", "session_expiry": 60}, "pdus": {unique: sim_pdu()}}
    first = daemon(json.loads(json.dumps(config)))
    first.stop()
    probe.subscribe(f"pdu/{unique}/1/ack")
    probe.publish(f"pdu/{unique}/1/set", "ON")
    daemon(json.loads(json.dumps(config)))
    assert json.loads(probe.wait_for(f"pdu/{unique}/1/ack").payload)["status"] == "ok"


def test_mqtt_3_1_1_works_through_the_ack_topic(daemon, probe, unique):
    daemon({"mqtt": {"protocol": "3.1.1"}, "pdus": {unique: sim_pdu()}})
    probe.subscribe(f"pdu/{unique}/1/ack")
    probe.publish(f"pdu/{unique}/1/set", "ON")
    assert json.loads(probe.wait_for(f"pdu/{unique}/1/ack").payload)["status"] == "ok"


def test_a_custom_base_topic(daemon, probe, unique):
    daemon({"mqtt": {"base_topic": f"lab/{unique}"}, "pdus": {"p1": sim_pdu()}})
    assert probe.request(f"lab/{unique}/p1/1/set", "ON")["status"] == "ok"


def test_stopping_finishes_a_cycle_and_refuses_what_waits(daemon, probe, unique):
    d = daemon({"pdus": {unique: sim_pdu(latency=0.2)}})
    probe.subscribe(f"pdu/{unique}/+/ack")
    probe.publish(f"pdu/{unique}/1/set", json.dumps({"action": "cycle", "delay": 30}))
    wait_until(lambda: sim.device(unique).outlets.get(1) is False, 10, "the cycle's off phase")
    for port in (2, 3, 4):
        probe.publish(f"pdu/{unique}/{port}/set", "ON")
    wait_until(lambda: d.runner.workers[unique].waiting >= 2, 10, "the commands to queue")
    d.stop()
    acks = {json.loads(m.payload)["port"]: json.loads(m.payload) for m in probe.wait_count(f"pdu/{unique}/+/ack", 4)}
    assert acks["1"]["status"] == "ok" and acks["1"]["state"] == "ON"  # power restored at once
    assert sim.device(unique).outlets[1] is True
    refused = [a for p, a in acks.items() if p != "1" and a["status"] == "error"]
    assert all(a["error"] == "not run: the daemon is stopping" for a in refused)
