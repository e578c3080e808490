"""Serialisation under load: one call at a time per PDU, PDUs in parallel, every command acked once."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict


def test_500_commands_over_10_pdus(daemon, probe, unique, tmp_path):
    journal = tmp_path / "journal"
    pdus = [f"{unique}-{i}" for i in range(10)]
    daemon({"pdus": {name: {"driver": "sim", "ports": 8, "latency": 0.002, "journal": str(journal)}
                     for name in pdus}})
    probe.subscribe("pdu/+/+/ack")

    def ours(m) -> bool:
        return m.topic.startswith(f"pdu/{unique}-")

    sent = []
    for n in range(500):
        pdu, port = pdus[n % 10], n % 8 + 1
        transaction = f"load-{n}"
        sent.append(transaction)
        action = ("on", "off", "toggle")[n % 3]
        probe.client.publish(f"pdu/{pdu}/{port}/set", json.dumps({"action": action, "transaction": transaction}), qos=1)

    probe.wait_count("pdu/+/+/ack", 500, timeout=60, where=ours)
    # a last command per PDU: any stray second ack would have been published before its ack
    for pdu in pdus:
        assert probe.request(f"pdu/{pdu}/1/get")["status"] == "ok"
    acks = [json.loads(m.payload) for m in probe.all("pdu/+/+/ack") if ours(m)]
    counts = Counter(a["transaction"] for a in acks if a["transaction"].startswith("load-"))
    assert set(counts) == set(sent) and set(counts.values()) == {1}
    assert all(a["status"] == "ok" for a in acks)

    calls = defaultdict(list)
    for line in journal.read_text().splitlines():
        call = json.loads(line)
        calls[call["pdu"]].append((call["start"], call["end"]))
    overlaps_within = 0
    for spans in calls.values():
        spans.sort()
        overlaps_within += sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])
    assert overlaps_within == 0
    everything = sorted((s, e, pdu) for pdu, spans in calls.items() for s, e in spans)
    overlaps_across = sum(1 for a, b in itertools.pairwise(everything) if b[0] < a[1] and a[2] != b[2])
    assert overlaps_across > 0, "PDUs never ran in parallel"


def test_commands_for_one_pdu_run_in_arrival_order(daemon, probe, unique, tmp_path):
    journal = tmp_path / "journal"
    daemon({"pdus": {unique: {"driver": "sim", "ports": 8, "journal": str(journal)}}})
    probe.subscribe(f"pdu/{unique}/+/ack")
    order = [(n % 8 + 1, ("on", "off")[n % 2]) for n in range(100)]
    for port, action in order:
        probe.client.publish(f"pdu/{unique}/{port}/set", action, qos=1)
    probe.wait_count(f"pdu/{unique}/+/ack", 100, timeout=30)
    done = [(c["port"], c["action"]) for c in map(json.loads, journal.read_text().splitlines()) if c["action"] != "get"]
    assert done == order
