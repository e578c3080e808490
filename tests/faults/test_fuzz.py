"""Fuzzing the daemon through a real broker: every well-formed target (``{base}/<l1>/<l2>/set``
or ``/get``, whatever the levels and the payload) gets exactly one ack, and the log has no
traceback and no long echo of the input.

Hypothesis picks topic levels (configured names, their look-alikes, any text up to past
the topic limit) and payloads (words, bytes, JSON of every shape, deep nesting, long
numbers, long transactions, past the payload limit). Examples are bounded so that the
test takes seconds.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pdumqtt.commands import MAX_PAYLOAD, MAX_TOPIC

# what MQTT and mosquitto accept in a topic level: no separators or wildcards, no control
# characters, surrogates or unassigned code points (mosquitto refuses those as bad UTF-8)
LEVEL_CHARS = st.characters(blacklist_categories=("Cc", "Cs", "Cn", "Co"), blacklist_characters="/+#")
EXAMPLES = 250


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def payloads() -> st.SearchStrategy[bytes]:
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**40, 10**40), st.floats(), st.text(max_size=30))
    fields = st.fixed_dictionaries({}, optional={
        "action": st.one_of(st.sampled_from(["on", "OFF", "Toggle", "get", "cycle", "boom", ""]), scalar),
        "state": st.sampled_from(["ON", "off", "x"]),
        "delay": st.one_of(st.floats(0, 0.05), st.integers(-3, 0), st.text(max_size=5), st.none()),
        "transaction": st.one_of(st.text(min_size=0, max_size=250), st.integers(), st.lists(st.integers(), max_size=2)),
        "ts": st.one_of(st.floats(), st.just(time.time())),
        "extra": scalar,
    })
    return st.one_of(
        st.sampled_from([b"ON", b"off", b"cycle", b"TOGGLE", b'{"action": "on"}', b'"ON"']),
        st.sampled_from([b"", b" ", b"\xff", b"null", b"[]", b"{}", b'{"state": "ON", "action": "on"}']),
        st.binary(max_size=200),
        st.text(max_size=80).map(str.encode),
        fields.map(lambda d: json.dumps(d).encode()),
        st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3),
                     max_leaves=20).map(lambda v: json.dumps(v).encode()),
        st.integers(1, 20_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 20_000).map(lambda n: b'{"action": "cycle", "delay": ' + b"9" * n + b"}"),
        st.integers(MAX_PAYLOAD - 2, MAX_PAYLOAD + 2).map(lambda n: b"x" * n),
    )


def test_every_well_formed_target_gets_exactly_one_ack_and_no_traceback(daemon: Any, probe: Any, unique: str) -> None:
    pdu, alias = f"{unique}fz", f"{unique}-board"
    daemon({"defaults": {"retries": 0, "timeout": 2, "cycle_delay": 0.01},
            "mqtt": {"transaction_window": 600},
            "pdus": {pdu: {"driver": "sim", "ports": {"dut1": 1, "2": 2, "3": 3}}},
            "aliases": {alias: {"pdu": pdu, "port": "dut1"}}})
    records = Records()
    logger = logging.getLogger("pdumqtt")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(records)
    sent: dict[bytes, str] = {}
    acks: dict[str, int] = {"ok": 0, "error": 0}
    longest_error = 0
    started = time.monotonic()

    # mostly configured names, so that many commands run; then look-alikes and any text
    level1 = st.one_of(st.just(pdu), st.just(pdu), st.just("alias"),
                       st.sampled_from([pdu.upper(), pdu + " ", "bridge", "", "\uff50"]),
                       st.text(LEVEL_CHARS, max_size=40),
                       st.integers(MAX_TOPIC - 20, MAX_TOPIC + 20).map(lambda n: "x" * n))
    level2 = st.one_of(st.sampled_from(["dut1", "2", "3", alias]),
                       st.sampled_from(["DUT1", "1", "4", "0", "01", "\u0662", "\uff13", " 2", ""]),
                       st.text(LEVEL_CHARS, max_size=40))

    # no shrinking: a failure here waits out a deadline per example, so report the first one
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(l1=level1, l2=level2, verb=st.sampled_from(["set", "get"]), payload=payloads(), retain=st.booleans())
    def one(l1: str, l2: str, verb: str, payload: bytes, retain: bool) -> None:
        nonlocal longest_error
        topic = f"pdu/{l1}/{l2}/{verb}"
        correlation = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = probe.reply_topic
        props.CorrelationData = correlation
        sent[correlation] = topic
        probe.client.publish(topic, payload, qos=1, retain=retain, properties=props).wait_for_publish(10)
        if retain:  # clear it at once: a retained /set must not linger for later tests
            probe.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
        try:
            reply = probe.wait_for(probe.reply_topic,
                                   lambda m: getattr(m.properties, "CorrelationData", None) == correlation, 10)
        except AssertionError:
            raise AssertionError(f"no ack for {topic[:80]!r} {payload[:80]!r} (retain={retain}); "
                                 f"probe connected: {probe.client.is_connected()}") from None
        ack = json.loads(reply.payload)
        acks[ack["status"]] += 1
        longest_error = max(longest_error, len(ack["error"] or ""))
        assert ack["transaction"]

    try:
        one()
        # a last command through the same queue: any second ack would have come before its own
        assert probe.request(f"pdu/{pdu}/2/set", "OFF")["status"] == "ok"
        assert probe.request(f"pdu/{pdu}/dut1/get")["status"] == "ok"
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    replies: dict[bytes, int] = {}
    for m in probe.all(probe.reply_topic):
        key = getattr(m.properties, "CorrelationData", None)
        if key in sent:
            replies[key] = replies.get(key, 0) + 1
    doubled = {sent[k][:60]: n for k, n in replies.items() if n != 1}
    missing = [t[:60] for k, t in sent.items() if k not in replies]
    tracebacks = [r.getMessage()[:200] for r in records.records if r.exc_info or "Traceback" in r.getMessage()]
    longest_line = max((len(r.getMessage()) for r in records.records), default=0)
    print(f"\nfuzz: {len(sent)} messages in {time.monotonic() - started:.1f} s, {acks['ok']} ok and "
          f"{acks['error']} error acks, missing {len(missing)}, doubled {len(doubled)}, tracebacks "
          f"{len(tracebacks)}, longest error {longest_error} characters, longest log line {longest_line}")
    assert not missing and not doubled and not tracebacks
    assert longest_error < 1000 and longest_line < 1500
