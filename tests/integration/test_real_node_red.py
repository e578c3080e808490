"""Node-RED (from npm) running the shipped flow (examples/node-red/pdumqtt-flow.json) against
pdumqtt and the demo config.

The flow is imported through Node-RED's admin API with only its broker address changed; the
test's copy adds one inject that sends a command pdumqtt refuses, and MQTT outputs beside the
flow's debug nodes so the test can see what reaches them. Its injects are fired through the
admin API, as the editor's buttons do.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from support import ROOT, Broker, Probe, accepts, free_port, wait_until

from integration.envs import installed

PROGRAM = "node-red"
pytestmark = pytest.mark.integration

FLOW = ROOT / "examples" / "node-red" / "pdumqtt-flow.json"
SETTINGS = """module.exports = {{
    uiHost: "127.0.0.1",
    uiPort: {port},
    flowFile: "flows.json",
    credentialSecret: false,
    telemetry: {{enabled: false}},
    diagnostics: {{enabled: false, ui: false}},
    logging: {{console: {{level: "info", metrics: false, audit: false}}}},
}};
"""
OBSERVED = "it/nodered"  # where the test's copy republishes what reaches the flow's outputs


def flow_for_test(broker: Broker) -> list[dict[str, Any]]:
    """The shipped flow with the broker address set, an error inject and observable outputs."""
    nodes = json.loads(FLOW.read_text())
    by_id = {n["id"]: n for n in nodes}
    (config,) = [n for n in nodes if n["type"] == "mqtt-broker"]
    config.update({"broker": broker.host, "port": str(broker.port)})
    (tab,) = [n for n in nodes if n["type"] == "tab"]
    (command,) = [n for n in nodes if n["type"] == "function" and "responseTopic" in n["func"]]
    (verdict,) = [n for n in nodes if n["type"] == "function" and n["outputs"] == 2]
    (state,) = [n for n in nodes if n["type"] == "mqtt in" and n["topic"].endswith("/state")]
    assert [by_id[w[0]]["name"] for w in verdict["wires"]] == ["ok", "errors"]

    def observer(name: str) -> str:
        nodes.append({"id": f"it-out-{name}", "type": "mqtt out", "z": tab["id"], "name": f"test: {name}",
                      "topic": f"{OBSERVED}/{name}", "qos": "1", "retain": "false", "broker": config["id"],
                      "wires": []})
        return f"it-out-{name}"

    verdict["wires"][0].append(observer("ok"))
    verdict["wires"][1].append(observer("errors"))
    state["wires"][0].append(observer("state"))
    nodes.append({"id": "it-inject-bad", "type": "inject", "z": tab["id"], "name": "test: refused",
                  "props": [{"p": "payload"}], "repeat": "", "once": False, "topic": "", "payload": "FLY",
                  "payloadType": "str", "wires": [[command["id"]]]})
    return nodes


@pytest.fixture(scope="module")
def node_red(own_broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = installed(PROGRAM)
    user_dir = tmp_path_factory.mktemp("node-red")
    port = free_port()
    (user_dir / "settings.js").write_text(SETTINGS.format(port=port))
    log = user_dir / "node-red.log"
    with log.open("wb") as out:
        process = subprocess.Popen(["node", str(env / "node_modules" / "node-red" / "red.js"), "-u", str(user_dir),
                                    "-s", str(user_dir / "settings.js")], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert process.poll() is None, f"Node-RED exited: {log.read_text()[-3000:]}"
            return accepts(port) and requests.get(f"{url}/settings", timeout=5).ok

        wait_until(ready, 60, "Node-RED to serve its admin API")
        reply = requests.post(f"{url}/flows", json=flow_for_test(own_broker), timeout=30,
                              headers={"Node-RED-Deployment-Type": "full", "Node-RED-API-Version": "v1"})
        assert reply.status_code in (200, 204), reply.text
        yield url
        assert " [error] " not in log.read_text(), log.read_text()[-3000:]
    finally:
        process.terminate()
        process.wait(30)


def fire(url: str, name: str) -> None:
    nodes = requests.get(f"{url}/flows", headers={"Node-RED-API-Version": "v1"}, timeout=30).json()
    (inject,) = [n for n in nodes if n["type"] == "inject" and n["name"] == name]
    assert requests.post(f"{url}/inject/{inject['id']}", timeout=30).ok


def test_the_shipped_flow_switches_cycles_and_reports(node_red: str, own_broker: Broker, run_daemon: Any,
                                                       tmp_path: Path) -> None:
    demo = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    demo["defaults"]["cycle_delay"] = 0.3
    run_daemon(demo, own_broker)
    probe = Probe(own_broker)
    try:
        probe.subscribe(f"{OBSERVED}/#")

        def verdict(kind: str, action: str, start: int, timeout: float = 15) -> dict[str, Any]:
            msg = probe.wait_for(f"{OBSERVED}/{kind}", lambda m: json.loads(m.payload)["action"] == action,
                                 timeout, start)
            return json.loads(msg.payload)

        # the flow subscribes as it connects, after the deploy: fire ON until its ack comes back
        deadline = time.monotonic() + 30
        while True:
            seen = len(probe.messages)
            fire(node_red, "ON")
            try:
                ack = verdict("ok", "on", seen, timeout=2)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        assert ack["state"] == "ON" and (ack["pdu"], ack["port"]) == ("lab-pdu1", "1")
        probe.wait_for(f"{OBSERVED}/state", lambda m: m.payload == b"ON")
        for name, state in (("OFF", "OFF"), ("CYCLE", "ON")):
            seen = len(probe.messages)
            fire(node_red, name)
            ack = verdict("ok", name.lower(), seen)
            assert ack["status"] == "ok" and ack["state"] == state, ack
            probe.wait_for(f"{OBSERVED}/state", lambda m, s=state: m.payload == s.encode(), start=seen)
        seen = len(probe.messages)
        fire(node_red, "test: refused")
        ack = json.loads(probe.wait_for(f"{OBSERVED}/errors", start=seen).payload)
        assert ack["status"] == "error" and "unknown action 'fly'" in ack["error"], ack
        assert ack["state"] == "ON"  # the outlet it left alone
        assert len(probe.all(f"{OBSERVED}/errors")) == 1  # and only the refused command went there
    finally:
        probe.close()
