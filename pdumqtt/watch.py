"""``pdumqtt watch``: a live view of every outlet, from the topics the daemon publishes.

It owns a small model of what the broker says (the bridge's state, each PDU's
availability, each outlet's retained state and its last ack) and two ways to show it:
a table redrawn as messages arrive (rich), or one JSON line per change for scripts.
It only subscribes: watching never sends a command.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from pdumqtt import topics
from pdumqtt.client import BrokerOptions, NoAnswer


@dataclass
class Outlet:
    state: str = "?"
    last_ack: dict[str, Any] | None = None


@dataclass
class Fleet:
    """What the broker has told us so far, under one base topic."""

    base: str
    only_pdu: str | None = None
    bridge: str = "?"
    version: str = "?"
    ports: dict[str, list[str]] = field(default_factory=dict)  # from bridge/info
    availability: dict[str, str] = field(default_factory=dict)
    outlets: dict[tuple[str, str], Outlet] = field(default_factory=dict)

    def apply(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        """Take one message in; return the change it made as an event, or None."""
        published = topics.parse(self.base, topic)
        if published is None:
            return None
        text = payload.decode(errors="replace")
        if published.kind == topics.BRIDGE_STATE:
            self.bridge = text or "?"
            return {"event": "bridge", "state": self.bridge}
        if published.kind == topics.BRIDGE_INFO:
            try:
                info = json.loads(text) if text else {}
            except ValueError:
                return None
            self.version = str(info.get("version", "?"))
            self.ports = {name: [str(p) for p in pdu.get("ports", [])]
                          for name, pdu in (info.get("pdus") or {}).items()}
            return {"event": "info", "pdus": sorted(self.ports)}
        pdu, port = published.pdu, published.port
        if pdu is None or (self.only_pdu and pdu != self.only_pdu):
            return None
        if published.kind == topics.AVAILABILITY:
            self.availability[pdu] = text
            return {"event": "availability", "pdu": pdu, "availability": text}
        if port is None:
            return None
        if published.kind == topics.STATE:
            self.outlets.setdefault((pdu, port), Outlet()).state = text
            return {"event": "state", "pdu": pdu, "port": port, "state": text}
        if published.kind == topics.ACK:
            try:
                ack = json.loads(text)
            except ValueError:
                return None
            if not isinstance(ack, dict):
                return None
            self.outlets.setdefault((pdu, port), Outlet()).last_ack = ack
            return {"event": "ack", "pdu": pdu, "port": port, "ack": ack}
        return None

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(PDU, port, state, availability, last ack) for every outlet known, in config order."""
        keys: list[tuple[str, str]] = []
        for pdu, ports in sorted(self.ports.items()):
            if self.only_pdu in (None, pdu):
                keys += [(pdu, port) for port in ports]
        keys += sorted(k for k in self.outlets if k not in set(keys))
        out = []
        for pdu, port in keys:
            outlet = self.outlets.get((pdu, port), Outlet())
            out.append((pdu, port, outlet.state, self.availability.get(pdu, "?"), describe_ack(outlet.last_ack)))
        return out


def describe_ack(ack: dict[str, Any] | None) -> str:
    if not ack:
        return ""
    action = ack.get("action", "?")
    if ack.get("status") == "ok":
        return f"{action} ok ({ack.get('took_ms', 0):.0f} ms)"
    return f"{action} failed: {str(ack.get('error'))[:60]}"


class Watcher:
    """An MQTT subscription feeding ``fleet``; ``on_change`` is called on paho's thread per change."""

    def __init__(self, options: BrokerOptions, fleet: Fleet, on_change: Callable[[dict[str, Any]], None]) -> None:
        self.options, self.fleet, self.on_change = options, fleet, on_change
        self.lock = threading.Lock()
        self._connected = threading.Event()
        self._refused: str | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if options.username:
            self.client.username_pw_set(options.username, options.password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: self._subscribed.set()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        else:
            base = self.options.base_topic
            topics = [f"{base}/bridge/+", f"{base}/+/availability", f"{base}/+/+/state", f"{base}/+/+/ack"]
            client.subscribe([(t, 1) for t in topics])
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            change = self.fleet.apply(message.topic, message.payload)
        if change is not None:
            self.on_change(change)

    def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe, returning once the broker confirmed the subscription;
        NoAnswer when the broker cannot be reached or refuses us."""
        where = f"{self.options.host}:{self.options.port}"
        try:
            self.client.connect(self.options.host, self.options.port, keepalive=30)
        except OSError as e:
            raise NoAnswer(f"cannot reach the broker at {where}: {e}") from None
        self.client.loop_start()
        if not self._connected.wait(timeout) or self._refused or not self._subscribed.wait(timeout):
            self.stop()
            raise NoAnswer(f"the broker at {where} did not accept the connection"
                           + (f": {self._refused}" if self._refused else ""))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run_table(watcher: Watcher, changed: threading.Event, stop: threading.Event) -> None:
    """The live table, redrawn when messages have arrived, until ``stop``."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    fleet, options = watcher.fleet, watcher.options
    styles = {"ON": "green", "OFF": "red", "online": "green", "offline": "red"}

    def render() -> Table:
        table = Table(title=f"pdumqtt {fleet.version} at {options.host}:{options.port}, bridge {fleet.bridge}",
                      title_justify="left")
        for column in ("PDU", "PORT", "STATE", "AVAILABILITY", "LAST ACK"):
            table.add_column(column)
        with watcher.lock:
            rows = fleet.rows()
        for pdu, port, state, availability, ack in rows:
            table.add_row(pdu, port, f"[{styles.get(state, 'yellow')}]{state}",
                          f"[{styles.get(availability, 'yellow')}]{availability}", ack)
        return table

    with Live(render(), console=Console(), auto_refresh=False) as live:
        while not stop.is_set():
            if changed.wait(0.5):
                time.sleep(0.1)  # let a burst of messages land, then draw once
                changed.clear()
                live.update(render(), refresh=True)
