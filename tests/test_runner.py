"""The runner's threads: one per PDU, one watchdog for all, and a hung driver call given up on
without a second call ever starting beside it (pdumqtt/runner.py)."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from pathlib import Path

from support import wait_until, write_config

from pdumqtt.drivers import sim

WATCHDOG = "runner-watchdog"


def sim_pdu(**options: object) -> dict[str, object]:
    return {"driver": "sim", "ports": 2, "retries": 0, "timeout": 2, **options}


def threads_of(pdu: str) -> list[threading.Thread]:
    """The threads that serve PDU ``pdu``: its worker's, and any stuck in its driver."""
    return [t for t in threading.enumerate() if t.name == f"pdu-{pdu}" or t.name.startswith(f"pdu-{pdu} ")]


def stuck_threads(pdu: str) -> list[threading.Thread]:
    return [t for t in threads_of(pdu) if "stuck" in t.name]


def calls(journal: Path) -> list[dict[str, object]]:
    """The sim's record of the driver calls that returned, in the order they started."""
    if not journal.exists():
        return []
    return sorted((json.loads(line) for line in journal.read_text().splitlines()), key=lambda c: c["start"])


def assert_no_overlap(journal: Path) -> None:
    overlaps = [(a, b) for a, b in itertools.pairwise(calls(journal)) if b["start"] < a["end"]]
    assert not overlaps, f"two driver calls to one PDU overlapped: {overlaps}"


class CountedLock:
    """A worker's call slot that counts the threads waiting for it, for a test to wait on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.waiting += 1
        try:
            return self._lock.acquire(blocking, timeout)
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def test_one_thread_per_pdu_and_one_watchdog_for_all(daemon, probe, unique):
    names = [f"{unique}-{i:02d}" for i in range(50)]
    hung = names[:3]
    for name in hung:
        sim.device(name).release.set()  # their first probe passes; later calls to port 2 hang
    before = threading.active_count()
    daemon({"pdus": {name: sim_pdu(hang_ports=[2] if name in hung else [], timeout=0.3) for name in names}})
    probe.subscribe("pdu/+/availability")
    probe.wait_count("pdu/+/availability", len(names), where=lambda m: m.topic.split("/")[1] in names
                     and m.payload == b"online")
    assert all(len(threads_of(name)) == 1 for name in names)
    assert threading.active_count() - before <= len(names) + 10  # the broker client's, the journal's...

    for name in hung:
        sim.device(name).release.clear()
        probe.subscribe(f"pdu/{name}/2/ack")
        probe.publish(f"pdu/{name}/2/set", "ON")
    for name in hung:
        ack = json.loads(probe.wait_for(f"pdu/{name}/2/ack", timeout=5).payload)
        assert "device timeout" in ack["error"]
    assert [t.name for t in threading.enumerate()].count(WATCHDOG) == 1
    assert all(len(stuck_threads(name)) == 1 for name in hung)
    for name in hung:
        sim.device(name).release.set()
    wait_until(lambda: all(len(threads_of(name)) == 1 for name in hung), 5, "the stuck threads to end")


def test_a_hung_call_is_given_up_and_no_call_starts_beside_it(daemon, probe, unique, tmp_path):
    journal = tmp_path / "calls.jsonl"
    device = sim.device(unique)
    device.release.set()  # the first probe reads port 2 too
    # a timeout long enough that a loaded machine releases the hang while the OFF waits
    d = daemon({"pdus": {unique: sim_pdu(hang_ports=[2], timeout=2, journal=str(journal))}})
    probe.subscribe(f"pdu/{unique}/availability")
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
    probe.subscribe(f"pdu/{unique}/1/ack")
    slot = d.runner.workers[unique]._slot = CountedLock()  # no call is under way: the PDU is idle
    for hang in range(3):  # several hangs: each given-up thread ends once its call returns
        [serving] = threads_of(unique)
        device.release.clear()
        returned = len(calls(journal))
        started = time.monotonic()
        ack = probe.request(f"pdu/{unique}/2/set", "ON", timeout=5)
        assert ack["status"] == "error" and ack["error"] == "device timeout: no answer within 2 s"
        assert time.monotonic() - started < 2 + 1.5

        if hang == 0:  # the next command waits for the slot the stuck call holds, and never reaches the device
            ack = probe.request(f"pdu/{unique}/1/set", "ON", timeout=5)
            assert ack["error"] == "device timeout: a previous call is still stuck on the device"
            assert len(calls(journal)) == returned

        # one still waiting for the slot when the hung call returns goes on at once
        transaction = f"off-{hang}"
        probe.publish(f"pdu/{unique}/1/set", json.dumps({"action": "off", "transaction": transaction}))
        wait_until(lambda: slot.waiting == 1, 5, "the OFF to wait for the slot")
        device.release.set()
        ack = json.loads(probe.wait_for(f"pdu/{unique}/1/ack", lambda m, t=transaction: json.loads(m.payload)
                                        ["transaction"] == t, timeout=5).payload)
        assert (ack["status"], ack["state"]) == ("ok", "OFF")
        hung_call, off_call = calls(journal)[returned:]
        assert (hung_call["port"], off_call["port"], off_call["action"]) == (2, 1, "off")
        assert off_call["start"] >= hung_call["end"]

        wait_until(lambda: len(threads_of(unique)) == 1, 5, "the stuck thread to end")
        assert threads_of(unique)[0] is not serving  # the PDU goes on on the fresh thread
        assert probe.request(f"pdu/{unique}/1/set", "ON", timeout=5)["state"] == "ON"
    assert_no_overlap(journal)


def _online_with_port_2_hanging(daemon, probe, unique, tmp_path):
    """A PDU whose port 2 hangs until ``device.release`` is set, with a 2 s timeout and one retry,
    online; its driver calls journalled. Returns the journal's path and the device."""
    journal = tmp_path / "calls.jsonl"
    device = sim.device(unique)
    device.release.set()
    daemon({"pdus": {unique: sim_pdu(hang_ports=[2], timeout=2, retries=1, retry_delay=0.05,
                                     journal=str(journal))}})
    probe.subscribe(f"pdu/{unique}/availability")
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
    return journal, device


def test_a_retry_after_a_hung_call_waits_for_it_and_then_runs(daemon, probe, unique, tmp_path):
    journal, device = _online_with_port_2_hanging(daemon, probe, unique, tmp_path)
    device.release.clear()
    probe.subscribe(f"pdu/{unique}/2/ack")
    probe.publish(f"pdu/{unique}/2/set", "ON")
    wait_until(lambda: stuck_threads(unique), 5, "the first try to be given up")
    device.release.set()  # while the retry waits for the slot
    ack = json.loads(probe.wait_for(f"pdu/{unique}/2/ack", timeout=5).payload)
    assert (ack["status"], ack["state"]) == ("ok", "ON")
    tries = [c for c in calls(journal) if c["port"] == 2 and c["action"] == "on"]
    assert len(tries) == 2  # the given-up try, and the retry after it returned
    assert_no_overlap(journal)


def _hang_and_reload(daemon, probe, unique, tmp_path, journal: Path, timeout: float):
    """A PDU whose call to port 2 is stuck on the device, then a reload that changes the PDU:
    the old worker's call slot."""
    device = sim.device(unique)
    device.release.set()
    config = {"mqtt": {"client_id": unique},
              "pdus": {unique: sim_pdu(hang_ports=[2], timeout=timeout, journal=str(journal))}}
    d = daemon(config)
    probe.subscribe(f"pdu/{unique}/availability")
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
    slot = d.runner.workers[unique]._slot = CountedLock()
    device.release.clear()
    assert "device timeout" in probe.request(f"pdu/{unique}/2/set", "ON", timeout=5)["error"]
    config["pdus"][unique] = sim_pdu(timeout=timeout, journal=str(journal))
    assert d.reload(write_config(tmp_path, config, "reload.yaml")).changed == [unique]
    return slot


def test_a_reload_starts_the_new_worker_once_the_stuck_call_has_returned(daemon, probe, unique, tmp_path):
    journal = tmp_path / "calls.jsonl"
    slot = _hang_and_reload(daemon, probe, unique, tmp_path, journal, timeout=2)
    wait_until(lambda: slot.waiting == 1, 5, "the old worker to wait for the stuck call")
    returned = len(calls(journal))
    sim.device(unique).release.set()
    assert probe.request(f"pdu/{unique}/1/set", "ON", timeout=5)["status"] == "ok"  # the new worker
    hung_call, *after = calls(journal)[returned:]
    assert hung_call["port"] == 2 and after and all(c["start"] >= hung_call["end"] for c in after)
    assert_no_overlap(journal)


def test_a_reload_waits_at_most_timeout_for_a_stuck_call(daemon, probe, unique, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="pdumqtt.runner")
    _hang_and_reload(daemon, probe, unique, tmp_path, tmp_path / "calls.jsonl", timeout=1)
    # the new worker, once the old one has waited its timeout for the stuck call
    assert probe.request(f"pdu/{unique}/1/set", "ON", timeout=5)["status"] == "ok"
    assert "a driver call is still stuck on the device; its new worker starts anyway" in caplog.text
    sim.device(unique).release.set()


def test_stopping_during_a_hung_call_answers_it_within_its_timeout(daemon, probe, unique):
    device = sim.device(unique)
    device.release.set()
    d = daemon({"pdus": {unique: sim_pdu(hang_ports=[2], timeout=1, retries=2)}})
    probe.subscribe(f"pdu/{unique}/availability")
    probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
    device.release.clear()
    calls_before = device.calls
    probe.subscribe(f"pdu/{unique}/2/ack")
    probe.publish(f"pdu/{unique}/2/set", "ON")
    wait_until(lambda: device.calls > calls_before, 5, "the call to hang")
    started = time.monotonic()
    d.stop()
    assert time.monotonic() - started < 1 + 1.5  # the watchdog gives the call up; no retry starts
    ack = json.loads(probe.wait_for(f"pdu/{unique}/2/ack", timeout=5).payload)
    assert ack["error"] == "device timeout: no answer within 1 s; the daemon stopped before the next try"
    device.release.set()


def test_a_cycle_whose_on_hangs_goes_on_from_its_on_and_never_switches_off_again(daemon, probe, unique, tmp_path):
    journal, device = _online_with_port_2_hanging(daemon, probe, unique, tmp_path)
    probe.subscribe(f"pdu/{unique}/2/ack")
    probe.publish(f"pdu/{unique}/2/set", json.dumps({"action": "cycle", "delay": 1}))
    wait_until(lambda: device.outlets.get(2) is False, 5, "the cycle's off")
    device.release.clear()  # its on hangs
    wait_until(lambda: stuck_threads(unique), 5, "the on's first try to be given up")
    device.release.set()
    ack = json.loads(probe.wait_for(f"pdu/{unique}/2/ack", timeout=5).payload)
    assert (ack["status"], ack["state"]) == ("ok", "ON")
    assert [c["action"] for c in calls(journal) if c["port"] == 2 and c["action"] != "get"] == ["off", "on", "on"]
    assert_no_overlap(journal)
