"""Several daemons, one fleet (pdumqtt/fleet.py): two daemons with one PDU never both drive it,
a standby takes over when the owner is killed or frozen and runs what it left unanswered once
(but not again what it had started), the old owner coming back stays out, and all of it through
two bridged brokers."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Broker, Probe, free_port, retained, run_cli, start_daemon, start_mosquitto, wait_until, write_config

SETTLE = 0.3


def _config(unique: str, pdu: str, calls: Path, client_id: str, standby: bool = False,
            keepalive: int = 2) -> dict[str, Any]:
    return {"mqtt": {"base_topic": unique, "client_id": client_id, "keepalive": keepalive},
            "fleet": {"settle": SETTLE, "standby": [pdu] if standby else []},
            "pdus": {pdu: {"driver": "sim", "ports": 4, "retries": 0, "poll_interval": 3600,
                           "latency": 0.02, "journal": str(calls)}}}


def _calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _no_overlap(path: Path) -> None:
    calls = sorted(_calls(path), key=lambda c: c["start"])
    overlaps = [(a, b) for a, b in itertools.pairwise(calls) if b["start"] < a["end"]]
    assert not overlaps, f"two driver calls overlapped: {overlaps[:3]}"


def _retained_json(broker: Broker, topic: str) -> dict[str, Any] | None:
    found = [m for m in retained(broker, topic) if m.payload]
    return json.loads(found[-1].payload) if found else None


def _send(probe: Probe, unique: str, pdu: str, transactions: range) -> None:
    for n in transactions:
        probe.publish(f"{unique}/{pdu}/{n % 4 + 1}/set",
                      json.dumps({"action": "on" if n % 2 else "off", "transaction": f"x{n}"}))


def _acks(probe: Probe, unique: str) -> Counter[str]:
    """Answers per transaction. The same ack again is not a second answer: a restarted daemon's
    journal sends again the acks it cannot know reached the broker (killed before the PUBACK)."""
    answers = {m.payload for m in probe.all(f"{unique}/+/+/ack")}
    return Counter(json.loads(payload)["transaction"] for payload in answers)


def test_two_daemons_with_one_pdu_never_both_drive_it(broker: Broker, probe: Probe, unique: str,
                                                      tmp_path: Path) -> None:
    pdu, calls = f"{unique}p", tmp_path / "calls.jsonl"
    probe.subscribe(f"{unique}/#")
    daemons = [start_daemon(_config(unique, pdu, calls, f"{unique}-{name}"), broker) for name in ("b", "a")]
    try:
        # exactly one owns it (whichever claimed first, or the lowest id in a race); the other keeps out
        wait_until(lambda: sum(pdu in d.fleet.conflicts for d in daemons) == 1
                   and sum(d.fleet.owns(pdu) for d in daemons) == 1, 5, "the claims to settle")
        winner, loser = sorted(daemons, key=lambda d: pdu in d.fleet.conflicts)
        assert winner.fleet.owns(pdu) and not loser.fleet.owns(pdu)
        assert loser.fleet.conflicts[pdu] == winner.fleet.me
        assert pdu not in loser.runner.workers, "the loser must not even probe the PDU"
        owner = _retained_json(broker, f"{unique}/{pdu}/owner")
        assert owner is not None and (owner["daemon"], owner["state"]) == (winner.fleet.me, "owned")
        info = _retained_json(broker, f"{unique}/bridge/daemons/{loser.fleet.me}")
        assert info is not None and info["conflicts"] == {pdu: winner.fleet.me}
        assert loser.bridge.info()["fleet"] == {"daemon": loser.fleet.me, "owned": [], "standby": [],
                                                "conflicts": {pdu: winner.fleet.me}}
        assert winner.bridge.info()["fleet"]["owned"] == [pdu]

        shown = run_cli("status", "--base-topic", unique, env={"PDUMQTT_BROKER": broker.address})
        assert shown.returncode == 0, shown.stderr
        fleet_line = [line.split() for line in shown.stdout.splitlines() if line.startswith(pdu) and "owned" in line]
        assert fleet_line == [[pdu, winner.fleet.me, "owned", "-", loser.fleet.me]], shown.stdout

        _send(probe, unique, pdu, range(40))
        wait_until(lambda: len(_acks(probe, unique)) == 40, 10, "40 acks")
        assert set(_acks(probe, unique).values()) == {1}, "each command answered once"
        assert len([c for c in _calls(calls) if c["action"] in ("on", "off")]) == 40, "each command driven once"
        _no_overlap(calls)

        # a command that cannot run is refused once, by the owner, not by each daemon that has the PDU
        probe.publish(f"{unique}/{pdu}/1/set", "dance")
        assert probe.request(f"{unique}/{pdu}/2/set", "ON")["status"] == "ok"  # after it: its refusals are in
        refusals = [json.loads(m.payload) for m in probe.all(f"{unique}/{pdu}/1/ack")
                    if json.loads(m.payload)["status"] == "error"]
        assert len(refusals) == 1 and refusals[0]["state"] is not None, refusals  # the owner knows the state
    finally:
        for d in daemons:
            d.stop()


@pytest.fixture
def daemon_processes(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _spawn(tmp_path: Path, config: dict[str, Any], broker: Broker, name: str) -> subprocess.Popen[str]:
    path = write_config(tmp_path, {**config, "mqtt": {**config["mqtt"], "host": broker.host,
                                                      "port": broker.port}}, f"{name}.yaml")
    return subprocess.Popen([sys.executable, "-m", "pdumqtt", "daemon", "-c", str(path)], text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))


def _takeover(owner_broker: Broker, standby_broker: Broker, client_broker: Broker, unique: str,
              tmp_path: Path, started: list[subprocess.Popen[str]], freeze: bool = False) -> dict[str, float]:
    """The owner (a child process) is SIGKILLed (or frozen, SIGSTOP) between two bursts of
    commands; the standby (here) takes over, and the old owner (restarted, or woken) stays out."""
    pdu, calls = f"{unique}p", tmp_path / "calls.jsonl"
    probe = Probe(client_broker)
    probe.subscribe(f"{unique}/#")
    primary = f"{unique}-a"
    started.append(_spawn(tmp_path, _config(unique, pdu, calls, primary), owner_broker, "primary"))
    probe.wait_for(f"{unique}/{pdu}/owner", lambda m: b'"owned"' in m.payload and primary.encode() in m.payload)
    standby = start_daemon(_config(unique, pdu, calls, f"{unique}-z", standby=True), standby_broker)
    try:
        wait_until(lambda: _retained_json(client_broker, f"{unique}/bridge/daemons/{unique}-z"), 5,
                   "the standby's liveness record")
        # the owner's silence means its death only on one broker: across a bridge, only its will does
        wait_until(lambda: primary in standby.fleet.live, 5, "the standby to read the owner's liveness record")
        with standby.fleet._cond:  # that record handled
            assert (primary in standby.fleet._beating) == (owner_broker is standby_broker)
        _send(probe, unique, pdu, range(20))
        wait_until(lambda: len(_acks(probe, unique)) == 20, 10, "the owner's 20 acks")
        wait_until(lambda: not standby.fleet._held.get(pdu), 5, "the standby to see every ack")

        started[0].send_signal(signal.SIGSTOP if freeze else signal.SIGKILL)
        killed = time.monotonic()
        _send(probe, unique, pdu, range(20, 40))  # while the owner is gone: kept, then run once
        wait_until(lambda: standby.fleet.owns(pdu), 15, "the standby to take over")
        took = standby.fleet.took_over[pdu]
        wait_until(lambda: len(_acks(probe, unique)) == 40, 10, "every command answered")
        acks = _acks(probe, unique)
        assert {n: c for n, c in acks.items() if c != 1} == {}, "commands doubled"
        assert len(acks) == 40, "commands lost"
        assert len([c for c in _calls(calls) if c["action"] in ("on", "off")]) == 40
        _no_overlap(calls)
        after = {"kill_to_takeover": took - killed,
                 "will_to_takeover": took - standby.fleet.will_seen.get(primary, killed),
                 "by_silence": primary in standby.fleet.silence_seen}

        # the old owner back: it finds a live owner and stays out; woken, it does not run what its
        # socket still holds (the commands the broker handed it while it was frozen)
        if freeze:
            started[0].send_signal(signal.SIGCONT)
        else:
            started.append(_spawn(tmp_path, _config(unique, pdu, calls, primary), owner_broker, "primary-again"))
        wait_until(lambda: (_retained_json(client_broker, f"{unique}/bridge/daemons/{primary}") or {})
                   .get("conflicts") == {pdu: f"{unique}-z"}, 10, "the old owner to see the new one")
        assert standby.fleet.owns(pdu)
        assert probe.request(f"{unique}/{pdu}/1/set", "ON")["status"] == "ok"
        assert set(_acks(probe, unique).values()) == {1}
        assert len([c for c in _calls(calls) if c["action"] in ("on", "off")]) == 41, "a command ran twice"
        owner = _retained_json(client_broker, f"{unique}/{pdu}/owner")
        assert owner is not None and owner["daemon"] == f"{unique}-z"
        return after
    finally:
        standby.stop()
        probe.close()


def test_standby_takes_over_when_the_owner_is_killed(broker: Broker, unique: str, tmp_path: Path,
                                                     daemon_processes: list[subprocess.Popen[str]]) -> None:
    times = _takeover(broker, broker, broker, unique, tmp_path, daemon_processes)
    print(f"takeover: {times}")
    # the part the fleet controls: from the Last Will to owning (the settle window, then the claim)
    assert times["will_to_takeover"] <= SETTLE + 1.0
    assert times["kill_to_takeover"] <= 2 * 1.5 + 1.0  # keepalive x 1.5 plus a second


def test_standby_takes_over_a_frozen_owner(broker: Broker, unique: str, tmp_path: Path,
                                           daemon_processes: list[subprocess.Popen[str]]) -> None:
    times = _takeover(broker, broker, broker, unique, tmp_path, daemon_processes, freeze=True)
    print(f"takeover of a frozen owner: {times}")
    # the owner's beats stop: the standby does not wait for the broker's Last Will (mosquitto
    # fires it 3 to 7.5 s after, with keepalive 2: its keepalive check is coarse)
    assert times["kill_to_takeover"] <= 2 * 1.5 + 1.0  # keepalive x 1.5 plus a second


def test_a_command_the_owner_started_is_not_run_again_by_the_standby(
        broker: Broker, probe: Probe, unique: str, tmp_path: Path,
        daemon_processes: list[subprocess.Popen[str]]) -> None:
    pdu, calls = f"{unique}p", tmp_path / "calls.jsonl"
    probe.subscribe(f"{unique}/#")
    primary = f"{unique}-a"
    slow = _config(unique, pdu, calls, primary)
    slow["pdus"][pdu]["switch_latency"] = 8.0  # the owner is killed in the middle of its first switch
    daemon_processes.append(_spawn(tmp_path, slow, broker, "primary"))
    probe.wait_for(f"{unique}/{pdu}/owner", lambda m: b'"owned"' in m.payload and primary.encode() in m.payload)
    standby = start_daemon(_config(unique, pdu, calls, f"{unique}-z", standby=True), broker)
    try:
        wait_until(lambda: _retained_json(broker, f"{unique}/bridge/daemons/{unique}-z"), 5,
                   "the standby's liveness record")
        _send(probe, unique, pdu, range(1))  # x0: OFF port 1, the slow one
        wait_until(lambda: [c.running for c in standby.fleet._held.get(pdu, ())] == [True], 5,
                   "the standby to hear that the owner started x0")
        _send(probe, unique, pdu, range(1, 4))  # x1 to x3: queued behind it on the owner
        wait_until(lambda: len(standby.fleet._held.get(pdu, ())) == 4, 5, "the standby's copies")
        daemon_processes[0].send_signal(signal.SIGKILL)
        wait_until(lambda: standby.fleet.owns(pdu), 10, "the standby to take over")
        wait_until(lambda: len(_acks(probe, unique)) == 4, 10, "every command answered")
        assert set(_acks(probe, unique).values()) == {1}, "each command answered once"
        answers = {json.loads(m.payload)["transaction"]: json.loads(m.payload)
                   for m in probe.all(f"{unique}/+/+/ack")}
        assert answers["x0"]["status"] == "error"
        assert answers["x0"]["error"].startswith("outcome unknown: the daemon stopped while this OFF ran")
        assert "(not run again)" in answers["x0"]["error"] and "the outlet reads OFF now" in answers["x0"]["error"]
        assert [answers[f"x{n}"]["status"] for n in range(1, 4)] == ["ok"] * 3
        switches = Counter(c["port"] for c in _calls(calls) if c["action"] in ("on", "off"))
        assert switches == {2: 1, 3: 1, 4: 1}, "x0 switched again, or a later one not once"
        assert any(c["port"] == 1 and c["action"] == "get" for c in _calls(calls)), "x0's outlet read back"
    finally:
        standby.stop()


@pytest.fixture
def bridged(tmp_path: Path, broker: Broker) -> Iterator[Broker]:
    """A second mosquitto, bridged to the session's: ``pdu``-like topics flow both ways."""
    far = start_mosquitto(tmp_path, extra=(
        "allow_anonymous true\n"
        f"connection fleet-test\naddress {broker.host}:{broker.port}\n"
        "topic # both 1\ncleansession true\ntry_private true\n"
        "bridge_protocol_version mqttv50\nrestart_timeout 1\n"))
    wait_until(lambda: _bridge_up(broker, far), 10, "the bridge between the brokers")
    yield far
    far.process.terminate()
    far.process.wait(10)


def _bridge_up(near: Broker, far: Broker) -> bool:
    a, b = Probe(near), Probe(far)
    try:
        b.subscribe(f"{a.reply_topic}/ping")
        a.publish(f"{a.reply_topic}/ping", b"x")
        try:
            b.wait_for(f"{a.reply_topic}/ping", timeout=0.5)
            return True
        except AssertionError:
            return False
    finally:
        a.close()
        b.close()


def test_bridged_brokers_command_ack_and_takeover(broker: Broker, bridged: Broker, unique: str,
                                                  tmp_path: Path,
                                                  daemon_processes: list[subprocess.Popen[str]]) -> None:
    # the owner on one broker, the standby and the client on the other
    times = _takeover(broker, bridged, bridged, unique, tmp_path, daemon_processes)
    print(f"takeover across the bridge: {times}")
    assert times["kill_to_takeover"] <= 2 * 1.5 + 1.0


def test_a_listener_command_reaching_a_daemon_that_does_not_drive_the_pdu_names_the_owner(
        broker: Broker, probe: Probe, unique: str, tmp_path: Path) -> None:
    pdu, calls = f"{unique}p", tmp_path / "calls.jsonl"
    config = _config(unique, pdu, calls, f"{unique}-z", standby=True)
    config["pdudaemon"] = {"listen": f"127.0.0.1:{free_port()}"}
    owner = start_daemon(_config(unique, pdu, calls, f"{unique}-a"), broker)
    try:
        wait_until(lambda: owner.fleet.owns(pdu), 5, "the owner to own the PDU")
        standby = start_daemon(config, broker)
        try:
            wait_until(lambda: standby.fleet.driven_by(pdu) == f"{unique}-a", 5, "the standby to know the owner")
            host, port = standby.listener.address
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://{host}:{port}/power/control/on?hostname={pdu}&port=1", timeout=10)
            assert refused.value.code == 503
            assert f"PDU '{pdu}' is driven by daemon '{unique}-a'" in refused.value.read().decode()
            assert not [c for c in _calls(calls) if c["action"] == "on"]
        finally:
            standby.stop()
    finally:
        owner.stop()


def test_an_owner_that_loses_its_pdu_stops_probing_it_and_leaves_its_topics(broker: Broker, probe: Probe,
                                                                             unique: str, tmp_path: Path) -> None:
    pdu, calls = f"{unique}p", tmp_path / "calls.jsonl"
    config = _config(unique, pdu, calls, f"{unique}-a")
    config["pdus"][pdu]["poll_interval"] = 0.2
    owner = start_daemon(config, broker)
    try:
        wait_until(lambda: owner.fleet.owns(pdu) and _calls(calls), 5, "the owner to own and probe the PDU")
        # another daemon says it owns the PDU (it took the owner for gone): the owner yields, and its
        # worker goes, so that it reads the PDU no more
        probe.publish(f"{unique}/{pdu}/owner", json.dumps({"daemon": f"{unique}-z", "state": "owned"}), retain=True)
        wait_until(lambda: pdu not in owner.runner.workers, 5, "the owner's worker to go")
        assert pdu not in owner.fleet.owned and owner.fleet.conflicts == {pdu: f"{unique}-z"}
        with owner.runner._lock:  # the worker's end is handled
            pass
        probe.subscribe(f"{unique}/bridge/info")
        said = len(probe.all(f"{unique}/bridge/info"))
        owner.bridge.publish_info()  # after whatever the owner published before: the broker has that too
        probe.wait_count(f"{unique}/bridge/info", said + 1)
        assert [m.payload for m in retained(broker, f"{unique}/{pdu}/availability")] == [b"online"], \
            "the PDU's topics are the new owner's: not emptied"
    finally:
        owner.stop()


def test_a_race_of_claims_goes_to_the_lowest_client_id(broker: Broker, unique: str, tmp_path: Path) -> None:
    pdu, calls = f"{unique}p", tmp_path / "calls.jsonl"
    configs = [_config(unique, pdu, calls, f"{unique}-{name}") for name in ("b", "a")]
    for config in configs:
        config["fleet"]["settle"] = 1.5  # both start within it
    daemons: list[Any] = []
    threads = [threading.Thread(target=lambda c=c: daemons.append(start_daemon(c, broker))) for c in configs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    try:
        assert len(daemons) == 2
        wait_until(lambda: any(d.fleet.owns(pdu) for d in daemons) and any(d.fleet.conflicts for d in daemons), 5,
                   "the race to end")
        assert [d.fleet.me for d in daemons if d.fleet.owns(pdu)] == [f"{unique}-a"]
    finally:
        for d in daemons:
            d.stop()


def test_daemons_with_different_pdus_answer_only_their_own(broker: Broker, probe: Probe, unique: str,
                                                           tmp_path: Path) -> None:
    mine, theirs = f"{unique}m", f"{unique}t"
    daemons = [start_daemon(_config(unique, pdu, tmp_path / f"{pdu}.jsonl", f"{unique}-{pdu}"), broker)
               for pdu in (mine, theirs)]
    try:
        probe.subscribe(f"{unique}/+/+/ack")
        wait_until(lambda: daemons[0].fleet.owns(mine) and daemons[1].fleet.owns(theirs), 5, "both to own theirs")
        assert probe.request(f"{unique}/{mine}/1/set", "ON")["status"] == "ok"
        assert probe.request(f"{unique}/{theirs}/1/set", "ON")["status"] == "ok"
        probe.request(f"{unique}/{mine}/2/set", "ON")  # after the others: their acks are in
        assert len(probe.all(f"{unique}/+/+/ack")) == 3, "each answered once, by its own daemon"
    finally:
        for d in daemons:
            d.stop()


def test_standby_must_name_a_pdu_of_the_config() -> None:
    from pdumqtt.config import ConfigError, load_config_data

    with pytest.raises(ConfigError, match=r"fleet\.standby: 'nope'"):
        load_config_data({"fleet": {"standby": ["nope"]}, "pdus": {"p": {"driver": "sim", "ports": 1}}})
    assert load_config_data({"fleet": None, "pdus": {"p": {"driver": "sim", "ports": 1}}}).fleet == \
        {"standby": [], "settle": 1.0}
    assert load_config_data({"pdus": {"p": {"driver": "sim", "ports": 1}}}).fleet is None


@pytest.mark.parametrize("name", ["primary", "standby"])
def test_the_example_configs_load(name: str) -> None:
    from pdumqtt.config import load_config

    config = load_config(Path(__file__).resolve().parent.parent / "examples" / "fleet" / f"{name}.yaml")
    assert config.fleet is not None and set(config.pdus) == {"lab-pdu-1", "lab-pdu-2"}
