"""Bad input of every kind gets an error ack, and the daemon goes on serving."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdumqtt.commands import BadCommand, parse
from pdumqtt.config import load_config_data
from pdumqtt.drivers import sim

BAD_PAYLOADS = [
    (b'{"action": "on"', "not valid JSON"),
    (b"EXPLODE", "unknown action 'EXPLODE'"),
    (b"", "empty command"),
    (b"   ", "empty command"),
    (b"x" * (1024 * 1024), "payload too large"),
    (b"\xff\xfe\xfd", "not UTF-8"),
    (b'{"action": "cycle", "delay": -5}', "'delay' must be from 0"),
    (b'{"action": "cycle", "delay": "soon"}', "'delay' must be a number"),
    (b'{"action": "on", "colour": "red"}', "unknown key 'colour'"),
    (b'["on"]', "must be an object"),
    (b'{"action": 3}', "unknown action"),
    (b'{"action": "on", "state": "OFF"}', "either 'action' or 'state'"),
    (b'{"action": "on", "transaction": {"a": 1}}', "'transaction' must be a string"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_PAYLOADS, ids=[r for _, r in BAD_PAYLOADS])
def test_bad_payload_gets_an_error_ack_and_the_daemon_goes_on(daemon, probe, unique, payload, reason):
    daemon({"pdus": {unique: {"driver": "sim", "ports": 4}}})
    ack = probe.request(f"pdu/{unique}/1/set", payload)
    assert ack["status"] == "error" and reason in ack["error"], ack
    assert ack["transaction"] and ack["pdu"] == unique and ack["port"] == "1"
    assert 1 not in sim.device(unique).outlets
    assert probe.request(f"pdu/{unique}/1/set", "ON")["status"] == "ok"


def test_unknown_pdu_and_unknown_port(daemon, probe, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": 4}}})
    ack = probe.request(f"pdu/{unique}-nope/1/set", "ON")
    assert ack["status"] == "error" and ack["error"].startswith(f"unknown PDU '{unique}-nope'")
    for port in ("5", "0", "dut1", "-1"):
        ack = probe.request(f"pdu/{unique}/{port}/set", "ON")
        assert ack["status"] == "error" and ack["error"].startswith(f"unknown port '{port}'"), ack
    probe.subscribe(f"pdu/{unique}-nope/1/ack")
    probe.publish(f"pdu/{unique}-nope/1/set", "ON")
    assert json.loads(probe.wait_for(f"pdu/{unique}-nope/1/ack").payload)["status"] == "error"
    assert probe.request(f"pdu/{unique}/4/set", "ON")["status"] == "ok"


def test_a_retained_set_is_refused_and_never_fires_again(daemon, probe, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": 4}}})
    probe.subscribe(f"pdu/{unique}/2/ack")
    probe.publish(f"pdu/{unique}/2/set", "ON", retain=True)
    try:
        ack = json.loads(probe.wait_for(f"pdu/{unique}/2/ack").payload)
        assert ack["status"] == "error" and "retained" in ack["error"]
        # a restart replays the retained message: refused again, never executed
        daemon({"pdus": {unique: {"driver": "sim", "ports": 4}}})
        probe.wait_count(f"pdu/{unique}/2/ack", 2)
        assert all(json.loads(m.payload)["status"] == "error" for m in probe.all(f"pdu/{unique}/2/ack"))
        assert 2 not in sim.device(unique).outlets
    finally:
        probe.publish(f"pdu/{unique}/2/set", b"", retain=True)  # clear it from the broker


def test_a_refused_set_tells_the_state_it_left_alone(daemon, probe, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": 4}}})
    probe.subscribe(f"pdu/{unique}/3/state")
    probe.wait_for(f"pdu/{unique}/3/state", lambda m: m.payload == b"OFF")  # the first probe has read it
    probe.subscribe(f"pdu/{unique}/3/ack")
    probe.publish(f"pdu/{unique}/3/set", "ON", retain=True)
    try:
        ack = json.loads(probe.wait_for(f"pdu/{unique}/3/ack").payload)
        assert ack["status"] == "error" and "retained" in ack["error"] and ack["state"] == "OFF", ack
    finally:
        probe.publish(f"pdu/{unique}/3/set", b"", retain=True)
    assert probe.request(f"pdu/{unique}/3/set", "FLY")["state"] == "OFF"  # a bad payload too
    assert probe.request(f"pdu/{unique}/9/set", "ON")["state"] is None  # no such outlet: no state


def test_a_refused_response_topic_is_answered_on_the_ack_topic(daemon, probe, unique):
    """The command does not run; the reason goes where the sender can always read it."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    daemon({"pdus": {unique: {"driver": "sim", "ports": 4}}})
    probe.subscribe(f"pdu/{unique}/1/ack")
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "bad/#"
    probe.publish(f"pdu/{unique}/1/set", "ON", properties=props)
    ack = json.loads(probe.wait_for(f"pdu/{unique}/1/ack").payload)
    assert ack["status"] == "error" and "refused the response topic 'bad/#'" in ack["error"], ack
    assert 1 not in sim.device(unique).outlets
    assert probe.request(f"pdu/{unique}/1/set", "OFF")["status"] == "ok"


CONFIG = load_config_data({"pdus": {"p": {"driver": "sim", "ports": {"a": 1, "b": 2}}},
                           "aliases": {"x": {"pdu": "p", "port": "b"}}})


@settings(max_examples=300, deadline=None)
@given(level1=st.sampled_from(["p", "alias", "q", "bridge"]), level2=st.sampled_from(["a", "1", "2", "x", "9", ""]),
       verb=st.sampled_from(["set", "get"]), payload=st.one_of(
           st.binary(max_size=200),
           st.text(max_size=50).map(str.encode),
           st.dictionaries(st.sampled_from(["action", "state", "delay", "transaction", "ts", "z"]),
                           st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
                           max_size=4).map(lambda d: json.dumps(d).encode())),
       retained=st.booleans())
def test_parse_never_fails_other_than_with_a_reason(level1, level2, verb, payload, retained):
    try:
        command = parse(CONFIG, f"pdu/{level1}/{level2}/{verb}", payload, retained=retained)
    except BadCommand as bad:
        assert str(bad) and bad.command.transaction
    else:
        assert command.pdu == "p" and command.port in ("a", "b") and command.action in (
            "on", "off", "cycle", "toggle", "get")
        assert command.delay is None or command.delay >= 0
