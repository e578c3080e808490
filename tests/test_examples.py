"""The files in examples/ work: the Node-RED flow, the mosquitto scripts, the LAVA and
labgrid snippets, the systemd unit and the Home Assistant config.

Where an example names the demo's topics (``pdu/lab-pdu1/...``), the test runs the demo
config under a base topic of its own and rewrites the example's topics to match, so
retained topics never leak between tests.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import free_port

from pdumqtt.commands import BadCommand, parse
from pdumqtt.config import load_config, load_config_data
from pdumqtt.drivers.sim import device

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FLOW = EXAMPLES / "node-red" / "pdumqtt-flow.json"
DEMO = EXAMPLES / "demo.yaml"
SCRIPTS = EXAMPLES / "mosquitto"


def flow_nodes() -> dict[str, dict[str, Any]]:
    nodes = json.loads(FLOW.read_text())
    assert isinstance(nodes, list)
    by_id = {n["id"]: n for n in nodes}
    assert len(by_id) == len(nodes), "node ids must be unique"
    return by_id


def response_topic(nodes: dict[str, dict[str, Any]]) -> str:
    topics = {m for n in nodes.values() if n["type"] == "function"
              for m in re.findall(r'msg\.responseTopic = "([^"]+)"', n["func"])}
    assert len(topics) == 1
    return topics.pop()


def inputs_of(nodes: dict[str, dict[str, Any]], target: str) -> list[dict[str, Any]]:
    return [n for n in nodes.values() for out in n.get("wires", []) if target in out]


def injected_into(nodes: dict[str, dict[str, Any]], out_id: str) -> list[str]:
    """The payloads of the inject nodes upstream of node ``out_id``."""
    payloads, todo, seen = [], [out_id], set()
    while todo:
        for n in inputs_of(nodes, todo.pop()):
            if n["id"] in seen:
                continue
            seen.add(n["id"])
            if n["type"] == "inject":
                payloads.append(n["payload"])
            todo.append(n["id"])
    return payloads


def test_node_red_flow_is_valid_and_uses_topics_that_exist() -> None:
    nodes = flow_nodes()
    config = load_config(DEMO)
    reply = response_topic(nodes)
    for n in nodes.values():
        for out in n.get("wires", []):
            assert all(target in nodes for target in out), f"{n['id']} wires to a missing node"
        if n["type"].startswith("mqtt "):
            broker = nodes[n["broker"]]
            assert broker["type"] == "mqtt-broker" and broker["protocolVersion"] == "5"
    outs = [n for n in nodes.values() if n["type"] == "mqtt out"]
    ins = [n for n in nodes.values() if n["type"] == "mqtt in"]
    assert outs and ins
    for n in outs:
        payloads = injected_into(nodes, n["id"])
        assert payloads
        for word in payloads:  # the function sends {"action": word, "transaction": ...}
            payload = json.dumps({"action": word.lower(), "transaction": "t"}).encode()
            command = parse(config, n["topic"], payload)  # raises BadCommand for a topic that does not exist
            assert command.pdu in config.pdus and command.action == word.lower()
    subscribed = {n["topic"] for n in ins}
    assert reply in subscribed  # the ack monitor listens where the commands ask for answers
    for topic in subscribed - {reply}:
        levels = topic.split("/")
        assert levels[0] == config.base_topic and levels[-1] in ("state", "ack")
        if levels[1] != "+":
            assert levels[1] in config.pdus and config.pdus[levels[1]].resolve_port(levels[2])
    with pytest.raises(BadCommand):  # and the check above would catch a wrong one
        parse(config, "pdu/lab-pdu1/99/set", b"ON")


def test_node_red_flow_against_the_daemon(daemon: Any, probe: Any, unique: str) -> None:
    """Publish what the flow publishes (topic, v5 response topic, correlation) and see
    every topic the flow listens to answer."""
    nodes = flow_nodes()
    demo = yaml.safe_load(DEMO.read_text())
    demo["mqtt"]["base_topic"] = unique
    demo["defaults"]["cycle_delay"] = 0.2
    daemon(demo)

    def ours(topic: str) -> str:
        return unique + topic[len("pdu"):] if topic.startswith("pdu/") else f"{unique}-{topic}"

    reply = ours(response_topic(nodes))
    for n in nodes.values():
        if n["type"] == "mqtt in":
            probe.subscribe(ours(n["topic"]))
    for n in (n for n in nodes.values() if n["type"] == "mqtt out"):
        for word in injected_into(nodes, n["id"]):
            correlation = uuid.uuid4().bytes
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = reply
            props.CorrelationData = correlation
            seen = len(probe.messages)
            probe.publish(ours(n["topic"]), json.dumps({"action": word.lower(), "transaction": uuid.uuid4().hex}),
                          properties=props)
            ack = probe.wait_for(reply, lambda m, c=correlation: m.properties.CorrelationData == c, start=seen)
            assert json.loads(ack.payload)["status"] == "ok"
            every = probe.wait_for(f"{unique}/+/+/ack", start=seen)
            assert json.loads(every.payload)["action"] == word.lower()
            want = b"OFF" if word == "OFF" else b"ON"
            probe.wait_for(ours("pdu/lab-pdu1/1/state"), lambda m, w=want: m.payload == w, start=seen)


# --- the mosquitto scripts ----------------------------------------------------------------


def script(name: str, *args: str, broker: Any, base: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MQTT_HOST": broker.host, "MQTT_PORT": str(broker.port), "PDU_BASE": base,
           "PDU_TIMEOUT": "20"}
    return subprocess.run([str(SCRIPTS / name), *args], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def scripted(daemon: Any, unique: str) -> str:
    """A daemon under base topic ``unique`` with a sim PDU ``lab``, all its outlets off."""
    device("lab").outlets.clear()  # the sim's outlets outlast a test: they are kept per PDU name
    daemon({"mqtt": {"base_topic": unique},
            "defaults": {"cycle_delay": 0.2, "retries": 0},
            "pdus": {"lab": {"driver": "sim", "ports": {"1": 1, "2": 2, "fan": 3}}},
            "aliases": {"board": {"pdu": "lab", "port": "fan"}}})
    return unique


def test_mosquitto_scripts_on_off_cycle(scripted: str, broker: Any) -> None:
    done = script("on.sh", "lab", "2", broker=broker, base=scripted)
    assert done.returncode == 0, done.stderr
    ack = json.loads(done.stdout)
    assert ack["status"] == "ok" and ack["state"] == "ON" and ack["port"] == "2"
    assert json.loads(script("off.sh", "lab", "2", broker=broker, base=scripted).stdout)["state"] == "OFF"
    done = script("cycle.sh", "lab", "fan", "0.5", broker=broker, base=scripted)
    assert done.returncode == 0 and json.loads(done.stdout)["action"] == "cycle"
    done = script("cycle.sh", "board", broker=broker, base=scripted)
    assert done.returncode == 0 and json.loads(done.stdout)["alias"] == "board"


def test_mosquitto_scripts_refuse(scripted: str, broker: Any) -> None:
    done = script("on.sh", "lab", "9", broker=broker, base=scripted)
    assert done.returncode == 1 and "unknown port" in json.loads(done.stdout)["error"]
    for args in (["lab", "+"], ["lab/1", "1"], ["#"], ["lab"] * 4):
        assert script("on.sh", *args, broker=broker, base=scripted).returncode == 2
    assert script("cycle.sh", "lab", "1", "5;reboot", broker=broker, base=scripted).returncode == 2


def test_mosquitto_scripts_status_and_send(scripted: str, broker: Any, probe: Any) -> None:
    probe.subscribe(f"{scripted}/lab/1/state")
    assert script("send.sh", "ON", "lab", "1", broker=broker, base=scripted).returncode == 0
    probe.wait_for(f"{scripted}/lab/1/state", lambda m: m.payload == b"ON")
    done = script("status.sh", broker=broker, base=scripted)
    assert done.returncode == 0 and done.stderr == "", done.stderr  # no "Timed out" when it worked
    lines = set(done.stdout.splitlines())
    assert f"{scripted}/bridge/state online" in lines and f"{scripted}/lab/availability online" in lines
    assert f"{scripted}/lab/1/state ON" in lines and f"{scripted}/lab/fan/state OFF" in lines
    assert script("status.sh", "lab", broker=broker, base=scripted).returncode == 0
    # no broker: mosquitto_sub's own error and status come through
    gone = subprocess.run([str(SCRIPTS / "status.sh")], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(free_port())})
    assert gone.returncode not in (0, 27) and "refused" in gone.stderr.lower(), gone


# --- LAVA, labgrid, systemd, Home Assistant -----------------------------------------------


def lava_commands() -> list[list[str]]:
    text = (EXAMPLES / "lava" / "device-dictionary.jinja2").read_text()
    return [shlex.split(c) for c in re.findall(r"set \w+_command = '(pduclient [^']*)'", text)]


def test_lava_dictionary_commands_run_against_the_listener(daemon: Any, unique: str) -> None:
    demo = yaml.safe_load(DEMO.read_text())
    demo["mqtt"]["base_topic"] = unique
    demo["defaults"]["cycle_delay"] = 0.2
    demo["pdudaemon"] = {"listen": f"127.0.0.1:{free_port()}"}
    d = daemon(demo)
    commands = [c for c in lava_commands() if "--mqtt" not in c]
    assert len(commands) == 3
    for argv in commands:
        argv[argv.index("--daemon") + 1] = f"127.0.0.1:{d.listener.address[1]}"
        if "--delay" in argv:  # the board's 5 s off would only slow the test down
            argv[argv.index("--delay") + 1] = "1"
        done = subprocess.run([sys.executable, "-c", "from pdumqtt.pduclient import run; run()", *argv[1:]],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stdout


def test_labgrid_environment_names_a_configured_outlet() -> None:
    env = yaml.safe_load((EXAMPLES / "labgrid" / "pdumqtt-env.yaml").read_text())
    target = env["targets"]["main"]
    port = target["resources"]["PDUDaemonPort"]
    assert port["host"].endswith(":16421") and "PDUDaemonDriver" in target["drivers"]
    pdu = load_config(DEMO).pdus[port["pdu"]]
    # labgrid's PDUDaemonPort passes index through int(); its driver's delay must be a float
    assert isinstance(port["index"], int) and pdu.resolve_port(str(port["index"]))
    assert isinstance(target["drivers"]["PDUDaemonDriver"]["delay"], float)


def test_systemd_unit(broker: Any, probe: Any, unique: str, tmp_path: Path) -> None:
    """The unit's ExecStart as systemd runs it (its config path ours): online, then its
    KillSignal ends it cleanly in time, and a bad config exits with RestartPreventExitStatus."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(EXAMPLES / "systemd" / "pdumqtt.service")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "pdumqtt" and argv[1:3] == ["daemon", "-c"] and len(argv) == 4
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    demo = yaml.safe_load(DEMO.read_text())
    demo["mqtt"].update({"base_topic": unique, "host": broker.host, "port": broker.port})
    config = tmp_path / "pdumqtt.yaml"
    config.write_text(yaml.safe_dump(demo))
    exe = str(Path(sys.executable).with_name("pdumqtt"))  # where pip put it, for /usr/local/bin/pdumqtt
    probe.subscribe(f"{unique}/bridge/state")
    process = subprocess.Popen([exe, *argv[1:3], str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        probe.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"online", timeout=20)
        process.send_signal(getattr(signal, service["KillSignal"]))
        assert process.wait(float(service["TimeoutStopSec"])) == 0  # not a failure: no restart
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    probe.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"offline")
    config.write_text("pdus: {lab: {driver: sim, ports: 2, bogus_key: 1}}\n")
    bad = subprocess.run([exe, *argv[1:3], str(config)], capture_output=True, text=True, timeout=30)
    assert str(bad.returncode) == service["RestartPreventExitStatus"], bad  # a bad config: no restart loop
    assert "bogus_key" in bad.stdout + bad.stderr


def test_watch_script_follows_acks_and_states(scripted: str, broker: Any) -> None:
    env = {**os.environ, "MQTT_HOST": broker.host, "MQTT_PORT": str(broker.port), "PDU_BASE": scripted}
    watch = subprocess.Popen([str(SCRIPTS / "watch.sh")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        lines: list[str] = []
        # the retained states come first: once they are here, watch.sh has subscribed
        while not any(line.startswith(f"{scripted}/lab/2/state ") for line in lines):
            lines.append(watch.stdout.readline() if watch.stdout else "")
            assert lines[-1], f"watch.sh ended: {watch.stderr.read() if watch.stderr else ''}"
        assert script("on.sh", "lab", "2", broker=broker, base=scripted).returncode == 0
        start = len(lines)
        acks: list[str] = []
        while not acks or f"{scripted}/lab/2/state ON\n" not in lines[start:]:
            lines.append(watch.stdout.readline() if watch.stdout else "")
            assert lines[-1], "watch.sh ended"
            if lines[-1].startswith(f"{scripted}/lab/2/ack "):
                acks.append(lines[-1])
        assert json.loads(acks[0].split(" ", 1)[1])["state"] == "ON"
    finally:
        watch.terminate()
        watch.wait(10)


def test_home_assistant_example_config() -> None:
    config = load_config(EXAMPLES / "homeassistant" / "pdumqtt.yaml")
    assert config.homeassistant["discovery"] is True
    data = yaml.safe_load((EXAMPLES / "homeassistant" / "pdumqtt.yaml").read_text())
    load_config_data(data)
    assert mqtt.topic_matches_sub("homeassistant/+/pdumqtt_pdu/+/config",
                                  "homeassistant/switch/pdumqtt_pdu/lab-pdu1_3/config")


def test_readme_compatibility_table_names_the_versions_the_integration_tests_run() -> None:
    from integration.envs import VERSIONS

    readme = (ROOT / "README.md").read_text()
    start = readme.index("### Compatibility")
    table = readme[start:readme.index("\n## ", start)]
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    for program, row in (("homeassistant", "Home Assistant core"), ("node-red", "Node-RED"),
                         ("labgrid", "labgrid"), ("pdudaemon", "PDUDaemon's `pduclient`")):
        assert f"| {VERSIONS[program]} " in rows[row], (program, rows[row])
