"""The journal across restarts of the daemon (in this process), idle probes, and their config."""

from __future__ import annotations

import json
import queue
import sqlite3
import threading

import pytest
from support import run_cli, wait_until, write_config

from pdumqtt.commands import Command
from pdumqtt.config import ConfigError, load_config_data
from pdumqtt.drivers import sim
from pdumqtt.journal import Journal


def sim_pdu(**options: object) -> dict[str, object]:
    return {"driver": "sim", "ports": 4, "retries": 0, "timeout": 2, **options}


def test_a_copy_the_broker_sends_again_after_a_crash_before_the_puback_is_not_run_again(daemon, probe, unique):
    config = {"mqtt": {"client_id": unique}, "pdus": {unique: sim_pdu()}}
    first = daemon(config)
    first.journal.client = None  # the crash point: journalled and run, but no PUBACK ever left
    probe.subscribe(f"pdu/{unique}/+/ack")
    probe.publish(f"pdu/{unique}/1/set", "ON")
    probe.wait_for(f"pdu/{unique}/1/ack")
    first.stop()  # the broker still holds the message as unacknowledged in our session
    daemon(config)  # the broker delivers it again, flagged DUP, with the same packet id
    probe.publish(f"pdu/{unique}/2/set", "ON")  # in order behind the copy: once it is answered, the copy was seen
    probe.wait_for(f"pdu/{unique}/2/ack")
    assert sim.device(unique).switches == 2  # port 1 once, port 2 once
    assert len(probe.all(f"pdu/{unique}/1/ack")) == 1
    probe.publish(f"pdu/{unique}/1/set", "ON")  # the same message again, new: it runs
    probe.wait_count(f"pdu/{unique}/1/ack", 2)
    assert sim.device(unique).switches == 3


def test_a_client_retrying_a_transaction_after_a_restart_gets_the_first_ack(daemon, probe, unique):
    config = {"mqtt": {"client_id": unique}, "pdus": {unique: sim_pdu()}}
    first = daemon(config)
    payload = json.dumps({"action": "toggle", "transaction": "retry-me"})
    ack = probe.request(f"pdu/{unique}/3/set", payload)
    assert (ack["status"], ack["state"]) == ("ok", "ON")
    wait_until(lambda: not first.journal._sent, 5, "the broker to have the ack")
    first.stop()
    daemon(config)
    assert probe.request(f"pdu/{unique}/3/set", payload) == ack  # not toggled back
    assert sim.device(unique).switches == 1


def test_an_idle_pdu_that_vanishes_goes_offline_and_comes_back(daemon, probe, unique):
    daemon({"pdus": {unique: sim_pdu(poll_interval=0.2)}})
    probe.subscribe(f"pdu/{unique}/availability")
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
    seen = len(probe.messages)
    sim.device(unique).reachable = False  # no command is sent: only the idle probe can notice
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline", start=seen)
    seen = len(probe.messages)
    sim.device(unique).reachable = True
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", start=seen)


def test_cycle_delay_above_max_cycle_delay_is_a_config_error():
    with pytest.raises(ConfigError, match=r"pdus\.p\.cycle_delay: 400 s is above max_cycle_delay \(300 s\)"):
        load_config_data({"pdus": {"p": sim_pdu(cycle_delay=400)}})
    assert load_config_data({"pdus": {"p": sim_pdu()}}).pdus["p"].poll_interval == 60


def test_an_unusable_state_dir_exits_2_naming_it(tmp_path):
    (tmp_path / "file").write_text("")
    path = write_config(tmp_path, {"state_dir": str(tmp_path / "file" / "state"), "pdus": {"p": sim_pdu()},
                                   "mqtt": {"host": "127.0.0.1", "port": 9}})
    done = run_cli("daemon", "-c", str(path), timeout=30)
    assert done.returncode == 2, done.stderr
    assert "state_dir: state directory" in done.stderr and "Not a directory" in done.stderr


def test_a_command_another_daemon_had_started_is_journalled_as_running(tmp_path):
    from pdumqtt.commands import Command
    from pdumqtt.journal import RUNNING, Journal, Resume

    path = tmp_path / "standby.journal"
    journal, handed_on = Journal(path, 60), []
    journal.submit = handed_on.append
    journal.open()
    journal.start()
    try:
        command = Command(action="on", pdu="p", port="1", number=1, transaction="t1")
        journal.accept_interrupted(command)  # a fleet's takeover (pdumqtt/fleet.py)
        wait_until(lambda: handed_on, 5, "the command to be handed on")
        assert journal.resume_of(command) == Resume(RUNNING)  # answered as a crash leaves it, not run
    finally:
        journal.close()
    again = Journal(path, 60)  # the standby crashed before answering it: still not to be run
    again.open()
    try:
        pending = again.recover().pending
        assert [c.transaction for c in pending] == ["t1"] and again.resume_of(pending[0]) == Resume(RUNNING)
    finally:
        again.close()


def test_updates_from_many_workers_at_once_are_each_committed_before_the_call_returns(tmp_path):
    journal = Journal(tmp_path / "j.journal", 60)
    journal.open()
    taken: queue.SimpleQueue[Command] = queue.SimpleQueue()
    journal.submit = taken.put
    journal.start()
    commands = [Command(action="on", pdu="p", port=str(n), number=n, transaction=f"t{n}") for n in range(200)]
    for command in commands:
        journal.accept(command)
    for _ in commands:
        taken.get(timeout=5)
    seen: dict[int, tuple[str, bytes | None]] = {}

    def worker(mine: list[Command]) -> None:
        reader = sqlite3.connect(tmp_path / "j.journal")  # another connection sees only what is committed
        for command in mine:
            journal.running(command)
            assert reader.execute("SELECT state FROM commands WHERE id = ?", (command.journal_id,)).fetchone() == \
                ("running",)
            journal.done(command, f"ack {command.number}".encode())
            seen[command.number] = reader.execute("SELECT state, ack FROM commands WHERE id = ?",
                                                  (command.journal_id,)).fetchone()
        reader.close()

    threads = [threading.Thread(target=worker, args=(commands[i::10],)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    journal.close()
    assert seen == {n: ("done", f"ack {n}".encode()) for n in range(200)}
    again = Journal(tmp_path / "j.journal", 60)
    again.open()
    found = again.recover()
    again.close()
    assert sorted((c.number, ack) for c, ack in found.unanswered) == [(n, f"ack {n}".encode()) for n in range(200)]
    assert not found.pending
