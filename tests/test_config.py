"""Config validation: a bad file exits 2 with the key path and the reason."""

from __future__ import annotations

import json

import pytest
from support import run_cli, write_config

from pdumqtt.config import ConfigError, load_config, load_config_data

GOOD = {"pdus": {"apc1": {"driver": "sim", "ports": 8}}}

BAD = [
    ({"pdus": {"apc1": {"driver": "sim", "ports": "eight"}}},
     "pdus.apc1.ports: expected an int, a list of names or a map of name to number"),
    ({"pdus": {"apc1": {"driver": "sim", "ports": 0}}}, "pdus.apc1.ports: expected a port count from 1 to 1024"),
    ({"pdus": {"apc1": {"driver": "sim", "ports": {"a": 1, "b": 1}}}}, "pdus.apc1.ports: port number 1 given twice"),
    ({"pdus": {"apc1": {"driver": "sim", "ports": {"3": 4}}}}, "pdus.apc1.ports: port name '3' is a number"),
    ({"pdus": {"apc1": {"driver": "sim", "ports": ["a b"]}}}, "pdus.apc1.ports: port name 'a b'"),
    ({"pdus": {"apc1": {"driver": "nosuch", "ports": 2}}}, "pdus.apc1.driver: unknown driver 'nosuch' (known:"),
    ({"pdus": {"apc1": {"ports": 2}}}, "pdus.apc1.driver: required key missing"),
    ({"pdus": {"apc1": {"driver": "sim"}}}, "pdus.apc1.ports: required key missing"),
    ({"pdus": {"apc1": {"driver": "sim", "ports": 2, "colour": "red"}}}, "pdus.apc1.colour: unknown key"),
    ({"pdus": {"apc1": {"driver": "sim", "ports": 2, "latency": -1}}}, "pdus.apc1.latency: value must be at least 0"),
    ({"pdus": {"apc1": {"driver": "sim", "ports": 2, "retries": "many"}}}, "pdus.apc1.retries: expected int"),
    ({"pdus": {"apc1": {"driver": "localcmdline", "ports": 2, "cmd_on": 5, "cmd_off": ["true"]}}},
     "pdus.apc1.cmd_on: expected a command as a list of arguments"),
    ({"pdus": {"bridge": {"driver": "sim", "ports": 2}}}, "pdus.bridge: 'bridge' is reserved"),
    ({"pdus": {"alias": {"driver": "sim", "ports": 2}}}, "pdus.alias: 'alias' is reserved"),
    ({"pdus": {"a/b": {"driver": "sim", "ports": 2}}}, "pdus.a/b: a PDU name must be"),
    ({"pdus": {}}, "pdus: expected at least one PDU"),
    ({}, "pdus: required key missing"),
    ({**GOOD, "mqtt": {"port": "x"}}, "mqtt.port: expected int"),
    ({**GOOD, "mqtt": {"base_topic": "pdu/#"}}, "mqtt.base_topic: expected a topic prefix"),
    ({**GOOD, "mqtt": {"protocol": "4"}}, "mqtt.protocol: value must be one of"),
    ({**GOOD, "mqtt": {"password": "a", "password_file": "b"}}, "mqtt.password: give password or password_file"),
    ({**GOOD, "defaults": {"timeout": 0}}, "defaults.timeout: value must be at least 0.001"),
    ({**GOOD, "aliases": {"x": {"pdu": "nope", "port": 1}}}, "aliases.x.pdu: no PDU named 'nope'"),
    ({**GOOD, "aliases": {"x": {"pdu": "apc1", "port": 9}}}, "aliases.x.port: PDU 'apc1' has no port '9'"),
    ({**GOOD, "aliases": {"x": {"pdu": "apc1"}}}, "aliases.x.port: required key missing"),
    ({**GOOD, "surprise": 1}, "surprise: unknown key"),
]


@pytest.mark.parametrize(("data", "message"), BAD, ids=[m.split(":")[0] + "-" + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_config_names_the_key_and_the_reason(data, message):
    with pytest.raises(ConfigError) as error:
        load_config_data(data)
    assert message in str(error.value)


def test_defaults_apply_and_a_pdu_overrides_them():
    config = load_config_data({"defaults": {"retries": 5, "timeout": 3},
                               "pdus": {"a": {"driver": "sim", "ports": 2},
                                        "b": {"driver": "sim", "ports": 2, "retries": 0}}})
    assert (config.pdus["a"].retries, config.pdus["a"].timeout) == (5, 3.0)
    assert (config.pdus["b"].retries, config.pdus["b"].cycle_delay) == (0, 5.0)
    assert config.mqtt["base_topic"] == "pdu" and config.mqtt["protocol"] == "5"


def test_ports_as_count_list_or_map():
    config = load_config_data({"pdus": {"a": {"driver": "sim", "ports": 3},
                                        "b": {"driver": "sim", "ports": ["x", "y"]},
                                        "c": {"driver": "sim", "ports": {"fan": 7, "dut": 2}}}})
    assert config.pdus["a"].ports == {"1": 1, "2": 2, "3": 3}
    assert config.pdus["b"].ports == {"x": 1, "y": 2}
    assert config.pdus["c"].resolve_port("7") == ("fan", 7)
    assert config.pdus["c"].resolve_port("dut") == ("dut", 2)
    assert config.pdus["c"].resolve_port("1") is None


def test_json_and_yaml_files_both_load(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(GOOD))
    assert load_config(tmp_path / "c.json").pdus["apc1"].driver == "sim"
    assert load_config(write_config(tmp_path, GOOD)).pdus["apc1"].driver == "sim"


def test_the_examples_are_valid():
    from pathlib import Path

    for path in sorted(Path(__file__).parent.parent.glob("examples/*.yaml")):
        load_config(path)


def test_check_exits_2_naming_the_key(tmp_path):
    path = write_config(tmp_path, BAD[0][0])
    done = run_cli("check", "-c", str(path))
    assert done.returncode == 2
    assert BAD[0][1] in done.stderr


def test_check_accepts_a_good_file(tmp_path):
    done = run_cli("check", "-c", str(write_config(tmp_path, GOOD)))
    assert done.returncode == 0 and "1 PDUs, 8 outlets" in done.stdout


def test_check_reports_unparsable_and_missing_files(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("pdus: [unclosed\n")
    done = run_cli("check", "-c", str(broken))
    assert done.returncode == 2 and "not valid YAML" in done.stderr
    done = run_cli("check", "-c", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_daemon_exits_2_on_a_bad_config_before_touching_the_network(tmp_path):
    done = run_cli("daemon", "-c", str(write_config(tmp_path, BAD[0][0])), timeout=20)
    assert done.returncode == 2 and BAD[0][1] in done.stderr
