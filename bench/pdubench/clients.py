"""The load generators: a paho v5 client (the floors and pdumqtt) and an HTTP client (PDUDaemon).

The MQTT client runs paho's loop in the calling thread rather than in a network
thread, so no thread hand-off on the bench's side is added to what is measured. The
HTTP client opens every connection of a burst before the burst starts, because
PDUDaemon holds each response until the driver has run, so each command in flight
needs its own connection (and opening 2,000 at once would overrun the listen backlog).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


@dataclass
class Outcome:
    """What came back for one batch of requests."""

    sent: list[float] = field(default_factory=list)  # monotonic send time per request
    answered: list[float | None] = field(default_factory=list)  # monotonic answer time, None if lost
    ok: list[bool] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        return [a - s for s, a in zip(self.sent, self.answered, strict=True) if a is not None]

    @property
    def lost(self) -> int:
        return sum(a is None for a in self.answered)

    @property
    def errors(self) -> int:
        return sum(a is not None and not ok for a, ok in zip(self.answered, self.ok, strict=True))

    @property
    def span(self) -> float:
        """From the first send to the last answer."""
        done = [a for a in self.answered if a is not None]
        return max(done) - min(self.sent) if done else float("nan")


class MqttClient:
    """A paho v5 client pumped from the caller's thread; answers are matched by Correlation Data."""

    def __init__(self, port: int, client_id: str) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(0)  # 0: no limit, a burst goes out at once
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._acks.append(a)
        self.client.on_connect = lambda *a: self._acks.append(a)
        # paho leaves Nagle on; a client that waits for each answer must not wait for an ACK too,
        # so that the latency measured is the daemon's and the broker's, not the requester's
        self.client.on_socket_open = _no_delay
        self._acks: list[object] = []
        self.answers: dict[bytes, tuple[float, bytes]] = {}
        self.last_answer = 0.0  # monotonic time of the latest answer
        self.on_other: Callable[[mqtt.MQTTMessage, float], None] | None = None
        self.client.connect("127.0.0.1", port, keepalive=600)
        if not self.pump(lambda: bool(self._acks), 10):
            raise RuntimeError(f"bench client could not connect to 127.0.0.1:{port}")

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        correlation = getattr(message.properties, "CorrelationData", None)
        if correlation is not None:
            self.answers[correlation] = (now, message.payload)
            self.last_answer = now
        elif self.on_other is not None:
            self.on_other(message, now)

    def pump(self, until: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                return False
            rc = self.client.loop(0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"bench MQTT client: {mqtt.error_string(rc)}")
        return True

    def subscribe(self, *topics: str) -> None:
        before = len(self._acks)
        self.client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        if not self.pump(lambda: len(self._acks) > before, 10):
            raise RuntimeError(f"no SUBACK for {topics}")

    def _publish(self, topic: str, payload: bytes, correlation: bytes, response_topic: str | None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = correlation
        if response_topic:
            props.ResponseTopic = response_topic
        self.client.publish(topic, payload, qos=1, properties=props)

    def _collect(self, outcome: Outcome, keys: list[bytes], is_ok: Callable[[bytes], bool]) -> None:
        for key in keys:
            answer = self.answers.pop(key, None)
            outcome.answered.append(None if answer is None else answer[0])
            outcome.ok.append(answer is not None and is_ok(answer[1]))

    def sequential(self, requests: list[tuple[str, bytes]], response_topic: str | None, tag: str,
                   is_ok: Callable[[bytes], bool], timeout: float) -> Outcome:
        """One request at a time: send, wait for its answer, send the next."""
        outcome = Outcome()
        keys = []
        for i, (topic, payload) in enumerate(requests):
            key = f"{tag}-{i}".encode()
            keys.append(key)
            outcome.sent.append(time.monotonic())
            self._publish(topic, payload, key, response_topic)
            self.pump(lambda k=key: k in self.answers, timeout)
        self._collect(outcome, keys, is_ok)
        return outcome

    def burst(self, requests: list[tuple[str, bytes]], response_topic: str | None, tag: str,
              is_ok: Callable[[bytes], bool], timeout: float, quiet: float | None = None) -> Outcome:
        """Every request at once, then wait for all the answers, or the timeout, or (with
        ``quiet``) until no answer has come for that many seconds: a broker that drops
        messages (a stock mosquitto's queue limit) would otherwise hold every round to the
        timeout."""
        outcome = Outcome()
        keys = [f"{tag}-{i}".encode() for i in range(len(requests))]
        for key, (topic, payload) in zip(keys, requests, strict=True):
            outcome.sent.append(time.monotonic())
            self._publish(topic, payload, key, response_topic)
        started = time.monotonic()

        def finished() -> bool:
            if quiet is not None and time.monotonic() - max(started, self.last_answer) > quiet:
                return True
            return all(k in self.answers for k in keys)

        self.pump(finished, timeout)
        self._collect(outcome, keys, is_ok)
        return outcome

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop(0.1)


def _no_delay(client: mqtt.Client, userdata: object, sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def _status_and_length(head: bytes) -> tuple[int, int]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, length


def http_sequential(port: int, paths: list[str], timeout: float) -> Outcome:
    """One keep-alive connection, one request at a time."""
    outcome = Outcome()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        for path in paths:
            outcome.sent.append(time.monotonic())
            sock.sendall(_request(path))
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            status, length = _status_and_length(head)
            while len(buffer) < length:
                buffer += sock.recv(65536)
            buffer = buffer[length:]
            outcome.answered.append(time.monotonic())
            outcome.ok.append(status == 200)
    return outcome


async def _http_burst(port: int, paths: list[str], timeout: float) -> Outcome:
    gate = asyncio.Semaphore(32)

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            return await asyncio.open_connection("127.0.0.1", port)

    connections = await asyncio.gather(*(connect() for _ in paths))
    outcome = Outcome(sent=[0.0] * len(paths), answered=[None] * len(paths), ok=[False] * len(paths))

    async def answer(i: int, reader: asyncio.StreamReader) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        status, length = _status_and_length(head[:-4])
        await reader.readexactly(length)
        outcome.answered[i] = time.monotonic()
        outcome.ok[i] = status == 200

    for i, (path, (_, writer)) in enumerate(zip(paths, connections, strict=True)):
        outcome.sent[i] = time.monotonic()
        writer.write(_request(path))
    readers = [asyncio.ensure_future(answer(i, reader)) for i, (reader, _) in enumerate(connections)]
    await asyncio.wait(readers, timeout=timeout)
    for task in readers:
        task.cancel()
    for _, writer in connections:
        writer.close()
    return outcome


def http_burst(port: int, paths: list[str], timeout: float) -> Outcome:
    """Every request at once, each on a connection opened beforehand."""
    return asyncio.run(_http_burst(port, paths, timeout))
