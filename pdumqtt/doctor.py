"""``pdumqtt doctor``: what can be checked about a setup without switching anything.

Each check returns findings (ok, warning or problem, with what to do). The checks only
read: the broker is probed on topics of the doctor's own (``pdumqtt-doctor/<id>/...``),
and a PDU is read through the running daemon's queue when a daemon serves it, so the
doctor never talks to a device at the same time as the daemon; without a daemon it
reads (or pings) the device directly, and only with drivers that can do so without switching.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pdumqtt.bridge import MqttBridge, apply_login
from pdumqtt.config import Config, PduConfig
from pdumqtt.drivers import DriverError, split_host

OK, WARNING, PROBLEM = "ok", "warning", "problem"
# Above this, a loopback or LAN round trip carries Nagle's wait for a delayed ACK (40 ms on Linux).
NAGLE_SUSPECT_MS = 30.0
NAGLE_TRIES = 3
QUEUE_PROBE = 1100  # one more burst than mosquitto's default max_queued_messages (1000)


@dataclass
class Finding:
    level: str
    subject: str
    message: str

    def line(self) -> str:
        return f"{self.level.upper():8} {self.subject}: {self.message}"


class _Mqtt:
    """One MQTT v5 connection of the doctor's own, with what it receives."""

    def __init__(self, config: Config, host: str, port: int, client_id: str = "", clean: bool = True,
                 expiry: int = 0) -> None:
        self.host, self.port = host, port
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        apply_login(self.client, config.mqtt)
        self.clean, self.expiry = clean, expiry
        self.cond = threading.Condition()
        self.messages: list[mqtt.MQTTMessage] = []
        self.reason: Any = None
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        # so that the round trip measured is the broker's, not our own Nagle's
        self.client.on_socket_open = MqttBridge._on_socket_open

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self.cond:
            self.reason = reason
            self.cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def connect(self, timeout: float) -> None:
        """Connect; raise ConnectionError saying why it failed."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.expiry
        try:
            self.client.connect(self.host, self.port, keepalive=30, clean_start=self.clean, properties=props)
        except OSError as e:
            raise ConnectionError(_why(e)) from None
        self.client.loop_start()
        with self.cond:
            self.cond.wait_for(lambda: self.reason is not None, timeout)
        if self.reason is None:
            self.close()
            raise ConnectionError(f"no answer to CONNECT within {timeout:g} s")
        if self.reason.is_failure:
            self.close()
            raise ConnectionError(f"the broker refused us: {self.reason}")

    def subscribe(self, topics: list[str], timeout: float) -> None:
        self.subscribed.clear()
        self.client.subscribe([(t, 1) for t in topics])
        if not self.subscribed.wait(timeout):
            raise ConnectionError("the broker did not confirm a subscription")

    def wait_for(self, predicate: Callable[[mqtt.MQTTMessage], bool], timeout: float) -> mqtt.MQTTMessage | None:
        with self.cond:
            return self.cond.wait_for(lambda: next((m for m in self.messages if predicate(m)), None), timeout)

    def drain(self, last: bytes, timeout: float, idle: float = 1.0) -> bool:
        """Wait for the message ``last``; give up after ``timeout``, or once nothing came for ``idle`` s.

        True when ``last`` arrived."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if any(m.payload == last for m in self.messages[-1:]):
                    return True
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0 or (not self.cond.wait(min(idle, left)) and len(self.messages) == seen):
                    return any(m.payload == last for m in self.messages)

    def close(self) -> None:
        with suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


def _why(error: BaseException) -> str:
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return f"TLS verification failed ({text[:160]}): check mqtt.tls.ca_certs and the broker's host name"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused: is the broker running and listening on that port?"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror})"
    return f"{type(error).__name__}: {text[:160]}"


@contextmanager
def _session(config: Config, host: str, port: int, timeout: float, **kwargs: Any) -> Iterator[_Mqtt]:
    session = _Mqtt(config, host, port, **kwargs)
    session.connect(timeout)
    try:
        yield session
    finally:
        session.close()


class Doctor:
    """The checks for one config, in the order they are shown."""

    def __init__(self, config: Config, broker: tuple[str, int] | None = None, timeout: float = 5.0) -> None:
        self.config = config
        self.timeout = timeout
        self.base = config.base_topic
        self.embedded = broker is None and "host" not in config.mqtt
        self.host, self.port = broker or (config.mqtt.get("host", "127.0.0.1"), config.mqtt["port"])
        self.findings: list[Finding] = []
        self.daemon_info: dict[str, Any] | None = None
        self.availability: dict[str, str] = {}

    def say(self, level: str, subject: str, message: str) -> None:
        self.findings.append(Finding(level, subject, message))

    def run(self) -> list[Finding]:
        where = f"{self.host}:{self.port}"
        if self.embedded:
            exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto")
                                                else None)
            if exe is None:
                self.say(PROBLEM, "broker", "no mqtt.host, so the daemon starts its own mosquitto, and none is "
                         "installed: apt-get install mosquitto, or set mqtt.host")
            else:
                self.say(OK, "broker", f"no mqtt.host: the daemon starts {exe} on {where}")
        try:
            with _session(self.config, self.host, self.port, self.timeout) as session:
                self.say(OK, "broker", f"{where} accepted our connection"
                         + (f" as {self.config.mqtt['username']}" if "username" in self.config.mqtt else ""))
                self._daemon(session)
            self._round_trip()
            self._queue_limit()
        except ConnectionError as e:
            level = WARNING if self.embedded else PROBLEM
            note = " (it may simply not be running: the daemon starts it)" if self.embedded else ""
            self.say(level, "broker", f"cannot use {where}: {e}{note}")
        self._listener()
        for pdu in self.config.pdus.values():
            self._pdu(pdu)
        return self.findings

    # --- the broker --------------------------------------------------------------

    def _round_trip(self) -> None:
        """Time three QoS 1 messages sent back to back until the broker acknowledged all three.

        That is a command's pattern (state, ack, reply leave together): with Nagle's algorithm
        on the broker's socket, its second PUBACK waits for our delayed TCP ACK of the first.
        Linux does not always delay that ACK on a fresh connection (quickack), so up to three
        connections are tried before the broker is called fast.
        """
        median = 0.0
        for _ in range(NAGLE_TRIES):
            with _session(self.config, self.host, self.port, self.timeout) as session:
                times = self._bursts(session)
            if times is None:
                self.say(PROBLEM, "broker", f"the broker did not acknowledge a message within {self.timeout:g} s")
                return
            median = statistics.median(times)
            if median > NAGLE_SUSPECT_MS:
                self.say(WARNING, "broker", f"3 messages took {median:.1f} ms to be acknowledged (median of "
                         f"{len(times)}): that is Nagle's delay; put `set_tcp_nodelay true` in mosquitto.conf "
                         "(every command's answer waits for it otherwise)")
                return
        self.say(OK, "broker", f"round trip of 3 messages {median:.2f} ms (median of {len(times)})")

    def _bursts(self, session: _Mqtt) -> list[float] | None:
        topic = f"pdumqtt-doctor/{uuid.uuid4().hex}/rtt"
        times = []
        for _ in range(30):
            started = time.monotonic()
            infos = [session.client.publish(topic, b"", qos=1) for _ in range(3)]
            for info in infos:
                info.wait_for_publish(self.timeout)
            if not all(info.is_published() for info in infos):
                return None
            times.append((time.monotonic() - started) * 1000)
        return times[10:]  # a connection's first segments are acknowledged at once (quickack)

    def _queue_limit(self) -> None:
        """Queue more messages than mosquitto's default limit for an offline session of ours, count them."""
        client_id = f"pdumqtt-doctor-{uuid.uuid4().hex[:12]}"
        topic = f"pdumqtt-doctor/{client_id}/queue"
        try:
            with _session(self.config, self.host, self.port, self.timeout, client_id=client_id, clean=True,
                          expiry=60) as listener:
                listener.subscribe([topic], self.timeout)
            with _session(self.config, self.host, self.port, self.timeout) as sender:
                infos = [sender.client.publish(topic, str(i).encode(), qos=1) for i in range(QUEUE_PROBE)]
                for info in infos:
                    info.wait_for_publish(self.timeout)
            with _session(self.config, self.host, self.port, self.timeout, client_id=client_id, clean=False,
                          expiry=0) as listener:
                got_last = listener.drain(str(QUEUE_PROBE - 1).encode(), self.timeout)
                count = len(listener.messages)
        except (ConnectionError, RuntimeError, ValueError) as e:
            self.say(WARNING, "broker", f"could not measure the queued-message limit: {e}")
            return
        if got_last and count >= QUEUE_PROBE:
            self.say(OK, "broker", f"queued all {QUEUE_PROBE} messages for an offline client (no low "
                     "max_queued_messages)")
        else:
            self.say(WARNING, "broker", f"queued only {count} of {QUEUE_PROBE} messages for an offline client: "
                     "max_queued_messages drops acks and commands in bursts; set `max_queued_messages 0` (or "
                     "above your largest burst) in mosquitto.conf")

    def _daemon(self, session: _Mqtt) -> None:
        barrier = f"pdumqtt-doctor/{uuid.uuid4().hex}/barrier"
        session.subscribe([f"{self.base}/bridge/+", f"{self.base}/+/availability", barrier], self.timeout)
        session.client.publish(barrier, b"", qos=1)  # retained messages arrive before it
        session.wait_for(lambda m: m.topic == barrier, self.timeout)
        state = info = None
        for m in session.messages:
            if m.topic == f"{self.base}/bridge/state":
                state = m.payload.decode(errors="replace")
            elif m.topic == f"{self.base}/bridge/info" and m.payload:
                with suppress(ValueError):
                    info = json.loads(m.payload)
            elif m.topic.endswith("/availability"):
                self.availability[m.topic[len(self.base) + 1:].split("/")[0]] = m.payload.decode(errors="replace")
        if state != "online" or not isinstance(info, dict):
            self.say(OK, "daemon", f"no pdumqtt daemon online under {self.base}/ (PDUs are read directly)")
            return
        self.daemon_info = info
        served = set(info.get("pdus") or {})
        missing = sorted(set(self.config.pdus) - served)
        if missing:
            self.say(WARNING, "daemon", f"the daemon online under {self.base}/ does not serve {', '.join(missing)}: "
                     "it runs another config (restart it with this one)")
        else:
            self.say(OK, "daemon", f"pdumqtt {info.get('version', '?')} online under {self.base}/, serving every "
                     "PDU of this config")
        self._clock(session)

    def _clock(self, session: _Mqtt) -> None:
        """A command stamped with our clock must not look stale to the daemon."""
        pdu = next((p for p in self.config.pdus.values() if p.name in (self.daemon_info or {}).get("pdus", {})), None)
        if pdu is None:
            return
        max_age = self.config.mqtt.get("max_command_age") or 60
        margin = max_age / 2
        ack = self._through_daemon(session, pdu, {"action": "get", "ts": time.time() - margin})
        if ack is not None and "older than" in str(ack.get("error")):
            self.say(PROBLEM, "clock", f"the daemon refused a command stamped {margin:g} s ago as stale: its clock "
                     f"runs at least {max_age - margin:g} s ahead of this host's; run NTP on both")
        elif ack is not None:
            self.say(OK, "clock", f"a command stamped {margin:g} s ago was taken: clocks agree within "
                     f"{max_age - margin:g} s (max_command_age {max_age:g} s)")

    def _through_daemon(self, session: _Mqtt, pdu: PduConfig, payload: dict[str, Any]) -> dict[str, Any] | None:
        reply = f"pdumqtt-doctor/{uuid.uuid4().hex}/reply"
        session.subscribe([reply], self.timeout)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply
        port = next(iter(pdu.ports))
        session.client.publish(f"{self.base}/{pdu.name}/{port}/get", json.dumps(payload), qos=1, properties=props)
        wait = pdu.timeout * (pdu.retries + 1) + pdu.retry_delay * pdu.retries + self.timeout
        found = session.wait_for(lambda m: m.topic == reply, wait)
        return json.loads(found.payload) if found is not None else None

    # --- the rest of the config ----------------------------------------------------

    def _listener(self) -> None:
        if not self.config.pdudaemon:
            return
        listen = self.config.pdudaemon["listen"]
        host, port = split_host(listen, 16421)
        if self.daemon_info is not None:
            try:
                socket.create_connection((host, port), timeout=self.timeout).close()
                self.say(OK, "pdudaemon listener", f"{listen} accepts connections")
            except OSError as e:
                self.say(PROBLEM, "pdudaemon listener", f"the daemon is online but {listen} refuses: {_why(e)}")
            return
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
                self.say(OK, "pdudaemon listener", f"{listen} is free for the daemon")
            except OSError as e:
                self.say(PROBLEM, "pdudaemon listener", f"cannot listen on {listen}: {e.strerror}; another program "
                         "(PDUDaemon itself?) holds it: stop it or change pdudaemon.listen")

    def _pdu(self, pdu: PduConfig) -> None:
        subject = f"PDU {pdu.name}"
        try:
            cls = pdu.driver_class
        except Exception as e:  # an entry point that does not import: a missing extra, say
            self.say(PROBLEM, subject, f"driver {pdu.driver} cannot be loaded: {e}")
            return
        self._known_hosts(pdu, subject)
        if self.daemon_info is not None and pdu.name in (self.daemon_info.get("pdus") or {}):
            with _session(self.config, self.host, self.port, self.timeout) as session:
                ack = self._through_daemon(session, pdu, {"action": "get"})
            if ack is None:
                self.say(PROBLEM, subject, "the daemon did not answer a get: it is stuck or overloaded")
            elif ack.get("status") == "ok":
                self.say(OK, subject, f"answers through the daemon (port {ack.get('port')} is {ack.get('state')})")
            elif not cls.can_read:
                self.say(OK if self.availability.get(pdu.name) == "online" else WARNING, subject,
                         f"{pdu.driver} cannot read without switching; the daemon says it is "
                         f"{self.availability.get(pdu.name, 'of unknown availability')}")
            else:
                self.say(PROBLEM, subject, f"the daemon could not read it: {ack.get('error')}")
            return
        if not cls.can_read and not cls.has_ping():
            self.say(OK, subject, f"{pdu.driver} cannot read or ping without switching: not checked")
            return
        self._read_directly(pdu, cls, subject)

    def _read_directly(self, pdu: PduConfig, cls: Any, subject: str) -> None:
        """A read of the first outlet, or a ping where the driver cannot read."""
        port_name, number = next(iter(pdu.ports.items()))
        result: list[Any] = []

        def read() -> None:
            driver = cls(pdu.options, pdu=pdu.name, timeout=pdu.timeout)
            try:
                result.append(driver.get(number) if cls.can_read else driver.ping())
            except Exception as e:  # a driver failing in any way is the finding itself
                result.append(e)
            finally:
                with suppress(Exception):
                    driver.close()

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        thread.join(pdu.timeout + 1)
        if not result:
            self.say(PROBLEM, subject, f"no answer within {pdu.timeout:g} s")
        elif isinstance(result[0], DriverError):
            self.say(PROBLEM, subject, str(result[0]))
        elif isinstance(result[0], Exception):
            self.say(PROBLEM, subject, f"{type(result[0]).__name__}: {str(result[0])[:160]}")
        elif result[0] is None:
            self.say(OK, subject, "answers (a ping: the driver cannot read outlets)")
        else:
            self.say(OK, subject, f"answers: port {port_name} is {'ON' if result[0] else 'OFF'}")

    def _known_hosts(self, pdu: PduConfig, subject: str) -> None:
        path = pdu.options.get("known_hosts")
        if not path or pdu.options.get("accept_unknown_host_key"):
            return
        try:
            import asyncssh

            host, port = split_host(str(pdu.options.get("host") or pdu.name), 22)
            known = asyncssh.read_known_hosts(os.path.expanduser(path))
            listed = any(known.match(host, "", port)[:3])
        except (OSError, ValueError) as e:
            self.say(PROBLEM, subject, f"cannot read known_hosts {path}: {e}")
            return
        if not listed:
            target = host if port == 22 else f"[{host}]:{port}"
            self.say(PROBLEM, subject, f"{target} is not in {path}: the daemon will refuse its ssh host key; add it "
                     f"(ssh-keyscan -p {port} {host} >> {path}, after checking the key)")
