"""The MQTT side: the connection, the subscriptions, and everything published.

paho's network thread calls ``_on_message``, which only parses the message and hands
the command to the runner (or answers a bad one at once); the PDU workers call back
into :meth:`MqttBridge.state`, :meth:`availability` and :meth:`ack` to publish.
Nothing heavy runs on the network thread: on each connect a thread of its own says
everything again (:meth:`MqttBridge._say_everything`).

What paho holds is bounded (:class:`PublishWindow`): the workers, that replay and Home
Assistant discovery wait for room before they hand paho more, so memory stays flat
however much is published at once.

Messages are acknowledged by hand (paho's ``manual_ack``): with a journal
(``pdumqtt/journal.py``) the PUBACK waits until the command is on disk, and the journal
hears when the broker has each ack, so a crash neither loses nor repeats a command.
"""

from __future__ import annotations

import copy
import errno
import json
import logging
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from pdumqtt import __version__, mqtt_wire
from pdumqtt.commands import BadCommand, Command, ack_payload, parse, quote, response_topic_problem
from pdumqtt.config import Config, PduConfig
from pdumqtt.journal import Journal
from pdumqtt.readings import KINDS, Deadband
from pdumqtt.readings import payload as reading_payload

log = logging.getLogger(__name__)

# Properties() rebuilds its lookup tables on every call (17 us, once per reply); a copy of an
# empty one shares those read-only tables (6 us).
_EMPTY_PUBLISH_PROPERTIES = Properties(PacketTypes.PUBLISH)

# paho waits twice as long after each failed attempt; capped here so that the daemon is
# back within a couple of seconds of its broker, not paho's default of up to two minutes
RECONNECT_MIN_DELAY, RECONNECT_MAX_DELAY = 1, 2
# A retained "online" outlives a broker restart (persistence) while we may be gone for good:
# published with this message expiry (MQTT v5) and said again well before it lapses.
ONLINE_EXPIRY, ONLINE_REFRESH = 30, 10.0
DAEMON_PROPERTY = "pdumqtt-daemon"  # the user property naming the daemon on its Last Will
MAX_TRANSACTIONS = 100_000  # remembered at once; the oldest finished ones go first
MAX_RESPONSE_TOPICS = 1024  # verdicts remembered; requesters usually keep one response topic each
# Messages handed to paho and not yet done with, at most: ten times paho's 20 in flight, so the
# window never idles the connection, and few enough that an ack made during a flood of states
# (every outlet's, at start) waits behind some milliseconds of them, not tens.
PUBLISH_WINDOW = 200
# A worker waits this long for room, then publishes anyway: a broker that stopped reading must
# not wedge a PDU (paho then holds more, and the bridge says so once).
PUBLISH_WAIT = 5.0
QUIET = 20  # messages paho holds, below which a worker writes a state itself (see _Client)
REPLAY_CHUNK = 100  # messages said again per reservation (and per turn of the gate) on connect
WAIT_SLICE = 0.5  # the first waiting for room looks again this often (a disconnect, a stop)


def connect_failure(error: BaseException, host: str, port: int) -> str:
    """One line saying why a connection attempt to the broker failed."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS verification of {host}:{port} failed: {error.verify_message or error.reason}"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake with {host}:{port} failed: {error.reason or error}"
    if isinstance(error, ConnectionRefusedError):
        return f"{host}:{port} refused the connection (is the broker running?)"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {host}: {error.strerror}"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"{host}:{port} did not answer in time"
    if isinstance(error, OSError) and error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"{host}:{port} is unreachable: {error.strerror}"
    return f"cannot connect to {host}:{port}: {type(error).__name__}: {error}"


@dataclass
class _Transaction:
    seen: float
    ack: bytes | None = None  # None while the first command still runs
    waiting: list[Command] = field(default_factory=list)


class TransactionLog:
    """Transaction ids seen within the window, so that a repeated one runs only once.

    An id is remembered per outlet (PDU and port number): the same id sent to another
    outlet is another command, and runs.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._entries: OrderedDict[tuple[str, int, str], _Transaction] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, command: Command) -> bytes | bool | None:
        """True when ``command`` is new; else its first ack, or None if that is still to come."""
        now = time.monotonic()
        with self._lock:
            while self._entries:
                oldest = next(iter(self._entries.values()))
                if (now - oldest.seen <= self.window and len(self._entries) < MAX_TRANSACTIONS) \
                        or oldest.ack is None:
                    break
                self._entries.popitem(last=False)
            key = (command.pdu, command.number, command.transaction)
            entry = self._entries.get(key)
            if entry is None:
                self._entries[key] = _Transaction(now)
                return True
            if entry.ack is None:
                entry.waiting.append(command)
            return entry.ack

    def complete(self, command: Command, ack: bytes) -> list[Command]:
        """Record the first command's ack; return the repeats that waited for it."""
        with self._lock:
            entry = self._entries.get((command.pdu, command.number, command.transaction))
            if entry is None:
                return []
            entry.ack, waiting, entry.waiting = ack, entry.waiting, []
            return waiting


class _Client(mqtt.Client):
    """paho's client, acknowledging by hand and keeping why the last connection attempt failed.

    Each message is acknowledged once handled, in arrival order: the bridge's own by
    ``_on_message``, an extension's (``message_callback_add``, e.g. Home Assistant's
    status) once its callback returns. ``last_error``: paho's loop catches the reason of a
    failed attempt and only calls on_connect_fail, without it. A command's PUBLISH and the
    PUBACKs of what it publishes are decoded by ``pdumqtt/mqtt_wire.py`` when it can.
    """

    release: Callable[[mqtt.MQTTMessage], None]
    last_error: BaseException | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # paho wakes its network thread for each packet another thread queues, and that thread
        # then writes it: a command's PUBACK (the journal's thread), its state, ack and reply (its
        # worker) cost four wake-ups and thread hand-overs. On a plain TCP socket the queuing thread writes them itself
        # (sending and receiving from two threads is safe there, unlike TLS or websockets);
        # this lock keeps one writer at a time, so packets leave whole and in queue order.
        self._write_lock = threading.RLock()
        # the threads inside batch(), by ident: how many packets each has queued there (a dict,
        # not a threading.local, which would cost each of a thousand workers a dict of its own)
        self._batches: dict[int, int] = {}

    def _packet_write(self) -> mqtt.MQTTErrorCode:
        with self._write_lock:
            return super()._packet_write()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """What this thread queues inside leaves together, in one write, at the end."""
        me = threading.get_ident()
        if me in self._batches:  # inside another: that one writes
            yield
            return
        self._batches[me] = 0
        try:
            yield
        finally:
            queued = self._batches.pop(me)
            if queued:
                self._flush(queued)

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> mqtt.MQTTErrorCode:
        if not self._batches:  # the common case, first: every discovery config comes this way
            return mqtt.Client._packet_queue(self, command, packet, mid, qos, info)
        me = threading.get_ident()
        queued = self._batches.get(me)
        if (queued is None or self._thread is None or me == self._thread.ident or self._ssl
                or self._transport not in ("tcp", "unix")):
            return mqtt.Client._packet_queue(self, command, packet, mid, qos, info)
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                 "to_process": len(packet), "packet": packet, "info": info})
        self._batches[me] = queued + 1
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _flush(self, queued: int) -> None:
        """Write what is queued, this thread's ``queued`` packets last, unless others' wait
        before them (in a burst the network thread writes many per wake-up, for less than each
        thread writing its own) or another thread is writing (it writes ours too); what is left
        goes to the network thread, which also waits for a full socket to drain."""
        written = False
        if len(self._out_packet) <= queued and self._write_lock.acquire(blocking=False):
            try:
                written = self._write_queued()
            finally:
                self._write_lock.release()
        if not written:
            try:
                self._sockpairW.send(b"0")  # paho's wake-up byte
            except (AttributeError, OSError):  # no socket pair (stopping), or already woken
                pass

    def _write_queued(self) -> bool:
        """Under the write lock: write the PUBLISHes (QoS 1) and PUBACKs at the head of paho's
        queue, in one send; False when something is left for the network thread (a full
        socket, a packet whose writing has consequences paho handles there, a connection going)."""
        out, sock = self._out_packet, self._sock
        if sock is None:
            return not out
        head = []
        for index in range(len(out)):  # by index: iterating would fail when another thread appends
            packet = out[index]
            kind = packet["command"] & 0xF0
            if not (kind == mqtt.PUBACK or (kind == mqtt.PUBLISH and packet["qos"])):
                break
            head.append(packet)
        if not head:
            return not out
        try:
            sent = sock.send(b"".join(p["packet"][p["pos"]:] if p["pos"] else p["packet"] for p in head))
        except OSError:  # BlockingIOError, or the connection is going: the network thread sees to it
            return False
        with self._msgtime_mutex:
            self._last_msg_out = time.monotonic()  # paho's time_func: the keepalive counts from here
        for packet in head:
            took = min(sent, packet["to_process"])
            packet["pos"] += took
            packet["to_process"] -= took
            sent -= took
            if packet["to_process"]:
                return False
            out.popleft()
        return not out

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            with self._write_lock:  # it empties paho's queue, which a writing thread may be reading
                return super().reconnect()
        except OSError as e:
            self.last_error = e
            raise

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        # paho's own decoder for what mqtt_wire leaves to it, and whenever paho is asked to log
        decoded = None
        if self._protocol == mqtt.MQTTv5 and self.on_log is None and self._logger is None:
            decoded = mqtt_wire.decode_publish(self._in_packet["command"], self._in_packet["packet"])
        if decoded is None:
            return super()._handle_publish()
        self._handle_on_message(mqtt_wire.incoming_message(decoded, time.monotonic()))  # paho's time_func
        if decoded.qos == 1 and not self._manual_ack:
            return self._send_puback(decoded.mid)
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_pubackcomp(self, cmd: Any) -> mqtt.MQTTErrorCode:
        decoded = None
        if cmd == "PUBACK" and self.on_log is None and self._logger is None:
            decoded = mqtt_wire.decode_puback(self._in_packet["packet"], self._protocol == mqtt.MQTTv5)
        if decoded is None:
            return super()._handle_pubackcomp(cmd)
        mid, reason, properties = decoded
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, reason, properties)
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def message_callback_add(self, sub: str, callback: Callable[..., None]) -> None:  # type: ignore[override]
        def handled(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                callback(client, userdata, message)
            finally:
                self.release(message)

        super().message_callback_add(sub, handled)


class PublishWindow:
    """A bound on what paho holds: messages handed to it and not yet done with.

    A QoS 1 message is done when its PUBACK comes: paho keeps it until then, across
    reconnects, and sends it again after each CONNACK whether or not the broker kept the
    session. A QoS 0 one is done once written to the socket, or when a reconnect drops it
    unwritten. paho marks each on the message's MQTTMessageInfo, which is what the window
    keeps, in publish order: no mid to wrap around at 65535, and no ``on_publish``, for
    which paho would build a reason code and properties per QoS 0 message written (that
    doubled the time discovery took).

    Publishers reserve room first (:meth:`room`), outside any lock paho's thread needs;
    what they then publish stays within their reservation, so paho never holds more than
    ``size`` of theirs. Those who must wait queue up; the first in line waits for the
    message whose end makes room, then looks again.
    """

    def __init__(self, client: mqtt.Client, size: int = PUBLISH_WINDOW) -> None:
        self.client = client
        self.size = size
        self.overruns = 0  # reservations that waited their whole timeout and went over the bound
        self._lock = threading.Lock()  # over _sent's pruning and _reserved
        self._line = threading.Lock()  # held by the first of those waiting for room
        self._sent: deque[mqtt.MQTTMessageInfo] = deque()  # handed to paho, oldest first
        self._reserved = 0
        self._waiting = 0
        self._released = threading.Event()  # a reservation ended: the first in line looks again
        self._woken = 0  # wake() calls: a waiter asks wanted() again at once
        self._stalled = False  # said once per stall

    @property
    def outstanding(self) -> int:
        """Messages paho holds for us (QoS 1 not yet acknowledged, QoS 0 not yet written)."""
        with self._lock:
            return self._level() - self._reserved

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False,
                properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        """``client.publish``, with the message kept in the window until done."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        # refused (no connection: QoS 0 is dropped, QoS 1 is sent on connect and waits for
        # nobody, as nothing is published while disconnected but by a race)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._sent.append(info)
        return info

    def _level(self) -> int:
        """Under the lock: messages not yet done, and room reserved (drops the done ones first)."""
        sent = self._sent
        while sent and _done(sent[0]):
            sent.popleft()
        return len(sent) + self._reserved

    def wake(self) -> None:
        """Let the waiters ask again whether they still want room (a disconnect, a stop)."""
        self._woken += 1
        self._released.set()

    def reserve(self, count: int, timeout: float | None, wanted: Callable[[], bool]) -> bool:
        """Wait for room for ``count`` messages and reserve it; False (nothing reserved) once
        ``wanted()`` is false. After ``timeout`` seconds the room is taken all the same, and
        from then on at once (no wait per message) until the broker has caught up."""
        need = min(count, self.size)  # more could never fit: it waits for an empty window
        with self._lock:
            level = self._level()
            if self._stalled and level <= self.size // 2:
                self._stalled = False
                log.info("the broker caught up: %d messages unacknowledged", len(self._sent))
            if (not self._waiting and level + need <= self.size) or (self._stalled and timeout is not None):
                self._reserved += count
                return True
            self._waiting += 1
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if not self._line.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
                return self._overrun(count, timeout)
            try:
                while True:
                    woken = self._woken
                    self._released.clear()
                    with self._lock:
                        short = self._level() + need - self.size  # messages that must be done first
                        if short <= 0:
                            self._reserved += count
                            return True
                        # done mostly in order: the one that makes room when done, not one wakeup per
                        # message; if that one is done already, the oldest (not done) holds things up
                        last = self._sent[short - 1] if short <= len(self._sent) else None
                        if last is not None and _done(last):
                            last = self._sent[0]
                    if not wanted():
                        return False
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return self._overrun(count, timeout)
                    if woken != self._woken:
                        continue
                    # that one done, or a reservation ended, or a wake(); a while at most, to look again
                    slice_ = WAIT_SLICE if left is None else min(left, WAIT_SLICE)
                    if last is None:
                        self._released.wait(slice_)
                    else:
                        _wait(last, slice_)
            finally:
                self._line.release()
        finally:
            with self._lock:
                self._waiting -= 1

    def _overrun(self, count: int, timeout: float | None) -> bool:
        with self._lock:
            self._reserved += count
            self.overruns += 1
            if not self._stalled:
                self._stalled = True
                log.warning("the broker has not acknowledged %d messages in %.0f s: publishing anyway, "
                            "paho holds more until it catches up", len(self._sent), timeout or 0)
        return True

    def release(self, count: int) -> None:
        if not count:
            return
        with self._lock:
            self._reserved -= count
        if self._waiting:
            self._released.set()

    @contextmanager
    def room(self, count: int, timeout: float | None, wanted: Callable[[], bool]) -> Iterator[bool]:
        """Room for ``count`` messages while inside (see :meth:`reserve`); yields whether reserved."""
        reserved = self.reserve(count, timeout, wanted)
        try:
            yield reserved
        finally:
            if reserved:
                self.release(count)


def _done(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # lost with the connection (QoS 0): paho will not send it
        return True


def _wait(info: mqtt.MQTTMessageInfo, timeout: float) -> None:
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):
        pass


def apply_login(client: mqtt.Client, mqtt_config: dict[str, Any]) -> None:
    """Set the config's broker login (``username``, ``password`` or ``password_file``) and TLS on
    ``client``: the daemon's connection and ``pdumqtt doctor``'s must present the same."""
    if "username" in mqtt_config:
        password = mqtt_config.get("password")
        if "password_file" in mqtt_config:
            password = Path(mqtt_config["password_file"]).read_text().strip()
        client.username_pw_set(mqtt_config["username"], password)
    tls = mqtt_config.get("tls")
    if tls:
        tls = tls if isinstance(tls, dict) else {}
        client.tls_set(ca_certs=tls.get("ca_certs"), certfile=tls.get("certfile"), keyfile=tls.get("keyfile"))
        client.tls_insecure_set(tls.get("insecure", False))


class MqttBridge:
    """One paho client: subscribes to commands, publishes state, acks and availability."""

    def __init__(self, config: Config, host: str, port: int) -> None:
        self.config = config
        self.base = config.base_topic
        self.host, self.port = host, port
        self.submit: Callable[[Command], None] = lambda command: None
        self.journal: Journal | None = None  # set by the daemon: PUBACK once journalled
        # called after each (re)connect, once bridge/state, bridge/info and the availability are
        # handed to paho (on the thread that says everything again, not paho's, before the
        # states); extensions (Home Assistant discovery, a fleet) publish and subscribe there
        self.on_connected: list[Callable[[mqtt.Client], None]] = []
        self.connected = threading.Event()
        # paho does not promise to deliver what is published before its CONNACK, so nothing
        # goes to paho while we are not connected: state and availability are cached and said
        # again on connect, acks wait in _held. The gate makes "cache, then publish if
        # connected" one step against a connect; the replay after it reads each value under
        # the gate as it says it, so the last one said is the latest. Nobody waits for room in
        # the window while holding the gate: paho's thread takes it on (dis)connect.
        self._gate = threading.RLock()
        self._connection = 0  # counts the connects: a newer one supersedes the replay under way
        self._up: int | None = None  # the connect whose connection is up, from on_connect to on_disconnect
        self._subscription: int | None = None  # the mid of the last connect's SUBSCRIBE
        self._subscribed = threading.Event()  # its SUBACK came (or the connection went: look again)
        self._network_thread: int | None = None  # paho's: it must never wait for room it alone makes
        self._held: list[tuple[Command, bytes]] = []  # acks made while disconnected
        self.transactions = TransactionLog(config.mqtt["transaction_window"])
        # the verdict on each response topic seen, for the config it was made under
        self._response_topics: tuple[Config, dict[str, str | None]] = (config, {})
        self._failed_attempts = 0
        self._away_since: float | None = None
        self._stopping = threading.Event()
        self.v5 = config.mqtt["protocol"] == "5"
        self._states: dict[tuple[str, str], bool] = {}
        self._availability: dict[str, bool] = {}
        self._outlet_names: dict[str, dict[str, str]] = {}  # what the devices call their outlets
        self._deadband = Deadband(config)  # also the record of the readings published, said again on connect
        self._aliases_of = _aliases_of(config)
        self._to_clear: set[str] = set()  # retained topics to empty once connected (a reload removed them)
        self.info_extra: Callable[[], dict[str, Any]] = dict  # more for bridge/info (a fleet's word)
        # whether a command for this PDU of ours that cannot run is ours to refuse: in a fleet one
        # daemon answers it (Fleet.refuses), not each that has the PDU
        self.refuses: Callable[[str], bool] = lambda pdu: True
        self.client: _Client = self._make_client()
        self.window = PublishWindow(self.client)

    # --- connection ------------------------------------------------------------------

    def _make_client(self) -> _Client:
        cfg = self.config.mqtt
        client = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.client_id,
                         protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
                         clean_session=None if self.v5 else False, manual_ack=True)
        client.release = self._release
        apply_login(client, cfg)
        will = None
        if self.v5:  # which daemon died, for the others of a fleet sharing the topic (pdumqtt/fleet.py)
            will = Properties(PacketTypes.WILLMESSAGE)
            will.UserProperty = [(DAEMON_PROPERTY, self.config.client_id)]
        client.will_set(f"{self.base}/bridge/state", "offline", qos=1, retain=True, properties=will)
        client.reconnect_delay_set(RECONNECT_MIN_DELAY, RECONNECT_MAX_DELAY)
        # paho rescans every unacknowledged message on each PUBACK, so a large window costs
        # O(window) per message in a burst; 20 is also mosquitto's default Receive Maximum.
        # Messages beyond it wait in paho's queue, unbounded here (a full one refuses messages)
        # and kept short by PublishWindow.
        client.max_inflight_messages_set(20)
        client.max_queued_messages_set(0)
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        properties = None
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.config.mqtt["session_expiry"]
        self.client.connect_async(self.host, self.port, keepalive=self.config.mqtt["keepalive"],
                                  clean_start=False, properties=properties)
        self._away_since = time.monotonic()
        self.client.loop_start()
        if self.v5:
            threading.Thread(target=self._refresh_online, name="mqtt-online", daemon=True).start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say offline, then leave cleanly (a clean leave does not fire the Last Will)."""
        self._stopping.set()
        self._subscribed.set()
        self.window.wake()  # whoever waits for room stops waiting
        if self.connected.is_set():
            info = self._send(f"{self.base}/bridge/state", "offline", retain=True)
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

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        """Each failed attempt, once, with its reason (paho itself says nothing)."""
        self._failed_attempts += 1
        error = getattr(client, "last_error", None)
        reason = connect_failure(error, self.host, self.port) if error else f"cannot connect to {self.host}:{self.port}"
        log.log(logging.ERROR if self._failed_attempts == 1 else logging.WARNING,
                "broker connection attempt %d failed: %s; retrying in at most %d s",
                self._failed_attempts, reason, RECONNECT_MAX_DELAY)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        """Subscribe, and leave the rest to a thread of its own: this one must keep reading."""
        if reason.is_failure:
            self._failed_attempts += 1
            log.error("broker %s:%s refused the connection: %s", self.host, self.port, reason)
            return
        away = f" after {time.monotonic() - self._away_since:.1f} s away" if self._away_since is not None else ""
        tries = f" and {self._failed_attempts} failed attempts" if self._failed_attempts else ""
        log.info("connected to %s:%s%s%s", self.host, self.port, away, tries)
        self._failed_attempts, self._away_since = 0, None
        self._network_thread = threading.get_ident()
        with self._gate:
            self._connection += 1
            self._up = self._connection
            self._subscribed.clear()
            self._subscription = self._subscribe(client)
        threading.Thread(target=self._say_everything, args=(self._connection,), name="mqtt-connected",
                         daemon=True).start()

    def _subscribe(self, client: mqtt.Client) -> int | None:
        if self.v5:
            # retainAsPublished: a /set someone published retained must reach us flagged, to be refused
            options = SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True)
            return client.subscribe([(f"{self.base}/+/+/set", options), (f"{self.base}/+/+/get", options)])[1]
        return client.subscribe([(f"{self.base}/+/+/set", 1), (f"{self.base}/+/+/get", 1)])[1]

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if mid == self._subscription:
            self._subscribed.set()

    def _say_everything(self, connection: int) -> None:
        """After connect ``connection``, once subscribed: say we are connected, then say again,
        as the window makes room, everything a newcomer (or a broker that restarted) must know:
        our own topics and the PDUs' availability, then (once the on_connected hooks are
        called) the states and readings. Stops once the connection is lost or a newer one took
        over (which says everything again itself)."""

        def current() -> bool:
            return self._up == connection and not self._stopping.is_set()

        # "connected" once the broker has our subscriptions: a command published after it reaches us
        self._subscribed.wait()
        with self._gate:
            if not current():
                return
            cleared, self._to_clear = sorted(self._to_clear), set()
            held, self._held = self._held, []
            self.connected.set()
        try:
            # first the acks clients wait for; these and the topics to empty are held again, never
            # dropped, if the connection goes meanwhile
            self._say_again(held, _ack_messages, self._publish_or_hold, current, always=True)
            with self.window.room(2, None, current) as reserved, self._gate:
                if not reserved or not current():
                    return
                self._send_online()
                self._send(f"{self.base}/bridge/info", json.dumps(self.info()), retain=True)
                # what was cached until now; anything new is published by whoever makes it
                availability = list(self._availability)
                steps = [(list(self._states), self._state_messages, self._say_state),
                         (list(self._deadband.published), self._reading_messages, self._say_reading)]
            # first: a PDU removed and added again says its state after
            self._say_again(cleared, _one, self._clear, current, always=True)
            # after a broker restart the retained topics may be gone: say everything again,
            # availability first (what makes Home Assistant's entities available)
            if not self._say_again(availability, _one, self._say_availability, current):
                return
            # now, not after the states: discovery's scan and configs then fill the window's gaps
            for hook in self.on_connected:
                try:
                    hook(self.client)
                except Exception:  # an extension's bug must not stop commands being served
                    log.exception("on-connect hook %r failed", hook)
            for keys, messages, say in steps:
                if not self._say_again(keys, messages, say, current):
                    return
        except Exception:  # a bug here must not leave the topics unsaid without a word
            log.exception("saying everything again after connecting failed")

    def _say_again(self, keys: list[Any], messages: Callable[[Any], int], say: Callable[[Any], None],
                   current: Callable[[], bool], always: bool = False) -> bool:
        """``say(key)`` for each key under the gate, a chunk per room in the window; False once
        the connection is no longer ``current`` (``always``: on all the same, without room)."""
        for start in range(0, len(keys), REPLAY_CHUNK):
            chunk = keys[start:start + REPLAY_CHUNK]
            with self.window.room(sum(map(messages, chunk)), None, current) as reserved, self._gate:
                if not always and not (reserved and current()):
                    return False
                for key in chunk:
                    say(key)
        return True

    def _say_availability(self, pdu: str) -> None:
        online = self._availability.get(pdu)  # a reload may have removed it since
        if online is not None:
            self._send(f"{self.base}/{pdu}/availability", "online" if online else "offline", retain=True)

    def _state_messages(self, key: tuple[str, str]) -> int:
        return 1 + len(self._aliases_of.get(key, ()))

    def _say_state(self, key: tuple[str, str]) -> None:
        on = self._states.get(key)
        if on is not None:
            self._send_state(*key, on)

    def _reading_messages(self, key: tuple[str, str | None, str]) -> int:
        return 1 + len(self._aliases_of.get(key[:2], ())) if key[1] is not None else 1

    def _say_reading(self, key: tuple[str, str | None, str]) -> None:
        value = self._deadband.published.get(key)
        if value is not None:
            self._send_reading(*key, value)

    def _send_online(self) -> None:
        props = None
        if self.v5:
            props = copy.copy(_EMPTY_PUBLISH_PROPERTIES)
            props.MessageExpiryInterval = ONLINE_EXPIRY
        self._send(f"{self.base}/bridge/state", "online", retain=True, properties=props)

    def _refresh_online(self) -> None:
        """Say ``online`` again before its expiry lapses, for as long as we are connected."""
        while not self._stopping.wait(ONLINE_REFRESH):
            with self._gate:
                if self.connected.is_set() and not self._stopping.is_set():
                    self._send_online()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._gate:
            if self.connected.is_set():
                self._away_since = time.monotonic()
            self.connected.clear()
            self._up = None
        self._subscribed.set()  # a replay waiting for the SUBACK gives up
        self.window.wake()  # nobody waits for room while disconnected: what they publish is cached or held
        if reason.is_failure:
            log.warning("lost the broker (%s); reconnecting", reason)

    def info(self) -> dict[str, Any]:
        """What ``{base}/bridge/info`` says: version, PDUs with drivers and ports, aliases."""
        return {
            "version": __version__,
            "base_topic": self.base,
            "pdus": {name: {"driver": pdu.driver, "model": getattr(pdu.driver_class, "model", ""),
                            "ports": pdu.ports, **_meter_info(pdu),
                            **({"outlet_names": self._outlet_names[name]} if name in self._outlet_names else {})}
                     for name, pdu in self.config.pdus.items()},
            "aliases": {name: {"pdu": a.pdu, "port": a.port} for name, a in self.config.aliases.items()},
            **self.info_extra(),
        }

    def publish_info(self) -> None:
        """Say ``bridge/info`` again (what it says changed), if connected."""
        with self._gate:
            if self.connected.is_set():
                self._send(f"{self.base}/bridge/info", json.dumps(self.info()), retain=True)

    # --- a reload ------------------------------------------------------------------------

    def reconfigure(self, config: Config) -> None:
        """Take commands as ``config`` says from now on (a reload). The topics of aliases that
        went or moved are emptied; a moved alias says its new outlet's state."""
        with self._gate:
            old = self.config.aliases
            self.config = config
            self._aliases_of = _aliases_of(config)
            self.transactions.window = config.mqtt["transaction_window"]
            self._deadband.bands = {name: pdu.meter_deadband for name, pdu in config.pdus.items()}
            for name, alias in old.items():
                if config.aliases.get(name) != alias:
                    for topic in ("state", *KINDS):
                        self._clear(f"{self.base}/alias/{name}/{topic}")
            for name, alias in config.aliases.items():
                on = self._states.get((alias.pdu, alias.port))
                if old.get(name) != alias and on is not None and self.connected.is_set():
                    self._send(f"{self.base}/alias/{name}/state", b"ON" if on else b"OFF", retain=True)
            if self.connected.is_set():
                self._send(f"{self.base}/bridge/info", json.dumps(self.info()), retain=True)

    def forget(self, pdu: PduConfig, ports: Iterable[str] | None = None) -> None:
        """Empty the retained topics of a PDU a reload removed (availability, states, readings),
        or only those of ``ports``, which a changed PDU no longer has."""
        name, whole = pdu.name, ports is None
        gone = set(pdu.ports if ports is None else ports)
        outlet_kinds, pdu_kinds = _meter_kinds(pdu)
        with self._gate:
            topics = [f"{self.base}/{name}/{port}/{kind}" for port in gone for kind in ("state", *outlet_kinds)]
            for port, kind in self._deadband.forget(name, None if whole else gone):
                topics.append(f"{self.base}/{name}/{kind}" if port is None else f"{self.base}/{name}/{port}/{kind}")
            for port in gone:
                self._states.pop((name, port), None)
            names = self._outlet_names.get(name, {})
            for port in gone:
                names.pop(port, None)
            if whole:
                self._availability.pop(name, None)
                self._outlet_names.pop(name, None)
                topics += [f"{self.base}/{name}/availability", *(f"{self.base}/{name}/{k}" for k in pdu_kinds)]
            for topic in dict.fromkeys(topics):
                self._clear(topic)
            if self.connected.is_set():
                self._send(f"{self.base}/bridge/info", json.dumps(self.info()), retain=True)
        log.info("pdu %s: %s retained topics emptied", name, "its" if whole else f"{len(gone)} ports'")

    def _clear(self, topic: str) -> None:
        """Empty a retained topic (under the gate): now, or once connected."""
        if self.connected.is_set():
            self._send(topic, b"", retain=True)
        else:
            self._to_clear.add(topic)

    # --- in: message, parse, hand over ---------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            if self.journal is not None and self.journal.redelivered(message):
                log.debug("%s: delivered again, already journalled (mid %d)", quote(message.topic), message.mid)
            else:
                self._handle(message)
        except Exception:  # never let a bug kill paho's network thread
            log.exception("failed to handle a message on %s", quote(message.topic))
        finally:
            self._release(message)

    def _release(self, message: mqtt.MQTTMessage) -> None:
        """Acknowledge a handled message: through the journal, after what it asked for is written."""
        if self.journal is not None:
            self.journal.release(message)
        elif message.qos:
            self.client.ack(message.mid, message.qos)

    def _handle(self, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None) if self.v5 else None
        try:
            command = parse(self.config, message.topic, message.payload, retained=bool(message.retain),
                            expiry=getattr(props, "MessageExpiryInterval", None))
            error = None
        except BadCommand as bad:
            command, error = bad.command, str(bad)
        problem = self._reply_fields(command, props)
        if error is None and problem is not None:
            error = problem
        if error is not None and self.config.fleet is not None and command.pdu not in self.config.pdus:
            log.debug("%s: not a PDU of ours, left to the fleet's other daemons", quote(message.topic))
            return
        if error is not None and not self.refuses(command.pdu):
            log.debug("%s: refused by another daemon of the fleet (%s)", quote(message.topic), error)
            return
        if error is not None:
            log.info("refused %s: %s", quote(message.topic), error)
            # an outlet that was found (a retained /set, a bad payload) still has a state to tell
            self.ack(command, self._states.get((command.pdu, command.port)), error, time.monotonic())
            return
        if command.client_transaction:
            claim = self.transactions.claim(command)
            if claim is not True:
                if claim is not None:  # seen and done: send its first ack again
                    self._send_ack(command, claim)
                return
        self.submit(command)

    def _reply_fields(self, command: Command, props: Any) -> str | None:
        """Copy the v5 Response Topic and Correlation Data to ``command``; the reason a
        response topic is refused (the reply then goes only to the ``/ack`` topic)."""
        if props is None:
            return None
        topic = getattr(props, "ResponseTopic", None)
        if topic is None:
            return None
        config, problems = self._response_topics
        if config is not self.config:  # a reload: the rules may have changed
            config, problems = self._response_topics = self.config, {}
        try:
            problem = problems[topic]
        except KeyError:
            problem = response_topic_problem(config, topic)
            if len(problems) >= MAX_RESPONSE_TOPICS:
                problems.clear()
            problems[topic] = problem
        if problem is not None:
            return f"refused the response topic {quote(topic)}: {problem}"
        command.response_topic = topic
        command.correlation = getattr(props, "CorrelationData", None)
        return None

    # --- out: what the workers report ------------------------------------------------

    def _send(self, topic: str, payload: str | bytes, retain: bool = False,
              properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        return self.window.publish(topic, payload, 1, retain, properties)

    def _reserve(self, count: int) -> int:
        """Room in the window for a worker's ``count`` messages, before it takes the gate; the
        count to release after. None reserved on paho's thread: it is what makes room."""
        if threading.get_ident() == self._network_thread or not self.window.reserve(count, PUBLISH_WAIT,
                                                                                    self._may_publish):
            return 0
        return count

    def _may_publish(self) -> bool:
        return self.connected.is_set() and not self._stopping.is_set()

    def _send_state(self, pdu: str, port: str, on: bool) -> None:
        payload = b"ON" if on else b"OFF"
        self._send(f"{self.base}/{pdu}/{port}/state", payload, retain=True)
        for alias in self._aliases_of.get((pdu, port), ()):
            self._send(f"{self.base}/alias/{alias}/state", payload, retain=True)

    def state(self, pdu: str, port: str, on: bool) -> None:
        reserved = self._reserve(self._state_messages((pdu, port)))
        try:
            # written at once while the connection is quiet (a command's state); in a flood (every
            # outlet's at start) paho's thread writes them, many per wake-up. The write comes after
            # the gate is let go of: a send lets go of the GIL, and a worker holding the gate then
            # would stall every other that wants it.
            quiet = len(self.client._out_messages) < QUIET  # paho's unacknowledged: a read, no lock
            with self.client.batch() if quiet else nullcontext(), self._gate:
                self._states[(pdu, port)] = on
                if self.connected.is_set():
                    self._send_state(pdu, port, on)
        finally:
            self.window.release(reserved)

    def availability(self, pdu: str, online: bool) -> None:
        log.log(logging.INFO if online else logging.WARNING, "pdu %s is %s", pdu, "online" if online else "offline")
        reserved = self._reserve(1)
        try:
            with self._gate:
                self._availability[pdu] = online
                if self.connected.is_set():
                    self._send(f"{self.base}/{pdu}/availability", "online" if online else "offline", retain=True)
        finally:
            self.window.release(reserved)

    def outlet_names(self, pdu: str, names: dict[str, str]) -> None:
        with self._gate:
            self._outlet_names[pdu] = names
            if self.connected.is_set():
                self._send(f"{self.base}/bridge/info", json.dumps(self.info()), retain=True)

    def _send_reading(self, pdu: str, port: str | None, kind: str, value: float) -> None:
        body = reading_payload(value)
        if port is None:
            self._send(f"{self.base}/{pdu}/{kind}", body, retain=True)
            return
        self._send(f"{self.base}/{pdu}/{port}/{kind}", body, retain=True)
        for alias in self._aliases_of.get((pdu, port), ()):
            self._send(f"{self.base}/alias/{alias}/{kind}", body, retain=True)

    def readings(self, pdu: str, port: str | None, values: dict[str, float]) -> None:
        """A meter read: each value that moved beyond the PDU's deadband goes out, retained."""
        reserved = self._reserve(len(values) * self._reading_messages((pdu, port, "")))  # at most
        try:
            with self._gate:
                changed = self._deadband.admit(pdu, port, values)
                if self.connected.is_set():
                    for kind, value in changed.items():
                        self._send_reading(pdu, port, kind, value)
        finally:
            self.window.release(reserved)

    def ack(self, command: Command, state: bool | None, error: str | None, started: float) -> None:
        now = time.monotonic()
        payload = ack_payload(command, "error" if error else "ok", state, error,
                              (started - command.received) * 1000, (now - started) * 1000)
        if self.journal is not None:
            self.journal.done(command, payload)
        self._send_ack(command, payload)
        if command.client_transaction:
            for repeat in self.transactions.complete(command, payload):
                self._send_ack(repeat, payload)

    def publish_ack(self, command: Command, payload: bytes) -> None:
        """Publish an ack made before (a journalled one, after a restart), or hold it until connected."""
        reserved = self._reserve(_ack_messages((command, payload)))
        try:
            with self.client.batch(), self._gate:  # one write for the ack and the reply, after the gate
                self._publish_or_hold((command, payload))
        finally:
            self.window.release(reserved)

    def _publish_or_hold(self, held: tuple[Command, bytes]) -> None:
        """Under the gate."""
        command, payload = held
        if self.connected.is_set():
            self._publish_ack(command, payload)
        else:
            self._held.append((command, payload))

    def _send_ack(self, command: Command, payload: bytes) -> None:
        if command.on_ack is not None:
            command.on_ack(payload)
        self.publish_ack(command, payload)

    def _publish_ack(self, command: Command, payload: bytes) -> None:
        """The ack on ``…/ack`` and the response topic (under the gate, connected)."""
        published = []
        try:
            published.append(self._send(f"{command.reply_to}/ack", payload))
        except ValueError:  # a topic paho refuses (too long for MQTT): nowhere to answer
            log.info("cannot answer on %s", quote(f"{command.reply_to}/ack"))
        if command.response_topic:
            try:
                published.append(self._send(command.response_topic, payload,
                                            properties=mqtt_wire.reply_properties(command.correlation)))
            except ValueError:  # a response topic paho refuses: nowhere to answer
                log.info("cannot answer on response topic %s", quote(command.response_topic))
        if self.journal is not None:
            self.journal.ack_sent(command, published)


def _one(key: Any) -> int:
    return 1


def _ack_messages(held: tuple[Command, bytes]) -> int:
    return 2 if held[0].response_topic else 1


def _aliases_of(config: Config) -> dict[tuple[str, str], list[str]]:
    aliases: dict[tuple[str, str], list[str]] = {}
    for alias in config.aliases.values():
        aliases.setdefault((alias.pdu, alias.port), []).append(alias.name)
    return aliases


def _meter_kinds(pdu: PduConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The reading topics a PDU publishes, per outlet and for the unit: none unless it meters."""
    driver = pdu.driver_class
    if not pdu.meter_interval or not getattr(driver, "can_meter", False):
        return (), ()
    outlet, total = driver.readings(pdu.options)
    return tuple(k for k in outlet if k in KINDS), tuple(k for k in total if k in KINDS)


def _meter_info(pdu: Any) -> dict[str, Any]:
    """``bridge/info``'s word on a PDU that meters: its interval and what it reports."""
    driver = pdu.driver_class
    if not pdu.meter_interval or not getattr(driver, "can_meter", False):
        return {}
    outlet, total = driver.readings(pdu.options)
    return {"meter": {"interval": pdu.meter_interval, "outlet": list(outlet), "pdu": list(total)}}
