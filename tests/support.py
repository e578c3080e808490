"""What the tests share: a mosquitto of their own, an MQTT probe client, CLI and file helpers.

Tests wait for events with deadlines (``Probe.wait_for``, ``Probe.request``,
``wait_until``), never with sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts a TCP connection on host:port now."""
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@dataclass
class Broker:
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def start_mosquitto(tmp: Path, port: int | None = None, extra: str = "") -> Broker:
    """A mosquitto on 127.0.0.1 (a free port unless given), ``extra`` config lines appended."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        pytest.fail("mosquitto is not installed: apt-get install mosquitto (or run .ci/run)")
    port = port or free_port()
    conf = tmp / f"mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nmax_queued_messages 0\nset_tcp_nodelay true\npersistence false\n"
        "log_dest stderr\nlog_type error\n"
        + (extra or "allow_anonymous true\n")
        # as root, mosquitto would become user "mosquitto" and lose access to the test's files
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.PIPE)

    def accepting() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"mosquitto exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        return accepts(port)

    wait_until(accepting, 10, "mosquitto to listen")
    return Broker("127.0.0.1", port, proc)


class Probe:
    """A paho v5 client that records what it receives and makes request/reply calls."""

    def __init__(self, broker: Broker, base: str = "pdu", username: str | None = None,
                 password: str | None = None, reply_prefix: str = "test") -> None:
        self.base = base
        self.messages: list[mqtt.MQTTMessage] = []
        self.cond = threading.Condition()
        self.reply_topic = f"{reply_prefix}/{uuid.uuid4().hex}/reply"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.subscribe(self.reply_topic)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(10), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: str | bytes = "", retain: bool = False,
                properties: Properties | None = None) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain, properties=properties).wait_for_publish(10)

    def wait_for(self, topic: str, predicate: Callable[[mqtt.MQTTMessage], bool] = lambda m: True,
                 timeout: float = 10.0, start: int = 0) -> mqtt.MQTTMessage:
        """The first message on ``topic`` (from index ``start``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages[start:]:
                    if mqtt.topic_matches_sub(topic, m.topic) and predicate(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages[-10:]]
                    raise AssertionError(f"nothing on {topic} within {timeout} s; last seen {seen}")
                self.cond.wait(left)

    def wait_count(self, topic: str, count: int, timeout: float = 10.0,
                   where: Callable[[mqtt.MQTTMessage], bool] = lambda m: True) -> list[mqtt.MQTTMessage]:
        """Wait until ``count`` messages on ``topic`` (that satisfy ``where``) have arrived; return them."""
        deadline = time.monotonic() + timeout
        seen: list[mqtt.MQTTMessage] = []
        scanned = 0
        with self.cond:
            while True:
                for m in self.messages[scanned:]:
                    if mqtt.topic_matches_sub(topic, m.topic) and where(m):
                        seen.append(m)
                scanned = len(self.messages)
                if len(seen) >= count:
                    return seen
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(seen)} of {count} messages on {topic} within {timeout} s")
                self.cond.wait(left)

    def all(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self.cond:
            return [m for m in self.messages if mqtt.topic_matches_sub(topic, m.topic)]

    def request(self, topic: str, payload: str | bytes = "", timeout: float = 10.0,
                properties: Properties | None = None) -> dict[str, Any]:
        """Publish with a v5 Response Topic and return the ack that answers it."""
        props = properties or Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.reply_topic
        correlation = uuid.uuid4().bytes
        props.CorrelationData = correlation
        self.publish(topic, payload, properties=props)
        msg = self.wait_for(self.reply_topic,
                            lambda m: getattr(m.properties, "CorrelationData", None) == correlation, timeout)
        return json.loads(msg.payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(broker: Broker, topic: str) -> list[Any]:
    """What the broker holds retained under ``topic`` now: a fresh subscriber's first messages,
    up to a marker published after its subscription (the broker sends retained ones first)."""
    fresh = Probe(broker)
    try:
        marker = f"{fresh.reply_topic}/marker"
        fresh.subscribe(marker)
        fresh.subscribe(topic)
        fresh.publish(marker, b"x")
        fresh.wait_for(marker)
        return [m for m in fresh.all(topic) if m.retain]
    finally:
        fresh.close()


def assert_missing_outlet_spares_the_pdu(probe: Probe, pdu: str, outlet: Callable[[int], bool], missing: int,
                                          error_says: str) -> None:
    """A /set for outlet ``missing``, which the device lacks, gets one error naming it (no retries),
    while the PDU stays online, switches its other outlets, and publishes no state for the ones it lacks."""
    ack = probe.request(f"pdu/{pdu}/{missing}/set", "ON")
    assert ack["status"] == "error" and error_says in ack["error"] and "(after" not in ack["error"], ack
    assert probe.request(f"pdu/{pdu}/2/set", "ON")["state"] == "ON" and outlet(2)
    availability = [m.payload for m in probe.all(f"pdu/{pdu}/availability")]
    assert availability == [b"online"], availability
    assert not any(probe.all(f"pdu/{pdu}/{n}/state") for n in range(missing, missing + 2))


def run_above_descriptor_1024(code: str, *args: str, timeout: float = 60) -> str:
    """Run ``code`` (a Python snippet, ``sys.argv[1:]`` being ``args``) in a fresh interpreter that
    holds 1,100 sockets first, so that whatever it opens gets a descriptor above 1023, where
    select() fails; its stdout, after asserting that it exited 0."""
    prelude = textwrap.dedent("""
        import resource, socket, sys
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), max(hard, 2048)))
        held = [socket.socket() for _ in range(1100)]
        assert held[-1].fileno() > 1024
    """)
    done = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def tcp_exchange(address: tuple[str, int], data: bytes, timeout: float = 20) -> bytes:
    """Send ``data`` in one write and read the answer until the other side closes."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(16384):
            reply += chunk
    return reply


def start_daemon(config: dict[str, Any], broker: Broker, id_prefix: str = "test") -> Any:
    """The daemon, started in this process against ``broker`` and connected.

    Each daemon gets its own MQTT session unless the config names one: a shared one would
    collect every test's commands while no daemon is connected, and hand the backlog to the
    next daemon (a pdudaemon.conf, converted, has no mqtt section of its own).
    """
    from pdumqtt.config import load_config_data
    from pdumqtt.daemon import Daemon

    cfg = load_config_data(config)
    cfg.mqtt.setdefault("client_id", f"{id_prefix}-{uuid.uuid4().hex[:12]}")
    d = Daemon(cfg, broker=(broker.host, broker.port))
    d.start()
    wait_until(d.connected.is_set, 10, "the daemon to connect")
    return d


def write_config(tmp_path: Path, config: dict[str, Any], name: str = "pdumqtt.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``pdumqtt`` as a user would, in a child process."""
    return subprocess.run([sys.executable, "-m", "pdumqtt", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, input=input)


@dataclass
class DaemonProcess:
    process: subprocess.Popen[str]
    config_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
