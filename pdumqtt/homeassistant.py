"""Home Assistant MQTT discovery: every outlet appears as a switch and a restart button.

A PDU that meters (``meter_interval``) also gets one sensor per reading it reports, for
each outlet and for the PDU's totals, with the device class, unit and state class Home
Assistant's energy features expect (energy as ``total_increasing``).

One device per PDU (identifiers, name, the driver's model), an origin block, availability
from ``{base}/bridge/state`` and ``{base}/<pdu>/availability`` with mode ``all``, no
``object_id``. The config messages are retained, sent on every connect to the broker and
again when Home Assistant announces ``online`` on ``{prefix}/status``.

Topics: ``{prefix}/switch/<node>/<pdu>_<port>/config`` and ``{prefix}/button/...``, or with
``device_based`` one ``{prefix}/device/<node>/<pdu>/config`` per PDU. ``<node>`` is
``pdumqtt_<base topic>``, so several pdumqtt daemons on one broker never touch each
other's entities.

Which Home Assistant takes it: per-entity discovery (the default) uses only keys that
Home Assistant 2024.3 accepts (its schema refuses unknown ones, and the whole entity with
them: ``model_id`` came in 2024.8); ``device_based`` needs 2024.11, where device discovery
came, and adds ``model_id``.

Stale entities (outlets or PDUs that left the config, or the other discovery style after
``device_based`` changed) are removed with an empty retained payload. What was published
before is read back from the broker itself: on connect we subscribe to
``{prefix}/+/<node>/+/config``, collect the retained messages, and publish a marker on a
topic of our own; the broker delivers the marker after the retained messages (one
connection, in order), so when it arrives the list is complete. The broker's retained
store is the record: nothing to keep in step with it, and it also holds what an older
pdumqtt (or a lost state file) left behind.

The configs are built as they are published, a batch per room in a
:class:`~pdumqtt.bridge.PublishWindow` of discovery's own, and not kept: tens of thousands
of them never sit in memory (ours or paho's) at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import paho.mqtt.client as mqtt

from pdumqtt import __version__
from pdumqtt.bridge import PublishWindow
from pdumqtt.config import Config, PduConfig
from pdumqtt.drivers import READING_UNITS

log = logging.getLogger(__name__)

SEND_BATCH = 200  # configs built and handed to paho per room in the window
# Configs with paho at once: QoS 0, so each is done once written, in a moment (a device's config
# holds all its outlets, some 17 KB for 24: fewer of those)
DISCOVERY_WINDOW, DEVICE_WINDOW = 1000, 50
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Home Assistant's sensor device classes and state classes for each reading
_SENSOR_CLASSES = {"power": ("power", "measurement"), "current": ("current", "measurement"),
                   "voltage": ("voltage", "measurement"), "energy": ("energy", "total_increasing")}
_PRECISION = {"power": 1, "current": 2, "voltage": 0, "energy": 3}


def safe_id(text: str) -> str:
    """``text`` as a discovery topic level (``[A-Za-z0-9_-]``), kept distinct when changed."""
    cleaned = _UNSAFE.sub("_", text)
    if cleaned != text:
        cleaned += "_" + hashlib.sha1(text.encode()).hexdigest()[:6]
    return cleaned


def _label(port: str, aliases: list[str]) -> str:
    if aliases:
        return ", ".join(sorted(aliases))
    return f"Outlet {port}" if port.isdigit() else port


class Discovery:
    """Publishes, refreshes and cleans up the discovery configs over the bridge's client."""

    def __init__(self, config: Config, client: mqtt.Client) -> None:
        self.config = config
        self.client = client
        # a window of its own: the QoS 0 configs are written in a moment, and must not queue
        # behind the bridge's QoS 1 states, which wait for their PUBACKs
        self.window = PublishWindow(client, DEVICE_WINDOW if config.homeassistant["device_based"] else DISCOVERY_WINDOW)
        self.base = config.base_topic
        self.prefix = config.homeassistant["prefix"]
        self.device_based = config.homeassistant["device_based"]
        self.node = safe_id(f"pdumqtt_{self.base.replace('/', '_')}")
        self.status_topic = f"{self.prefix}/status"
        self._take(config)
        self.scan_topic = f"{self.prefix}/+/{self.node}/+/config"
        self._marker_topic = f"{self.base}/bridge/discovery-sync/{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._sending = threading.Lock()
        self._found: dict[str, bytes | None] = {}  # a topic found, and its payload where messages() needs it
        self._marker: str | None = None  # the marker we wait for, while a scan is under way
        self._done_marker = ""  # comes back once the broker has every config of the last sync
        self.synced = threading.Event()  # set once the broker holds what the last scan published
        client.message_callback_add(self.status_topic, self._on_status)
        client.message_callback_add(self.scan_topic, self._on_found)
        client.message_callback_add(f"{self._marker_topic}/+", self._on_marker)

    def _take(self, config: Config) -> None:
        self.config = config
        self._renamed = self._renamed_outlets()
        self.sensor_ids = self._sensor_ids()
        aliases: dict[tuple[str, str], list[str]] = {}
        for alias in config.aliases.values():
            aliases.setdefault((alias.pdu, alias.port), []).append(alias.name)
        self._aliases = aliases

    def reconfigure(self, config: Config) -> None:
        """A reload: publish the new PDUs' entities and remove those of PDUs and outlets that went
        (the usual sync: what the broker holds under our node and the config no longer has is emptied)."""
        self._take(config)
        if self.client.is_connected():
            self.refresh()

    # --- what we publish ---------------------------------------------------------------

    def origin(self) -> dict[str, Any]:
        return {"name": "pdumqtt", "sw_version": __version__}

    def device(self, pdu: PduConfig) -> dict[str, Any]:
        model = getattr(pdu.driver_class, "model", "") or pdu.driver
        # no sw_version: that is the device's firmware, which pdumqtt does not know
        device = {"identifiers": [f"{self.node}_{safe_id(pdu.name)}"], "name": pdu.name, "model": model}
        if self.device_based:  # model_id came in 2024.8, device discovery in 2024.11: an older HA
            device["model_id"] = pdu.driver  # refuses a per-entity config that carries it
        return device

    def availability(self, pdu: PduConfig) -> dict[str, Any]:
        return {"availability": [{"topic": f"{self.base}/bridge/state"},
                                 {"topic": f"{self.base}/{pdu.name}/availability"}],
                "availability_mode": "all", "payload_available": "online", "payload_not_available": "offline"}

    def _port_ids(self, pdu: PduConfig) -> dict[str, str]:
        ids = {port: safe_id(port) for port in pdu.ports}
        if len(set(ids.values())) != len(ids):  # "a.b" and "a_b": make them differ
            ids = {port: f"{pid}_{hashlib.sha1(port.encode()).hexdigest()[:6]}" for port, pid in ids.items()}
        return ids

    def _outlet_ids(self) -> Iterator[tuple[tuple[str, str], str]]:
        """``<pdu>_<port>`` per outlet, as ((pdu, port), id): unique within a PDU, not always across."""
        for pdu in self.config.pdus.values():
            pdu_id = safe_id(pdu.name)
            for port, port_id in self._port_ids(pdu).items():
                yield (pdu.name, port), f"{pdu_id}_{port_id}"

    def _renamed_outlets(self) -> dict[tuple[str, str], str]:
        """The outlets whose ``<pdu>_<port>`` another PDU's outlet also has ("a_b"/"c" and "a"/"b_c"),
        with the id each gets instead. Only these are kept: the rest are made again when needed
        (tens of thousands of strings otherwise, for as long as the daemon runs)."""
        taken = Counter(oid for _, oid in self._outlet_ids())
        return {key: f"{oid}_{hashlib.sha1('/'.join(key).encode()).hexdigest()[:6]}"
                for key, oid in self._outlet_ids() if taken[oid] > 1}

    def _object_ids(self, pdu: PduConfig) -> dict[str, str]:
        """The object id of each of a PDU's outlets, unique across all PDUs, by port."""
        pdu_id = safe_id(pdu.name)
        return {port: self._renamed.get((pdu.name, port)) or f"{pdu_id}_{port_id}"
                for port, port_id in self._port_ids(pdu).items()}

    def components(self, pdu: PduConfig) -> list[tuple[str, str, dict[str, Any]]]:
        """Per outlet a switch and a restart button, as (object id, component id, config)."""
        out = []
        object_ids = self._object_ids(pdu)
        for port, port_id in self._port_ids(pdu).items():
            label = _label(port, self._aliases.get((pdu.name, port), []))
            topic = f"{self.base}/{pdu.name}/{port}"
            oid = object_ids[port]
            unique = f"{self.node}_{oid}"
            out.append((oid, f"{port_id}_switch", {
                "platform": "switch", "name": label, "unique_id": f"{unique}_switch",
                "device_class": "outlet", "command_topic": f"{topic}/set", "state_topic": f"{topic}/state",
                "payload_on": "ON", "payload_off": "OFF", "state_on": "ON", "state_off": "OFF",
                "optimistic": False, "retain": False, "qos": 1,
            }))
            out.append((oid, f"{port_id}_restart", {
                "platform": "button", "name": f"{label} restart", "unique_id": f"{unique}_restart",
                "device_class": "restart", "command_topic": f"{topic}/set", "payload_press": "CYCLE",
                "retain": False, "qos": 1,
            }))
        return out

    @staticmethod
    def _metered(pdu: PduConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What a PDU's sensors are: its readings per outlet and for the unit, if it meters."""
        driver = pdu.driver_class
        if not pdu.meter_interval or not getattr(driver, "can_meter", False):
            return (), ()
        outlet, total = driver.readings(pdu.options)
        return tuple(k for k in outlet if k in READING_UNITS), tuple(k for k in total if k in READING_UNITS)

    def _sensor_ids(self) -> dict[tuple[str, str | None, str], str]:
        """An object id per sensor, ``<pdu>_<port>_<kind>`` or ``<pdu>_<kind>``, unique across all."""
        ids: dict[tuple[str, str | None, str], str] = {}
        for pdu in self.config.pdus.values():
            outlet, total = self._metered(pdu)
            object_ids = self._object_ids(pdu) if outlet else {}
            for port in pdu.ports if outlet else ():
                for kind in outlet:
                    ids[(pdu.name, port, kind)] = f"{object_ids[port]}_{kind}"
            for kind in total:
                ids[(pdu.name, None, kind)] = f"{safe_id(pdu.name)}_{kind}"
        taken: dict[str, int] = {}
        for oid in ids.values():
            taken[oid] = taken.get(oid, 0) + 1
        return {key: oid if taken[oid] == 1 else
                f"{oid}_{hashlib.sha1(repr(key).encode()).hexdigest()[:6]}" for key, oid in ids.items()}

    def sensors(self, pdu: PduConfig) -> list[tuple[str, str, dict[str, Any]]]:
        """Per reading a sensor, as (object id, component id, config); none unless the PDU meters."""
        outlet, total = self._metered(pdu)
        port_ids = self._port_ids(pdu)
        out = []
        targets: list[tuple[str | None, tuple[str, ...]]] = [(port, outlet) for port in pdu.ports if outlet]
        targets.append((None, total))
        for port, kinds in targets:
            for kind in kinds:
                oid = self.sensor_ids[(pdu.name, port, kind)]
                device_class, state_class = _SENSOR_CLASSES[kind]
                if port is None:
                    # a bare kind, never <port>_<kind>: cannot clash with an outlet's components
                    name, topic, cid = f"Total {kind}", f"{self.base}/{pdu.name}/{kind}", kind
                else:
                    label = _label(port, self._aliases.get((pdu.name, port), []))
                    name, topic, cid = f"{label} {kind}", f"{self.base}/{pdu.name}/{port}/{kind}", \
                        f"{port_ids[port]}_{kind}"
                out.append((oid, cid, {
                    "platform": "sensor", "name": name, "unique_id": f"{self.node}_{oid}",
                    "device_class": device_class, "state_class": state_class,
                    "unit_of_measurement": READING_UNITS[kind], "state_topic": topic,
                    "suggested_display_precision": _PRECISION[kind], "qos": 1,
                }))
        return out

    def messages(self, found: dict[str, bytes | None] | None = None) -> Iterator[tuple[str, bytes]]:
        """Every discovery topic of the current config with its payload, built as asked for.

        ``found`` is what the broker held: device-based configs name the components that
        left (a component with only its platform is how Home Assistant removes one).
        """
        found = found or {}
        for pdu in self.config.pdus.values():
            shared = {"device": self.device(pdu), "origin": self.origin(), **self.availability(pdu)}
            if self.device_based:
                topic = f"{self.prefix}/device/{self.node}/{safe_id(pdu.name)}/config"
                components = {cid: config for _, cid, config in self.components(pdu)}
                components.update({cid: config for _, cid, config in self.sensors(pdu)})
                for cid, old in _components_of(found.get(topic)).items():
                    if cid not in components and isinstance(old, dict) and set(old) - {"platform", "p"}:
                        components[cid] = {"platform": old.get("platform", old.get("p"))}
                yield topic, json.dumps({**shared, "qos": 1, "components": components}).encode()
                continue
            # the PDU's part of every entity's config, encoded once and joined to each: the
            # encoding is most of the time a config takes
            tail = ", " + json.dumps(shared)[1:]
            for oid, _, config in self.components(pdu):
                yield f"{self.prefix}/{config['platform']}/{self.node}/{oid}/config", _joined(config, tail)
            for oid, _, config in self.sensors(pdu):
                yield f"{self.prefix}/sensor/{self.node}/{oid}/config", _joined(config, tail)

    def _stale(self, found: Iterable[str]) -> list[str]:
        """The topics in ``found`` that the current config does not publish."""
        if not found:
            return []
        if self.device_based:
            current = {("device", safe_id(name)) for name in self.config.pdus}
        else:
            current = {(config["platform"], oid) for pdu in self.config.pdus.values()
                       for oid, _, config in self.components(pdu)}
            current.update(("sensor", oid) for oid in self.sensor_ids.values())
        # a found topic is {prefix}/<platform>/{node}/<object id>/config (the scan's pattern)
        return sorted(topic for topic in found if tuple(topic.rsplit("/", 4)[1:4:2]) not in current)

    # --- a sync: on_connected on the bridge's thread after a connect, the scan's callbacks on
    # paho's, the sending on a thread of its own ---------------------------------------------

    def on_connected(self, client: mqtt.Client) -> None:
        """Subscribe to Home Assistant's status, then read back what we published before."""
        client.subscribe(self.status_topic, qos=1)
        with self._lock:
            self._marker = None  # a scan cut short by the disconnect will never finish
        self.refresh()

    def refresh(self) -> None:
        """Scan the broker's retained discovery configs, then publish and clean up."""
        with self._lock:
            if self._marker is not None:  # a scan is under way and will publish when done
                return
            self.synced.clear()
            self._found = {}
            self._marker = f"{self._marker_topic}/{uuid.uuid4().hex[:8]}"
        # no "no local" here: the marker must come back to us
        self.client.subscribe([(self.scan_topic, 1), (f"{self._marker_topic}/+", 1)])
        self.client.publish(self._marker, b"", qos=1)

    def _on_found(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.retain and message.payload:
            # only a device's config is read again (the components it had); the others need just the topic
            keep = message.payload if self.device_based and message.topic.rsplit("/", 4)[1] == "device" else None
            with self._lock:
                if self._marker is not None:
                    self._found[message.topic] = keep

    def _on_marker(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._done_marker:  # the broker has taken everything we published
            self.synced.set()
            return
        with self._lock:
            if message.topic != self._marker:
                return
            self._marker, found = None, self._found
        client.unsubscribe(self.scan_topic)
        # off paho's thread: the sender waits for each batch to leave, which paho's own must not
        threading.Thread(target=self._send, args=(found,), name="ha-discovery", daemon=True).start()

    def _send(self, found: dict[str, bytes | None]) -> None:
        """Remove the stale configs, then publish the current ones, as the window makes room."""
        with self._sending:  # one sync at a time, in the order they were asked for
            stale = self._stale(found)
            # first: an entity moving to the other discovery style must be gone before it comes back
            removed = self._publish((topic, b"") for topic in stale)
            published = self._publish(self.messages(found)) if removed is not None else None
            if published is None or not self.client.is_connected():
                return  # disconnected: the next connect syncs again
            log.info("Home Assistant discovery: %d configs under %s/, %d stale removed", published, self.prefix,
                     removed)
            self._done_marker = f"{self._marker_topic}/done{uuid.uuid4().hex[:8]}"
            self.client.publish(self._done_marker, b"", qos=1)

    def _publish(self, messages: Iterable[tuple[str, bytes]]) -> int | None:
        """Hand ``messages`` to paho, retained, a batch per room in the window; how many, or None
        once the connection went.

        QoS 0: tens of thousands of configs at start were the broker's slowest work (each a
        PUBACK both ways). Nothing is lost by it: they are retained, all sent again on every
        (re)connect, and the QoS 1 marker after them comes back only once the broker took them all.
        """
        count = 0
        messages = iter(messages)
        while batch := list(islice(messages, min(SEND_BATCH, self.window.size // 2 or 1))):
            with self.window.room(len(batch), None, self.client.is_connected) as reserved:
                if not reserved or not self.client.is_connected():  # paho would drop them
                    return None
                for topic, payload in batch:
                    self.window.publish(topic, payload, qos=0, retain=True)
            count += len(batch)
        return count

    def _on_status(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.payload.strip().lower() == b"online":
            log.info("Home Assistant is online: sending discovery again")
            self.refresh()


def _joined(config: dict[str, Any], tail: str) -> bytes:
    """An entity's config (less its platform, which the topic says) joined to the PDU's part."""
    return (json.dumps({k: v for k, v in config.items() if k != "platform"})[:-1] + tail).encode()


def _components_of(payload: bytes | None) -> dict[str, Any]:
    if not payload:
        return {}
    try:
        data = json.loads(payload)
    except ValueError:
        return {}
    components = data.get("components", data.get("cmps")) if isinstance(data, dict) else None
    return components if isinstance(components, dict) else {}
