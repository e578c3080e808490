"""The MQTT side: the connection, the subscriptions, and everything published.

paho's network thread calls ``_on_message``, which only parses the message and hands
the command to the runner (or answers a bad one at once); the PDU workers call back
into :meth:`MqttBridge.state`, :meth:`availability` and :meth:`ack` to publish.
"""

from __future__ import annotations

import copy
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from pdumqtt import __version__
from pdumqtt.commands import BadCommand, Command, ack_payload, parse
from pdumqtt.config import Config

log = logging.getLogger(__name__)

# Properties() rebuilds its lookup tables on every call (17 us, once per reply); a copy of an
# empty one shares those read-only tables (6 us).
_EMPTY_PUBLISH_PROPERTIES = Properties(PacketTypes.PUBLISH)


@dataclass
class _Transaction:
    seen: float
    ack: bytes | None = None  # None while the first command still runs
    waiting: list[Command] = field(default_factory=list)


class TransactionLog:
    """Transaction ids seen within the window, so that a repeated one runs only once."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._entries: OrderedDict[str, _Transaction] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, command: Command) -> bytes | bool | None:
        """True when ``command`` is new; else its first ack, or None if that is still to come."""
        now = time.monotonic()
        with self._lock:
            while self._entries:
                oldest = next(iter(self._entries.values()))
                if now - oldest.seen <= self.window or oldest.ack is None:
                    break
                self._entries.popitem(last=False)
            entry = self._entries.get(command.transaction)
            if entry is None:
                self._entries[command.transaction] = _Transaction(now)
                return True
            if entry.ack is None:
                entry.waiting.append(command)
            return entry.ack

    def complete(self, command: Command, ack: bytes) -> list[Command]:
        """Record the first command's ack; return the repeats that waited for it."""
        with self._lock:
            entry = self._entries.get(command.transaction)
            if entry is None:
                return []
            entry.ack, waiting, entry.waiting = ack, entry.waiting, []
            return waiting


class MqttBridge:
    """One paho client: subscribes to commands, publishes state, acks and availability."""

    def __init__(self, config: Config, host: str, port: int) -> None:
        self.config = config
        self.base = config.base_topic
        self.host, self.port = host, port
        self.submit: Callable[[Command], None] = lambda command: None
        # called on paho's thread after each (re)connect, once our own topics are published;
        # extensions (Home Assistant discovery) publish and subscribe there
        self.on_connected: list[Callable[[mqtt.Client], None]] = []
        self.connected = threading.Event()
        # paho does not promise to deliver what is published before its CONNACK, so nothing
        # goes to paho while we are not connected: state and availability are cached and said
        # again on connect, acks wait in _held. The gate makes "cache, then publish if
        # connected" one step against on_connect's replay.
        self._gate = threading.RLock()
        self._held: list[tuple[str, bytes, Properties | None]] = []
        self.transactions = TransactionLog(config.mqtt["transaction_window"])
        self.v5 = config.mqtt["protocol"] == "5"
        self._states: dict[tuple[str, str], bool] = {}
        self._availability: dict[str, bool] = {}
        self._outlet_names: dict[str, dict[str, str]] = {}  # what the devices call their outlets
        self._aliases_of: dict[tuple[str, str], list[str]] = {}
        for alias in config.aliases.values():
            self._aliases_of.setdefault((alias.pdu, alias.port), []).append(alias.name)
        self.client = self._make_client()

    # --- connection ------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        cfg = self.config.mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.client_id,
                             protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
                             clean_session=None if self.v5 else False)
        if "username" in cfg:
            password = cfg.get("password")
            if "password_file" in cfg:
                password = Path(cfg["password_file"]).read_text().strip()
            client.username_pw_set(cfg["username"], password)
        tls = cfg.get("tls")
        if tls:
            tls = tls if isinstance(tls, dict) else {}
            client.tls_set(ca_certs=tls.get("ca_certs"), certfile=tls.get("certfile"), keyfile=tls.get("keyfile"))
            client.tls_insecure_set(tls.get("insecure", False))
        client.will_set(f"{self.base}/bridge/state", "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 60)
        # paho rescans every unacknowledged message on each PUBACK, so a large window costs
        # O(window) per message in a burst; 20 is also mosquitto's default Receive Maximum.
        # Messages beyond the window wait in paho's queue (unbounded below), none is dropped.
        client.max_inflight_messages_set(20)
        client.max_queued_messages_set(0)
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        properties = None
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.config.mqtt["session_expiry"]
        self.client.connect_async(self.host, self.port, keepalive=self.config.mqtt["keepalive"],
                                  clean_start=False, properties=properties)
        self.client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline, then leave cleanly (a clean leave does not fire the Last Will)."""
        if self.connected.is_set():
            info = self.client.publish(f"{self.base}/bridge/state", "offline", qos=1, retain=True)
            info.wait_for_publish(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    @staticmethod
    def _on_socket_open(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # A command's state, ack and reply leave as three small writes; with Nagle on, the
        # second waits for the broker's delayed ACK of the first (40 ms on Linux).
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):  # not a TCP socket (a websocket wrapper, a test double)
            pass

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        log.info("connected to %s:%s", self.host, self.port)
        with self._gate:
            self._say_everything(client)
            self.connected.set()
        for hook in self.on_connected:
            try:
                hook(client)
            except Exception:  # an extension's bug must not stop commands being served
                log.exception("on-connect hook %r failed", hook)

    def _say_everything(self, client: mqtt.Client) -> None:
        """Subscribe, then publish what a newcomer (or a broker that restarted) must know."""
        if self.v5:
            # retainAsPublished: a /set someone published retained must reach us flagged, to be refused
            options = SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True)
            client.subscribe([(f"{self.base}/+/+/set", options), (f"{self.base}/+/+/get", options)])
        else:
            client.subscribe([(f"{self.base}/+/+/set", 1), (f"{self.base}/+/+/get", 1)])
        self._send(f"{self.base}/bridge/state", "online", retain=True)
        self._send(f"{self.base}/bridge/info", json.dumps(self.info()), retain=True)
        # after a broker restart the retained topics may be gone: say everything again
        for pdu, online in self._availability.items():
            self._send(f"{self.base}/{pdu}/availability", "online" if online else "offline", retain=True)
        for (pdu, port), on in self._states.items():
            self._send_state(pdu, port, on)
        held, self._held = self._held, []
        for topic, payload, properties in held:
            try:
                self._send(topic, payload, properties=properties)
            except ValueError:  # a response topic paho refuses: nowhere to answer
                log.info("cannot answer on %r", topic[:200])

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._gate:
            self.connected.clear()
        if reason.is_failure:
            log.warning("lost the broker (%s); reconnecting", reason)

    def info(self) -> dict[str, Any]:
        """What ``{base}/bridge/info`` says: version, PDUs with drivers and ports, aliases."""
        return {
            "version": __version__,
            "base_topic": self.base,
            "pdus": {name: {"driver": pdu.driver, "model": getattr(pdu.driver_class, "model", ""),
                            "ports": pdu.ports,
                            **({"outlet_names": self._outlet_names[name]} if name in self._outlet_names else {})}
                     for name, pdu in self.config.pdus.items()},
            "aliases": {name: {"pdu": a.pdu, "port": a.port} for name, a in self.config.aliases.items()},
        }

    # --- in: message, parse, hand over ---------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._handle(message)
        except Exception:  # never let a bug kill paho's network thread
            log.exception("failed to handle a message on %s", message.topic[:200])

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None) if self.v5 else None
        try:
            command = parse(self.config, message.topic, message.payload, retained=bool(message.retain),
                            expiry=getattr(props, "MessageExpiryInterval", None))
        except BadCommand as bad:
            self._reply_fields(bad.command, props)
            log.info("refused %s: %s", message.topic[:200], bad)
            # an outlet that was found (a retained /set, a bad payload) still has a state to tell
            self.ack(bad.command, self._states.get((bad.command.pdu, bad.command.port)), str(bad), time.monotonic())
            return
        self._reply_fields(command, props)
        if command.client_transaction:
            claim = self.transactions.claim(command)
            if claim is not True:
                if claim is not None:  # seen and done: send its first ack again
                    self._send_ack(command, claim)
                return
        self.submit(command)

    @staticmethod
    def _reply_fields(command: Command, props: Any) -> None:
        if props is not None:
            command.response_topic = getattr(props, "ResponseTopic", None)
            command.correlation = getattr(props, "CorrelationData", None)
            if command.response_topic and ("+" in command.response_topic or "#" in command.response_topic):
                log.info("ignoring a response topic with wildcards: %r", command.response_topic[:200])
                command.response_topic = None

    # --- out: what the workers report ------------------------------------------------

    def _send(self, topic: str, payload: str | bytes, retain: bool = False,
              properties: Properties | None = None) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)

    def _send_state(self, pdu: str, port: str, on: bool) -> None:
        payload = b"ON" if on else b"OFF"
        self._send(f"{self.base}/{pdu}/{port}/state", payload, retain=True)
        for alias in self._aliases_of.get((pdu, port), ()):
            self._send(f"{self.base}/alias/{alias}/state", payload, retain=True)

    def state(self, pdu: str, port: str, on: bool) -> None:
        with self._gate:
            self._states[(pdu, port)] = on
            if self.connected.is_set():
                self._send_state(pdu, port, on)

    def availability(self, pdu: str, online: bool) -> None:
        log.log(logging.INFO if online else logging.WARNING, "pdu %s is %s", pdu, "online" if online else "offline")
        with self._gate:
            self._availability[pdu] = online
            if self.connected.is_set():
                self._send(f"{self.base}/{pdu}/availability", "online" if online else "offline", retain=True)

    def outlet_names(self, pdu: str, names: dict[str, str]) -> None:
        with self._gate:
            self._outlet_names[pdu] = names
            if self.connected.is_set():
                self._send(f"{self.base}/bridge/info", json.dumps(self.info()), retain=True)

    def _send_or_hold(self, topic: str, payload: bytes, properties: Properties | None = None) -> None:
        with self._gate:
            if self.connected.is_set():
                self._send(topic, payload, properties=properties)
            else:
                self._held.append((topic, payload, properties))

    def ack(self, command: Command, state: bool | None, error: str | None, started: float) -> None:
        now = time.monotonic()
        payload = ack_payload(command, "error" if error else "ok", state, error,
                              (started - command.received) * 1000, (now - started) * 1000)
        self._send_ack(command, payload)
        if command.client_transaction:
            for repeat in self.transactions.complete(command, payload):
                self._send_ack(repeat, payload)

    def _send_ack(self, command: Command, payload: bytes) -> None:
        if command.on_ack is not None:
            command.on_ack(payload)
        self._send_or_hold(f"{command.reply_to}/ack", payload)
        if command.response_topic:
            props = copy.copy(_EMPTY_PUBLISH_PROPERTIES)
            if command.correlation is not None:
                props.CorrelationData = command.correlation
            try:
                self._send_or_hold(command.response_topic, payload, properties=props)
            except ValueError:  # a response topic with wildcards: nowhere to answer
                log.info("cannot answer on response topic %r", command.response_topic[:200])
