"""The input rules: one spelling per outlet, limits checked before any work, response
topics the daemon refuses, transaction ids per outlet, short echoes, files the config names."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support import run_cli, write_config

from pdumqtt.bridge import MqttBridge
from pdumqtt.commands import (
    MAX_JSON_DEPTH,
    MAX_NUMBER,
    MAX_PAYLOAD,
    MAX_TOPIC,
    MAX_TRANSACTION,
    BadCommand,
    parse,
    request,
    response_topic_problem,
)
from pdumqtt.config import ConfigError, load_config_data
from pdumqtt.drivers import sim
from pdumqtt.mqtt_wire import publish_properties

CONFIG = load_config_data({
    "homeassistant": {"prefix": "ha"},
    "pdus": {"p": {"driver": "sim", "ports": 12}, "relays": {"driver": "sim", "ports": {"dut1": 1, "fan": 2}}},
    "aliases": {"board": {"pdu": "p", "port": 3}},
})


def refusal(topic: str, payload: bytes = b"ON") -> str:
    with pytest.raises(BadCommand) as caught:
        parse(CONFIG, topic, payload)
    return str(caught.value)


@pytest.mark.parametrize("spelling", ["01", "001", " 1", "1 ", "\u0661", "\uff11", "\U0001d7e3", "\u09e7", "1\u200b"])
def test_other_spellings_of_a_port_number_are_refused_naming_the_topic(spelling: str) -> None:
    reason = refusal(f"pdu/p/{spelling}/set")
    assert "its topic is pdu/p/1/set" in reason or "unknown port" in reason, reason
    assert parse(CONFIG, "pdu/p/1/set", b"ON").number == 1


def test_a_named_port_answers_to_its_name_and_its_number_only() -> None:
    assert parse(CONFIG, "pdu/relays/dut1/set", b"ON").port == "dut1"
    assert parse(CONFIG, "pdu/relays/1/set", b"ON").port == "dut1"
    assert "its topic is pdu/relays/dut1/set" in refusal("pdu/relays/DUT1/set")
    assert "its topic is pdu/relays/dut1/set" in refusal("pdu/relays/01/set")
    assert "its topic is pdu/relays/fan/get" in refusal("pdu/relays/\uff12/get")
    assert refusal("pdu/relays/3/set").startswith("unknown port '3'")


def test_pdu_and_alias_names_are_exact() -> None:
    assert "did you mean 'p'" in refusal("pdu/P/1/set")
    assert "did you mean 'relays'" in refusal("pdu/\uff52elays/1/set")  # fullwidth r
    assert "pdu/alias/board/set" in refusal("pdu/alias/BOARD/set")
    assert "pdu/alias/board/set" in refusal("pdu/alias/board /set")
    assert parse(CONFIG, "pdu/alias/board/set", b"ON").number == 3


def test_the_pdudaemon_listener_keeps_pdudaemons_leading_zeros_but_no_other_digits() -> None:
    assert request(CONFIG, "on", pdu="p", port="04").number == 4  # PDUDaemon reads ports with int()
    for port in ("\u0664", "\uff14", " 4"):
        with pytest.raises(BadCommand):
            request(CONFIG, "on", pdu="p", port=port)


LIMITS = [
    (b"x" * (MAX_PAYLOAD + 1), f"payload too large ({MAX_PAYLOAD + 1} bytes, at most {MAX_PAYLOAD})"),
    (b'{"a":' * 3000, f"nested too deep (more than {MAX_JSON_DEPTH} levels"),
    (b"[" * 15_000, "nested too deep"),
    (b'{"action": "cycle", "delay": ' + b"1" * 5000 + b"}", f"too long (5000 characters, at most {MAX_NUMBER})"),
    (b'{"action": "cycle", "delay": 0.' + b"1" * 100 + b"}", "a number in the payload is too long (102 characters"),
    (b'{"action": "on", "transaction": ' + b"7" * 40 + b"}", "a number in the payload is too long"),
    (json.dumps({"action": "on", "transaction": "t" * (MAX_TRANSACTION + 1)}).encode(),
     f"'transaction' too long ({MAX_TRANSACTION + 1} characters, at most {MAX_TRANSACTION})"),
]


@pytest.mark.parametrize(("payload", "reason"), LIMITS, ids=[r.split(" (")[0] for _, r in LIMITS])
def test_each_limit_is_refused_by_name_before_any_work(payload: bytes, reason: str) -> None:
    started = time.perf_counter()
    got = refusal("pdu/p/1/set", payload)
    took = time.perf_counter() - started
    assert reason in got, got
    assert len(got) < 200 and took < 0.1, (len(got), took)


@pytest.mark.parametrize("payload", [b'{"' + b'\\"' * 8000, b"{" + b'"\\' * 5400, b'"' * MAX_PAYLOAD,
                                     b"[" + b'"[' * 8000])
def test_the_nesting_count_takes_linear_time_on_unterminated_strings(payload: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(BadCommand):
        parse(CONFIG, "pdu/p/1/set", payload)
    assert time.perf_counter() - started < 0.05  # a rescan per quote took a second on paho's thread


def test_a_deep_payload_under_the_payload_limit_is_refused_not_raised() -> None:
    # a /get takes any payload: deep JSON there is ignored, never a RecursionError
    assert parse(CONFIG, "pdu/p/1/get", b"[" * MAX_PAYLOAD).action == "get"
    with pytest.raises(BadCommand):
        parse(CONFIG, "pdu/p/1/set", b'{"a": "' + b"[" * 10_000 + b'"}')  # brackets in a string do not count


def test_a_long_topic_is_refused_and_echoed_short() -> None:
    topic = "pdu/p/" + "9" * 30_000 + "/set"
    with pytest.raises(BadCommand) as caught:
        parse(CONFIG, topic, b"ON")
    assert str(caught.value) == f"topic too long ({len(topic)} characters, at most {MAX_TOPIC})"
    assert len(caught.value.command.port) < 80 and len(caught.value.command.pdu) < 80
    level = "x" * 400  # within the topic limit: the reason quotes a prefix
    reason = refusal(f"pdu/{level}/1/set")
    assert len(reason) < 300 and "(400 characters)" in reason, reason


@pytest.mark.parametrize(("topic", "why"), [
    ("pdu/bridge/state", "under pdu/"), ("pdu", "under pdu/"), ("pdu/p/1/set", "under pdu/"),
    ("ha/switch/x/config", "under ha/"), ("zigbee2mqtt/plug/set", "a /set or /get topic"),
    ("a/get", "a /set or /get topic"), ("reply/#", "wildcards"), ("x/+/y", "wildcards"), ("$SYS/x", "'$'"),
    ("", "empty"), ("r/" + "x" * MAX_TOPIC, "too long"),
])
def test_response_topics_the_daemon_refuses(topic: str, why: str) -> None:
    assert why in (response_topic_problem(CONFIG, topic) or ""), topic


def test_response_topic_prefix_narrows_them() -> None:
    assert response_topic_problem(CONFIG, "pdux/reply") is None  # pdux is not under pdu/
    assert response_topic_problem(CONFIG, "anywhere/else") is None
    narrow = load_config_data({"mqtt": {"response_topic_prefix": ["reply", "lab/replies/"]},
                               "pdus": {"p": {"driver": "sim", "ports": 1}}})
    assert response_topic_problem(narrow, "reply/me/1") is None
    assert response_topic_problem(narrow, "lab/replies/x") is None
    assert "allowed prefix (reply/, lab/replies/)" in response_topic_problem(narrow, "replyx/1")
    assert "under pdu/" in response_topic_problem(load_config_data(
        {"mqtt": {"response_topic_prefix": "pdu"}, "pdus": {"p": {"driver": "sim", "ports": 1}}}), "pdu/x/y")


def test_a_reload_that_narrows_response_topics_applies_to_a_topic_seen_before() -> None:
    bridge = MqttBridge(CONFIG, "127.0.0.1", 1)  # never connected: only its rules are asked
    props = publish_properties()
    props.ResponseTopic = "anywhere/else"
    assert bridge._reply_fields(parse(CONFIG, "pdu/p/1/set", b"ON"), props) is None
    narrow = load_config_data({"mqtt": {"response_topic_prefix": "reply"},
                               "pdus": {"p": {"driver": "sim", "ports": 1}}})
    bridge.reconfigure(narrow)
    assert "allowed prefix (reply/)" in bridge._reply_fields(parse(narrow, "pdu/p/1/set", b"ON"), props)


def test_a_transaction_id_is_remembered_per_outlet(daemon, probe, unique) -> None:
    daemon({"pdus": {unique: {"driver": "sim", "ports": 2}}})
    first = probe.request(f"pdu/{unique}/1/set", json.dumps({"action": "on", "transaction": "same"}))
    other = probe.request(f"pdu/{unique}/2/set", json.dumps({"action": "on", "transaction": "same"}))
    assert first["status"] == other["status"] == "ok" and other["port"] == "2"
    assert sim.device(unique).outlets == {1: True, 2: True}  # both ran
    again = probe.request(f"pdu/{unique}/1/set", json.dumps({"action": "off", "transaction": "same"}))
    assert again == first and sim.device(unique).outlets[1] is True  # a repeat: the first ack, not run


@pytest.mark.parametrize("key", ["password_file", "tls.ca_certs", "tls.certfile", "tls.keyfile"])
def test_a_missing_file_named_in_the_config_exits_2_with_its_key(tmp_path: Path, key: str) -> None:
    mqtt: dict = {"host": "127.0.0.1", "port": 1, "username": "u"}
    if key == "password_file":
        mqtt["password_file"] = str(tmp_path / "no-such-secret")
    else:
        mqtt["tls"] = {key.split(".")[1]: str(tmp_path / "no-such.pem")}
    path = write_config(tmp_path, {"mqtt": mqtt, "pdus": {"p": {"driver": "sim", "ports": 1}}})
    for command in (["check", "-c", str(path)], ["daemon", "-c", str(path)]):
        done = run_cli(*command, timeout=30)
        assert done.returncode == 2, (command, done.stderr)
        assert f"mqtt.{key}: cannot read" in done.stderr and "No such file" in done.stderr
        assert "Traceback" not in done.stderr


def test_auth_file_errors_name_the_file_and_the_client(tmp_path: Path) -> None:
    def load(clients: object) -> Exception:
        path = tmp_path / "clients.yaml"
        path.write_text(json.dumps(clients))
        with pytest.raises(ConfigError) as caught:
            load_config_data({"pdudaemon": {"auth_file": str(path)}, "pdus": {"p": {"driver": "sim", "ports": 1}}})
        return caught.value

    assert "lava.pdus: no PDU named 'q'" in str(load({"lava": {"token": "12345678", "pdus": ["q"]}}))
    assert "give a token or a password" in str(load({"lava": {"pdus": ["p"]}}))
    assert "lava.token" in str(load({"lava": {"token": "short", "pdus": ["p"]}}))
    assert "share a token" in str(load({"a": {"token": "12345678", "pdus": ["p"]},
                                        "b": {"token": "12345678", "pdus": ["p"]}}))
    assert "pdudaemon.auth_file" in str(load([]))
