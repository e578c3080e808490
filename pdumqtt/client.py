"""The client side of the CLI: send a command and wait for its ack, read the retained state."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pdumqtt import topics
from pdumqtt.drivers import READING_UNITS


class NoAnswer(Exception):
    """Nothing came back in time: no broker, no daemon, or a daemon too busy."""


@dataclass
class BrokerOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    base_topic: str = "pdu"


@dataclass
class _Inbox:
    cond: threading.Condition = field(default_factory=threading.Condition)
    messages: list[mqtt.MQTTMessage] = field(default_factory=list)


class Session:
    """A short-lived MQTT v5 connection for one CLI call."""

    def __init__(self, options: BrokerOptions, timeout: float) -> None:
        self.options = options
        self.timeout = timeout
        self.inbox = _Inbox()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if options.username:
            self.client.username_pw_set(options.username, options.password)
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, u, f, reason, p: None if reason.is_failure else self._connected.set()

    def __enter__(self) -> Session:
        try:
            self.client.connect(self.options.host, self.options.port, keepalive=30)
        except OSError as e:
            raise NoAnswer(f"cannot reach the broker at {self.options.host}:{self.options.port}: {e}") from None
        self.client.loop_start()
        if not self._connected.wait(self.timeout):
            raise NoAnswer(f"the broker at {self.options.host}:{self.options.port} did not accept the connection")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.inbox.cond:
            self.inbox.messages.append(message)
            self.inbox.cond.notify_all()

    def subscribe(self, topics: list[str]) -> None:
        self._subscribed.clear()
        self.client.subscribe([(t, 1) for t in topics])
        if not self._subscribed.wait(self.timeout):
            raise NoAnswer("the broker did not confirm the subscription")

    def wait(self, topic: str, correlation: bytes | None = None) -> mqtt.MQTTMessage:
        with self.inbox.cond:
            found = self.inbox.cond.wait_for(lambda: next(
                (m for m in self.inbox.messages if m.topic == topic and
                 (correlation is None or getattr(m.properties, "CorrelationData", None) == correlation)), None),
                self.timeout)
        if found is None:
            raise NoAnswer(f"no answer within {self.timeout:g} s: is pdumqtt running and connected to "
                           f"{self.options.host}:{self.options.port} under {self.options.base_topic}/?")
        return found


def command_topic(base: str, target: str, port: str | None, verb: str) -> str:
    """``{base}/<pdu>/<port>/<verb>``, or ``{base}/alias/<alias>/<verb>`` without a port."""
    return f"{base}/{target}/{port}/{verb}" if port is not None else f"{base}/alias/{target}/{verb}"


def send(options: BrokerOptions, topic: str, payload: dict[str, Any], timeout: float,
         wait: bool = True) -> dict[str, Any] | None:
    """Publish a command; with ``wait``, return its ack, received on our own v5 response topic."""
    with Session(options, timeout) as session:
        props = Properties(PacketTypes.PUBLISH)
        correlation = uuid.uuid4().bytes
        reply = f"pdumqtt-cli/{uuid.uuid4().hex}/reply"
        if wait:
            session.subscribe([reply])
            props.ResponseTopic = reply
            props.CorrelationData = correlation
        info = session.client.publish(topic, json.dumps(payload), qos=1, properties=props)
        info.wait_for_publish(timeout)
        if not wait:
            return None
        return json.loads(session.wait(reply, correlation).payload)


def status(options: BrokerOptions, timeout: float) -> dict[str, Any]:
    """Every PDU's info, availability and outlet states, from the retained topics; in a fleet
    (pdumqtt/fleet.py) also each PDU's owner and each daemon's liveness record."""
    base = options.base_topic
    with Session(options, timeout) as session:
        barrier = f"pdumqtt-cli/{uuid.uuid4().hex}/barrier"
        readings = [t for kind in READING_UNITS for t in (f"{base}/+/+/{kind}", f"{base}/+/{kind}")]
        session.subscribe([f"{base}/bridge/+", f"{base}/+/availability", f"{base}/+/+/state", *readings,
                           f"{base}/bridge/daemons/+", f"{base}/+/owner", barrier])
        # retained messages are queued before anything published after the SUBACK
        session.client.publish(barrier, b"", qos=1)
        session.wait(barrier)
        with session.inbox.cond:
            messages = [m for m in session.inbox.messages if m.topic != barrier]
    result: dict[str, Any] = {"bridge": None, "info": None, "availability": {}, "states": {},
                              "readings": {}, "totals": {}, "owners": {}, "daemons": {}}
    for m in messages:
        published = topics.parse(base, m.topic)
        if published is None:
            continue
        text = m.payload.decode(errors="replace")
        pdu, port = published.pdu, published.port
        if published.kind == topics.BRIDGE_STATE:
            result["bridge"] = text
        elif published.kind == topics.BRIDGE_INFO:
            result["info"] = json.loads(text) if text else None
        elif published.kind == topics.AVAILABILITY:
            result["availability"][pdu] = text
        elif published.kind == topics.STATE:
            result["states"][(pdu, port)] = text
        elif published.kind in (topics.OWNER, topics.DAEMON) and text:
            try:
                record = json.loads(text)
            except ValueError:
                continue
            if published.kind == topics.OWNER:
                result["owners"][pdu] = record
            else:
                result["daemons"][published.daemon] = record
        elif published.kind == topics.READING and _is_number(text):
            if port is None:
                result["totals"].setdefault(pdu, {})[published.quantity] = float(text)
            else:
                result["readings"].setdefault((pdu, port), {})[published.quantity] = float(text)
    return result


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_readings(values: dict[str, float]) -> str:
    """``40 W  0.174 A  230 V  1.234 kWh``: the readings present, in the usual order."""
    return "  ".join(f"{values[k]:g} {unit}" for k, unit in READING_UNITS.items() if k in values)
