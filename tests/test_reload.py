"""Reloading the configuration while the daemon runs: PDUs added, removed and changed, a bad
config refused, keys that need a restart, reload under a burst of commands, and the SIGHUP
and ``pdumqtt reload`` path through a daemon in a child process."""

from __future__ import annotations

import itertools
import json
import logging
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from support import Broker, Probe, free_port, retained, run_cli, wait_until, write_config

from pdumqtt.config import load_config_data
from pdumqtt.reload import plan


def _config(unique: str, pdus: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"mqtt": {"client_id": unique, "base_topic": unique}, "pdus": pdus, **extra}


def _sim(ports: Any = 2, **options: Any) -> dict[str, Any]:
    return {"driver": "sim", "ports": ports, "retries": 0, **options}


def _reload(daemon: Any, tmp_path: Path, config: dict[str, Any]) -> Any:
    return daemon.reload(write_config(tmp_path, config, f"reload-{id(config)}.yaml"))


def test_reload_adds_removes_and_changes_pdus(daemon: Any, probe: Probe, broker: Broker, unique: str,
                                              tmp_path: Path) -> None:
    u = unique
    keep, gone, changed, added = f"{u}k", f"{u}g", f"{u}c", f"{u}a"
    ha = f"ha{u}"
    probe.subscribe(f"{u}/#")
    probe.subscribe(f"{ha}/#")
    first = _config(u, {keep: _sim(), gone: _sim(meter_interval=60), changed: _sim()},
                    homeassistant={"discovery": True, "prefix": ha})
    d = daemon(first)
    for name in (keep, gone, changed):
        probe.wait_for(f"{u}/{name}/availability", lambda m: m.payload == b"online")
    assert probe.request(f"{u}/{gone}/1/set", "ON")["status"] == "ok"
    probe.wait_for(f"{u}/{gone}/1/power", lambda m: m.payload != b"")
    probe.wait_for(f"{ha}/+/+/+/config", lambda m: f"{gone}_1" in m.topic and m.payload != b"")

    second = _config(u, {keep: _sim(), changed: _sim(ports=3), added: _sim()},
                     homeassistant={"discovery": True, "prefix": ha})
    outcome = _reload(d, tmp_path, second)
    assert outcome.ok, outcome.error
    assert (outcome.added, outcome.removed, outcome.changed, outcome.restart_needed) == \
        ([added], [gone], [changed], [])

    assert probe.request(f"{u}/{added}/2/set", "ON")["status"] == "ok"
    assert probe.request(f"{u}/{changed}/3/set", "ON")["status"] == "ok"  # its new port
    assert probe.request(f"{u}/{keep}/1/set", "ON")["status"] == "ok"
    refused = probe.request(f"{u}/{gone}/1/set", "ON")
    assert refused["status"] == "error" and "unknown PDU" in refused["error"]

    # the removed PDU's retained topics are emptied: availability, states, readings
    for topic in (f"{u}/{gone}/availability", f"{u}/{gone}/1/state", f"{u}/{gone}/1/power", f"{u}/{gone}/power"):
        probe.wait_for(topic, lambda m: m.payload == b"")
    wait_until(lambda: not retained(broker, f"{u}/{gone}/#"), 10, "the removed PDU's retained topics to go")
    # its Home Assistant entities are removed, the added PDU's appear
    probe.wait_for(f"{ha}/+/+/+/config", lambda m: f"{gone}_1" in m.topic and m.payload == b"")
    probe.wait_for(f"{ha}/+/+/+/config", lambda m: f"{added}_1" in m.topic and m.payload != b"")
    probe.wait_for(f"{ha}/+/+/+/config", lambda m: f"{changed}_3" in m.topic and m.payload != b"")
    assert not [m for m in retained(broker, f"{ha}/#") if gone in m.topic]

    info = json.loads(retained(broker, f"{u}/bridge/info")[0].payload)
    assert set(info["pdus"]) == {keep, changed, added}
    assert list(info["pdus"][changed]["ports"]) == ["1", "2", "3"]


def test_a_changed_pdu_finishes_the_command_under_way_and_keeps_its_queue(
        daemon: Any, probe: Probe, unique: str, tmp_path: Path) -> None:
    u, pdu = unique, f"{unique}p"
    calls = tmp_path / "calls.jsonl"
    d = daemon(_config(u, {pdu: _sim(ports=3, latency=0.3, journal=str(calls))}))
    probe.subscribe(f"{u}/+/+/ack")
    # the start's probe reads the three outlets (slowly) first: then nothing else runs
    wait_until(lambda: calls.exists() and len(calls.read_text().splitlines()) == 3, 10, "the first probe")
    for n, port in enumerate((1, 2, 3, 1)):
        probe.publish(f"{u}/{pdu}/{port}/set", json.dumps({"action": "on", "transaction": f"x{n}"}))
    wait_until(lambda: d.runner.waiting(pdu) == 3, 10, "the first command under way, three queued")
    outcome = _reload(d, tmp_path, _config(u, {pdu: _sim(ports=2, latency=0.0, journal=str(calls))}))
    assert outcome.changed == [pdu]
    probe.publish(f"{u}/{pdu}/2/set", json.dumps({"action": "off", "transaction": "x4"}))  # while it restarts
    acks = {json.loads(m.payload)["transaction"]: json.loads(m.payload)
            for m in probe.wait_count(f"{u}/+/+/ack", 5)}
    assert [acks[f"x{n}"]["status"] for n in range(5)] == ["ok", "ok", "error", "ok", "ok"]
    assert "port '3'" in acks["x2"]["error"] and "no longer in it" in acks["x2"]["error"]
    lines = [json.loads(line) for line in calls.read_text().splitlines()]
    lines.sort(key=lambda c: c["start"])
    assert all(b["start"] >= a["end"] for a, b in itertools.pairwise(lines)), "old and new worker overlapped"
    slow = [c for c in lines if c["end"] - c["start"] >= 0.25 and c["action"] == "on"]
    assert len(slow) == 1, "only the command under way ran on the old config"


def test_a_bad_config_keeps_the_old_one_running(daemon: Any, probe: Probe, unique: str, tmp_path: Path,
                                                caplog: Any) -> None:
    u, pdu = unique, f"{unique}p"
    d = daemon(_config(u, {pdu: _sim()}))
    bad = _config(u, {pdu: _sim(), f"{u}new": {"driver": "sim", "ports": "lots"}})
    with caplog.at_level(logging.ERROR, logger="pdumqtt.daemon"):
        outcome = _reload(d, tmp_path, bad)
    assert not outcome.ok and f"pdus.{u}new.ports" in outcome.error
    assert any(f"pdus.{u}new.ports" in r.getMessage() and "old configuration keeps running" in r.getMessage()
               for r in caplog.records)
    assert list(d.config.pdus) == [pdu]
    assert probe.request(f"{u}/{pdu}/1/set", "ON")["status"] == "ok"
    refused = probe.request(f"{u}/{u}new/1/set", "ON")
    assert refused["status"] == "error" and "unknown PDU" in refused["error"]


def test_mqtt_keys_that_need_a_reconnect_wait_for_a_restart() -> None:
    old = load_config_data({"mqtt": {"host": "a", "keepalive": 30}, "pdus": {"p": _sim()}})
    new = load_config_data({"mqtt": {"host": "b", "keepalive": 30, "max_command_age": 5},
                            "http": {"listen": "127.0.0.1:1"}, "pdus": {"p": _sim(), "q": _sim()}})
    change = plan(old, new)
    assert change.restart_needed == ["mqtt.host", "http"]
    assert change.config.mqtt["host"] == "a" and change.config.http is None
    assert change.config.mqtt["max_command_age"] == 5  # read per command: applied
    assert change.added == ["q"] and not change.changed
    assert plan(old, new, broker_given=True).restart_needed == ["http"]  # --broker: host is not used
    overridden = plan(load_config_data({"mqtt": {"client_id": "cli"}, "pdus": {"p": _sim()}}),
                      load_config_data({"pdus": {"p": _sim()}}), mqtt_overrides={"client_id": "cli"})
    assert overridden.restart_needed == []  # --client-id holds across the reload


def test_reload_under_load_answers_every_command_once(daemon: Any, probe: Probe, unique: str,
                                                      tmp_path: Path, caplog: Any) -> None:
    """A burst to four PDUs while six reloads remove, add back and change them: every
    transaction answered exactly once, and no two driver calls to one PDU overlap."""
    u = unique
    a, b, c, e = (f"{u}{x}" for x in "abce")
    calls = {name: tmp_path / f"{name}.jsonl" for name in (a, b, c, e)}

    def pdu(name: str, latency: float = 0.005) -> dict[str, Any]:
        return _sim(ports=4, latency=latency, journal=str(calls[name]), cycle_delay=0.05)

    one = _config(u, {a: pdu(a, latency=0.02), b: pdu(b), c: pdu(c)})  # a slow: its queue grows
    two = _config(u, {a: pdu(a, latency=0.03), c: pdu(c), e: pdu(e)})  # a changed, b removed, e added
    d = daemon(one)
    probe.subscribe(f"{u}/+/+/ack")
    probe.subscribe(f"{u}/+/availability")
    for name in (a, b, c):
        probe.wait_for(f"{u}/{name}/availability", lambda m: m.payload == b"online")

    total = 400
    actions = ("on", "off", "toggle", "cycle")
    sent: list[tuple[str, str]] = []

    def send() -> None:
        for n in range(total):
            target = (a, b, c, e)[n % 4]
            port = n // 4 % 4 + 1
            probe.publish(f"{u}/{target}/{port}/set",
                          json.dumps({"action": actions[n // 16 % 4], "transaction": f"tx{n}"}))
            sent.append((f"tx{n}", target))

    def answered() -> int:
        return len(probe.all(f"{u}/+/+/ack"))

    sender = threading.Thread(target=send)
    sender.start()
    caplog.set_level(logging.INFO, logger="pdumqtt.runner")
    for n in range(6):
        enough = min(total, answered() + 25)
        wait_until(lambda enough=enough: answered() >= enough or not sender.is_alive(), 30, "acks to come")
        outcome = _reload(d, tmp_path, two if n % 2 == 0 else one)
        assert outcome.ok, outcome.error
    sender.join(60)
    acks = [json.loads(m.payload) for m in probe.wait_count(f"{u}/+/+/ack", total, timeout=60)]
    counts = Counter(ack["transaction"] for ack in acks)
    assert set(counts) == {tx for tx, _ in sent} and set(counts.values()) == {1}, \
        f"lost {total - len(counts)}, doubled {sum(1 for v in counts.values() if v > 1)}"
    wait_until(lambda: d.runner.waiting(a) == 0, 10)
    assert answered() == total
    expected = (f"unknown PDU {b!r}", f"unknown PDU {e!r}", "cycle ended early", "refused: port")

    def kind(error: str) -> str:
        return next((prefix for prefix in expected if error.startswith(prefix)), error)

    errors = Counter(kind(ack["error"]) for ack in acks if ack["status"] == "error")
    assert set(errors) <= set(expected), errors
    by_pdu = Counter(ack["pdu"] for ack in acks if ack["status"] == "ok")
    assert by_pdu[a] > 0 and by_pdu[c] > 0
    for name, path in calls.items():
        if not path.exists():
            continue
        lines = sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda x: x["start"])
        assert all(y["start"] >= x["end"] for x, y in itertools.pairwise(lines)), f"calls to {name} overlapped"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"pdu {a}: restarted")]
    handed = sum(int(line.split(", ")[1].split()[0]) for line in lines)
    assert len(lines) >= 1
    print(f"\nreload under load: {total} commands, 6 reloads, {len(counts)} answered once, "
          f"0 lost, 0 doubled; errors {dict(errors)}; {a} restarted {len(lines)} times, {handed} queued "
          "commands handed to its new worker")


def test_sighup_and_pdumqtt_reload(daemon_process: Any, probe: Probe, broker: Broker, unique: str,
                                   state_directory: Path, tmp_path: Path) -> None:
    u = unique
    old, new = f"{u}old", f"{u}new"
    config = _config(u, {old: _sim()})
    config["mqtt"].update(host=broker.host, port=broker.port)
    proc = daemon_process(config)
    probe.subscribe(f"{u}/#")
    probe.wait_for(f"{u}/{old}/availability", lambda m: m.payload == b"online", timeout=20)
    pid_file = state_directory / f"{u}.pid"
    wait_until(pid_file.exists, 10, "the pid file")
    assert pid_file.read_text().strip() == str(proc.process.pid)

    path = proc.config_path
    config["pdus"][new] = _sim()
    write_config(path.parent, config, path.name)
    done = run_cli("reload", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert f"1 added ({new})" in done.stdout
    assert probe.request(f"{u}/{new}/1/set", "ON")["status"] == "ok"

    bad = json.loads(json.dumps(config))
    bad["pdus"][f"{u}bad"] = {"driver": "sim", "ports": "lots"}
    write_config(path.parent, bad, path.name)
    refused = run_cli("reload", "-c", str(path))
    assert refused.returncode == 2
    assert f"pdus.{u}bad.ports" in refused.stderr and "old configuration keeps running" in refused.stderr
    assert probe.request(f"{u}/{new}/1/set", "OFF")["status"] == "ok"

    del config["pdus"][old]
    write_config(path.parent, config, path.name)
    proc.process.send_signal(signal.SIGHUP)
    probe.wait_for(f"{u}/bridge/info", lambda m: m.payload and old not in json.loads(m.payload)["pdus"])
    probe.wait_for(f"{u}/{old}/availability", lambda m: m.payload == b"")

    proc.stop()
    output = proc.process.stdout.read()
    assert f"pdus.{u}bad.ports" in output and "reload refused" in output
    assert not pid_file.exists()
    gone = run_cli("reload", "-c", str(path))
    assert gone.returncode == 3 and "does not exist" in gone.stderr


def test_reload_with_metrics_and_the_status_page(daemon: Any, probe: Probe, unique: str, tmp_path: Path) -> None:
    from test_monitor import _get, _post, _sample

    u, old, new = unique, f"{unique}old", f"{unique}new"
    config = _config(u, {old: _sim()}, http={"listen": f"127.0.0.1:{free_port()}", "status_page": True})
    d = daemon(config)
    address = d.monitor.address
    probe.subscribe(f"{u}/+/availability")
    probe.wait_for(f"{u}/{old}/availability", lambda m: m.payload == b"online")
    assert _sample(_get(address, "/metrics")[1], "pdumqtt_pdu_online", pdu=old) == 1
    config["pdus"] = {new: _sim(ports=["dut1"])}
    assert _reload(d, tmp_path, config).ok
    status, ack = _post(address, f"/api/outlet/{new}/dut1/on")  # the page takes the new PDU's commands
    assert status == 200 and ack["status"] == "ok"
    wait_until(lambda: old not in d.feed.snapshot(), 10, "the removed PDU to leave the status page")
    assert set(d.feed.snapshot()[new]["ports"]) == {"dut1"}
    metrics = _get(address, "/metrics")[1]
    assert _sample(metrics, "pdumqtt_queue_depth", pdu=new) == 0
    assert _sample(metrics, "pdumqtt_pdu_online", pdu=old) is None
    assert _post(address, f"/api/outlet/{old}/1/on")[0] == 404
