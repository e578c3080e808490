"""Crashes: the daemon SIGKILLed mid-burst, mid-cycle and mid-call, and the broker restarted.

The daemon runs as a child process, as a user runs it; its outlets are the ``sim``
driver's, which writes one line per driver call to a file (``journal`` option), so the
test counts what was executed across the daemon's deaths. A command is *lost* when it
never gets an ack, *doubled* when it switched its outlet more than once. Each test
prints its figures to the terminal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import Broker, Probe, free_port, start_mosquitto, wait_until


def _config(broker: Broker, name: str, client_id: str, calls: Path, **pdu: Any) -> dict[str, Any]:
    return {"mqtt": {"host": broker.host, "port": broker.port, "client_id": client_id},
            "pdus": {name: {"driver": "sim", "ports": 200, "retries": 0, "timeout": 5, "journal": str(calls),
                            **pdu}}}


def _started(broker: Broker, name: str) -> None:
    """Wait until a first daemon has subscribed: it says its PDU's availability after its SUBSCRIBE."""
    probe = Probe(broker)
    try:
        probe.subscribe(f"pdu/{name}/availability")
        probe.wait_for(f"pdu/{name}/availability", timeout=20)
    finally:
        probe.close()


def _calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _output(proc: Any) -> str:
    if proc.process.poll() is None:
        return "(still running)"
    return proc.process.stdout.read()[-3000:] if proc.process.stdout else ""


class _Sender:
    """A client with a session of its own that survives broker restarts: sends commands, collects acks."""

    def __init__(self, broker: Broker, ack_topic: str) -> None:
        self.acks: dict[str, list[dict[str, Any]]] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sender-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(ack_topic, qos=1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, "the sender to connect")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        ack = json.loads(message.payload)
        self.acks.setdefault(ack["port"], []).append(ack)

    def send(self, topic: str, payload: str) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _count(ports: range, calls: list[dict[str, Any]], acks: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    switched = Counter(c["port"] for c in calls if c["action"] == "on")
    return {
        "commands": len(ports),
        "lost": sum(1 for port in ports if str(port) not in acks),
        "doubled": sum(1 for port in ports if switched[port] > 1),
        "unknown_outcome": sum(1 for port in ports
                               if any("outcome unknown" in (a["error"] or "") for a in acks.get(str(port), []))),
        "ack_delivered_twice": sum(1 for port in ports if len(acks.get(str(port), [])) > 1),
        "ok_not_run": sum(1 for port in ports
                          if any(a["status"] == "ok" for a in acks.get(str(port), [])) and not switched[port]),
    }


def _burst(sender: _Sender, name: str) -> range:
    """One plain ON per outlet, no transaction id (so only the journal can tell a copy from a new one):
    an outlet switched twice is a command run twice."""
    ports = range(1, 201)
    for port in ports:
        sender.send(f"pdu/{name}/{port}/set", "ON")
    return ports


def _report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Figures go to the terminal even when pytest captures output."""
    with capsys.disabled():
        print(f"\n  {line}")


def test_daemon_sigkilled_twice_mid_burst_loses_and_doubles_nothing(daemon_process, broker, unique, tmp_path,
                                                                    capsys):
    calls = tmp_path / "calls"
    config = _config(broker, unique, unique, calls, latency=0.005)
    sender = _Sender(broker, f"pdu/{unique}/+/ack")
    try:
        proc = daemon_process(config)
        _started(broker, unique)
        ports = _burst(sender, unique)
        kills = 0
        for at in (40, 110):
            wait_until(lambda at=at: len(sender.acks) >= at, 30, f"{at} acks before the kill")
            proc.process.send_signal(signal.SIGKILL)
            proc.process.wait(10)
            kills += 1
            proc = daemon_process(config)
        wait_until(lambda: all(str(p) in sender.acks for p in ports), 40, "an ack for every command")
        figures = _count(ports, _calls(calls), sender.acks)
    finally:
        sender.close()
    _report(capsys, f"daemon SIGKILL x{kills} mid-burst: {figures}")
    assert figures["lost"] == 0 and figures["doubled"] == 0 and figures["ok_not_run"] == 0, figures


def test_a_cycle_interrupted_by_sigkill_is_completed_at_restart_and_answered(daemon_process, broker, probe,
                                                                              unique, tmp_path, capsys):
    calls = tmp_path / "calls"
    config = _config(broker, unique, unique, calls)
    proc = daemon_process(config)
    _started(broker, unique)
    probe.subscribe(f"pdu/{unique}/1/ack")
    probe.publish(f"pdu/{unique}/1/set", json.dumps({"action": "cycle", "delay": 2, "transaction": "reboot-1"}))
    wait_until(lambda: any(c["action"] == "off" for c in _calls(calls)), 15, "the cycle's off")
    proc.process.send_signal(signal.SIGKILL)
    proc.process.wait(10)
    proc = daemon_process(config)
    ack = json.loads(probe.wait_for(f"pdu/{unique}/1/ack", timeout=20).payload)
    switches = [c for c in _calls(calls) if c["action"] != "get"]
    assert (ack["transaction"], ack["status"], ack["state"]) == ("reboot-1", "ok", "ON"), ack
    assert [c["action"] for c in switches] == ["off", "on"], switches
    off_for = switches[1]["start"] - switches[0]["end"]  # CLOCK_MONOTONIC: one clock for both processes
    _report(capsys, f"cycle SIGKILLed during its delay: off {off_for:.2f} s of 2 s across the restart, "
                    f"then ON; ack {ack['status']}, state {ack['state']}")
    assert off_for >= 1.9
    assert len(probe.all(f"pdu/{unique}/1/ack")) == 1


def test_a_switch_under_way_at_sigkill_is_answered_as_unknown_and_not_run_again(daemon_process, broker, probe,
                                                                                unique, tmp_path, capsys):
    started, pidfile = tmp_path / "started", tmp_path / "pid"
    hang = f'echo $$ > {pidfile}; echo "$1" >> {started}; exec sleep 300'
    config = {"mqtt": {"host": broker.host, "port": broker.port, "client_id": unique},
              "pdus": {unique: {"driver": "localcmdline", "ports": 2, "retries": 0, "timeout": 60,
                                "cmd_on": ["sh", "-c", hang, "sh", "{port}"], "cmd_off": ["true"],
                                "cmd_get": ["echo", "off"]}}}
    proc = daemon_process(config)
    _started(broker, unique)
    probe.subscribe(f"pdu/{unique}/2/ack")
    probe.publish(f"pdu/{unique}/2/set", json.dumps({"action": "on", "transaction": "hung-1"}))
    wait_until(lambda: started.exists() and pidfile.exists() and pidfile.read_text().strip(), 15, "the call to start")
    proc.process.send_signal(signal.SIGKILL)
    proc.process.wait(10)
    os.kill(int(pidfile.read_text()), signal.SIGKILL)  # a SIGKILLed daemon cannot end its children
    proc = daemon_process(config)
    ack = json.loads(probe.wait_for(f"pdu/{unique}/2/ack", timeout=20).payload)
    _report(capsys, f"ON SIGKILLed during its driver call: {ack['status']}: {ack['error']}")
    assert (ack["transaction"], ack["status"], ack["state"]) == ("hung-1", "error", "OFF")
    assert "outcome unknown" in ack["error"] and "reads OFF now" in ack["error"]
    assert started.read_text().split() == ["2"]  # not run again


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Any:
    """A mosquitto that saves its sessions and queued messages when it stops, restartable on its port."""
    store = tmp_path / "mosquitto-store"
    store.mkdir()
    extra = f"persistence true\npersistence_location {store}/\nallow_anonymous true\n"
    port = free_port()
    brokers = [start_mosquitto(tmp_path, port, extra)]

    def restart() -> Broker:
        brokers[-1].process.send_signal(signal.SIGTERM)  # mosquitto writes its store on the way out
        brokers[-1].process.wait(10)
        brokers.append(start_mosquitto(tmp_path, port, extra))
        return brokers[-1]

    yield brokers[0], restart
    for b in brokers:
        if b.process.poll() is None:
            b.process.terminate()
            b.process.wait(10)


def test_broker_restarted_three_times_mid_burst_loses_and_doubles_nothing(daemon_process, persistent_broker,
                                                                          unique, tmp_path, capsys):
    broker, restart = persistent_broker
    calls = tmp_path / "calls"
    config = _config(broker, unique, unique, calls, latency=0.005)
    config["mqtt"]["session_expiry"] = 600
    proc = daemon_process(config)
    _started(broker, unique)
    sender = _Sender(broker, f"pdu/{unique}/+/ack")
    try:
        ports = _burst(sender, unique)
        for at in (30, 80, 130):
            wait_until(lambda at=at: len(sender.acks) >= at, 40, f"{at} acks before the broker restart")
            restart()
        wait_until(lambda: all(str(p) in sender.acks for p in ports), 40, "an ack for every command")
        figures = _count(ports, _calls(calls), sender.acks)
    finally:
        sender.close()
    assert proc.process.poll() is None, _output(proc)
    _report(capsys, f"broker restarted x3 mid-burst (persistence): {figures}")
    assert figures["lost"] == 0 and figures["doubled"] == 0 and figures["ok_not_run"] == 0, figures


def test_the_state_directory_is_where_the_journal_lives(tmp_path, unique, broker):
    """A daemon with state_dir set writes its journal there; a second one with the same client id refuses."""
    config = _config(broker, unique, unique, tmp_path / "calls")
    config["state_dir"] = str(tmp_path / "state")
    path = tmp_path / "a.yaml"
    path.write_text(json.dumps(config))
    first = subprocess.Popen([sys.executable, "-m", "pdumqtt", "daemon", "-c", str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (tmp_path / "state" / f"{unique}.journal").exists(), 15, "the journal file")
        second = subprocess.run([sys.executable, "-m", "pdumqtt", "daemon", "-c", str(path)],
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert "state_dir:" in second.stderr and "in use by another pdumqtt with the same client id" in second.stderr
    finally:
        first.terminate()
        first.wait(10)
