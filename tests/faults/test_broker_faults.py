"""The daemon and a broker that fails: each failed connection attempt is logged once with
its reason (TLS verification, refused), the daemon is back within seconds of the broker,
and a retained ``online`` does not outlive a daemon that is gone."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import Broker, Probe, free_port, start_mosquitto, wait_until

from pdumqtt import bridge
from pdumqtt.config import load_config_data
from pdumqtt.daemon import Daemon


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._mutex = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._mutex:
            self.lines.append(record.getMessage() + (" [traceback]" if record.exc_info else ""))

    def having(self, text: str) -> list[str]:
        with self._mutex:
            return [line for line in self.lines if text in line]


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("pdumqtt")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
    assert not handler.having("[traceback]")


@pytest.fixture
def run_daemon() -> Iterator[Any]:
    started: list[Daemon] = []

    def start(mqtt: dict[str, Any], broker: tuple[str, int]) -> Daemon:
        config = load_config_data({"mqtt": {"client_id": f"bf-{uuid.uuid4().hex[:8]}", **mqtt},
                                   "pdus": {f"p{uuid.uuid4().hex[:6]}": {"driver": "sim", "ports": 1}}})
        d = Daemon(config, broker=broker)
        d.start()
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[Any]:
    made: list[Broker] = []

    def start(port: int | None = None, extra: str = "") -> Broker:
        made.append(start_mosquitto(tmp_path, port=port, extra=extra))
        return made[-1]

    yield start
    for b in made:
        if b.process.poll() is None:
            b.process.terminate()
            b.process.wait(10)


def test_a_wrong_ca_and_a_wrong_host_name_are_logged_with_their_reason(brokers, run_daemon, log_lines, tmp_path):
    from test_broker_connection import make_certificates

    (tmp_path / "right").mkdir()
    (tmp_path / "other").mkdir()
    ca, cert, key = make_certificates(tmp_path / "right")
    other_ca, _, _ = make_certificates(tmp_path / "other")
    tls_port = free_port()
    brokers(extra=f"allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n")
    run_daemon({"host": "127.0.0.1", "port": tls_port, "tls": {"ca_certs": other_ca}}, ("127.0.0.1", tls_port))
    wrong_ca = wait_until(lambda: log_lines.having("TLS verification of 127.0.0.1"), 10, "the wrong CA logged")
    assert "certificate" in wrong_ca[0] and "attempt 1 failed" in wrong_ca[0], wrong_ca[0]
    wait_until(lambda: len(log_lines.having("TLS verification")) >= 2, 10, "the next attempt logged")
    # the certificate is for 127.0.0.1, not for localhost
    run_daemon({"host": "localhost", "port": tls_port, "tls": {"ca_certs": ca}}, ("localhost", tls_port))
    wrong_name = wait_until(lambda: log_lines.having("TLS verification of localhost"), 10, "the wrong name logged")
    assert "mismatch" in wrong_name[0] or "not valid for" in wrong_name[0], wrong_name[0]
    print(f"\nTLS: {wrong_ca[0]}\nTLS: {wrong_name[0]}")


def test_a_broker_down_at_start_is_logged_and_found_within_seconds(brokers, run_daemon, log_lines):
    port = free_port()
    d = run_daemon({}, ("127.0.0.1", port))
    # wait until the backoff has reached its cap: attempts 1 s, 2 s, 2 s apart
    wait_until(lambda: len(log_lines.having("refused the connection (is the broker running?)")) >= 3, 15,
               "three failed attempts")
    assert "attempt 1 failed" in log_lines.having("broker connection attempt")[0]
    broker = brokers(port=port)
    up = time.monotonic()
    wait_until(d.connected.is_set, 10, "the daemon to connect")
    back_after = time.monotonic() - up
    failures = len(log_lines.having("broker connection attempt"))
    print(f"\nbroker down at start: {failures} failed attempts logged, one line each; "
          f"connected {back_after:.1f} s after the broker listened")
    assert back_after < bridge.RECONNECT_MAX_DELAY + 1.5
    assert wait_until(lambda: log_lines.having("connected to 127.0.0.1"), 5, "connected logged")[0].endswith(
        f"and {failures} failed attempts")
    probe = Probe(broker)
    try:
        probe.subscribe("pdu/bridge/state")
        probe.wait_for("pdu/bridge/state", lambda m: m.payload == b"online")
    finally:
        probe.close()


def test_after_an_outage_the_daemon_is_back_within_seconds(brokers, run_daemon, log_lines):
    broker = brokers()
    d = run_daemon({}, (broker.host, broker.port))
    wait_until(d.connected.is_set, 10, "the daemon to connect")
    broker.process.terminate()
    broker.process.wait(10)
    outage = time.monotonic()
    wait_until(lambda: len(log_lines.having("broker connection attempt")) >= 5, 20, "five failed attempts")
    again = brokers(port=broker.port)
    up = time.monotonic()
    wait_until(d.connected.is_set, 10, "the daemon to reconnect")
    back_after = time.monotonic() - up
    print(f"\nbroker outage of {up - outage:.1f} s: daemon back {back_after:.1f} s after the broker "
          f"(reconnect backoff capped at {bridge.RECONNECT_MAX_DELAY} s)")
    assert back_after < bridge.RECONNECT_MAX_DELAY + 1.5
    assert log_lines.having(f"connected to {again.host}:{again.port} after")


def test_a_retained_online_expires_when_the_daemon_is_gone(brokers, run_daemon, tmp_path, monkeypatch):
    """The broker (with persistence) dies, the daemon ends while it is away, the broker comes
    back from its last autosave with the retained "online" (and, killed, without firing our
    Last Will): the "online" must not stand."""
    monkeypatch.setattr(bridge, "ONLINE_EXPIRY", 5)
    monkeypatch.setattr(bridge, "ONLINE_REFRESH", 1.0)
    persist = tmp_path / "persist"
    persist.mkdir()
    extra = f"allow_anonymous true\npersistence true\npersistence_location {persist}/\nautosave_interval 1\n"
    broker = brokers(extra=extra)
    base = f"b{uuid.uuid4().hex[:6]}"
    d = run_daemon({"base_topic": base}, (broker.host, broker.port))
    wait_until(d.connected.is_set, 10, "the daemon to connect")
    probe = Probe(broker)
    probe.subscribe(f"{base}/bridge/state")
    first = probe.wait_for(f"{base}/bridge/state", lambda m: m.payload == b"online")
    assert getattr(first.properties, "MessageExpiryInterval", 0) <= 5
    refreshed = probe.wait_count(f"{base}/bridge/state", 3, timeout=10, where=lambda m: m.payload == b"online")
    probe.close()
    db = persist / "mosquitto.db"
    saved_after = time.time()
    wait_until(lambda: db.exists() and db.stat().st_mtime > saved_after, 10, "an autosave with our online")
    broker.process.kill()
    broker.process.wait(10)
    d.stop()  # while the broker is away: no "offline" gets through
    gone = time.monotonic()
    again = brokers(port=broker.port, extra=extra)

    def retained_state() -> bytes | None:
        p = Probe(again)
        try:
            p.subscribe(f"{base}/bridge/state")
            try:
                return p.wait_for(f"{base}/bridge/state", timeout=0.3).payload
            except AssertionError:
                return None
        finally:
            p.close()

    restored = retained_state()
    wait_until(lambda: retained_state() is None, 15, "the retained online to expire")
    print(f"\nstale online: refreshed {len(refreshed)} times while up; after a broker kill -9 and restart "
          f"from persistence it read {restored!r}, and was gone {time.monotonic() - gone:.1f} s after "
          "the daemon left")
    assert restored == b"online"  # persistence brought it back: without the expiry it would stand
