"""The daemon's optional HTTP port: Prometheus metrics and the live status page.

It owns three things, fed by what the runner publishes (``Observer`` sits between the
runner and the MQTT bridge and passes everything on unchanged):

- ``Metrics``: a prometheus-client registry of the daemon's own (commands by PDU, action
  and result; driver call latency; queue depth; retries; timeouts; availability; broker
  connection; the last meter readings of outlets and PDUs; process figures), served at ``/metrics``;
- ``StatusFeed``: the current state of every outlet, availability, last ack and readings,
  pushed to the status page as server-sent events at ``/events``;
- ``MonitorServer``: the HTTP server. The page at ``/`` posts ``on``/``off``/``cycle`` to
  ``/api/outlet/<pdu>/<port>/<action>``, which goes through the same queues as MQTT and
  answers with the ack.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from pdumqtt.commands import BadCommand, Command, request
from pdumqtt.config import Config, ListenerClient
from pdumqtt.drivers import split_host
from pdumqtt.pdudaemon import client_for
from pdumqtt.runner import answer_within

log = logging.getLogger(__name__)

MAX_EVENT_CLIENTS = 32  # each live page holds one connection and one thread
MAX_CONNECTIONS = 64  # of every kind together, event streams included
HEARTBEAT = 15.0  # seconds between SSE comments, so proxies and browsers keep the stream open
PAGE_ACTIONS = ("on", "off", "cycle")
# Each reading kind's metric name (after pdumqtt_outlet_ / pdumqtt_pdu_), in Prometheus' unit words.
READING_METRICS = {"power": ("power_watts", "Active power in W"), "current": ("current_amperes", "Current in A"),
                   "voltage": ("voltage_volts", "Voltage in V"),
                   "energy": ("energy_kwh", "Energy in kWh as the device counts it")}


class MonitorError(Exception):
    """The HTTP port could not be opened; the message says which and why."""


class Metrics:
    """The daemon's metrics, in a registry of its own (several daemons may share a process in tests)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.commands = Counter("pdumqtt_commands", "Commands answered, by PDU, action and result",
                                ["pdu", "action", "result"], registry=r)
        self.command_seconds = Histogram("pdumqtt_command_seconds", "Time from a command's start to its ack",
                                         ["pdu", "action"], registry=r,
                                         buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))
        self.driver_seconds = Histogram("pdumqtt_driver_call_seconds", "Driver call latency, by PDU and method",
                                        ["pdu", "method", "outcome"], registry=r,
                                        buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.retries = Counter("pdumqtt_driver_retries", "Driver calls tried again after a failure", ["pdu"],
                               registry=r)
        self.timeouts = Counter("pdumqtt_driver_timeouts", "Driver calls abandoned after the PDU's timeout",
                                ["pdu"], registry=r)
        self.online = Gauge("pdumqtt_pdu_online", "1 when the last exchange with the PDU succeeded", ["pdu"],
                            registry=r)
        self.queue_depth = Gauge("pdumqtt_queue_depth", "Commands received and not yet started, by PDU", ["pdu"],
                                 registry=r)
        self.broker_connected = Gauge("pdumqtt_broker_connected", "1 while connected to the MQTT broker",
                                      registry=r)
        self.broker_connections = Counter("pdumqtt_broker_connections",
                                          "Connections made to the broker (reconnects are this minus one)",
                                          registry=r)
        # the last meter reading of each kind (meter_interval), as the device gave it
        self.outlet_readings = {kind: Gauge(f"pdumqtt_outlet_{name}", f"{what}, by outlet (last meter read)",
                                            ["pdu", "port"], registry=r)
                                for kind, (name, what) in READING_METRICS.items()}
        self.pdu_readings = {kind: Gauge(f"pdumqtt_pdu_{name}", f"{what} of the whole PDU (last meter read)",
                                         ["pdu"], registry=r)
                             for kind, (name, what) in READING_METRICS.items()}

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # called by the runner's workers (runner.CallObserver)
    def driver_call(self, pdu: str, method: str, seconds: float, outcome: str) -> None:
        self.driver_seconds.labels(pdu, method, outcome).observe(seconds)
        if outcome == "timeout":
            self.timeouts.labels(pdu).inc()

    def retry(self, pdu: str) -> None:
        self.retries.labels(pdu).inc()

    def readings(self, pdu: str, port: str | None, values: dict[str, float]) -> None:
        for kind, value in values.items():
            if kind in READING_METRICS:
                if port is None:
                    self.pdu_readings[kind].labels(pdu).set(value)
                else:
                    self.outlet_readings[kind].labels(pdu, port).set(value)

    def forget_readings(self, pdu: str, ports: Iterable[str], totals: bool = True) -> None:
        """A reload removed the PDU (or only these ports of it): its readings leave /metrics."""
        for kind in READING_METRICS:
            for port in ports:
                _remove(self.outlet_readings[kind], pdu, port)
            if totals:
                _remove(self.pdu_readings[kind], pdu)


def _remove(gauge: Gauge, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:  # never read
        pass


class StatusFeed:
    """Every outlet's state and last ack and every PDU's availability, for the status page."""

    def __init__(self, config: Config) -> None:
        self._lock = threading.Lock()
        self._clients: list[queue.Queue[str | None]] = []
        self.pdus: dict[str, dict[str, Any]] = {
            name: {"availability": None, "driver": pdu.driver,
                   "ports": {port: {"state": None, "ack": None} for port in pdu.ports}}
            for name, pdu in config.pdus.items()}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self.pdus))

    def subscribe(self) -> queue.Queue[str | None] | None:
        """A queue of SSE-ready events, the first a snapshot; None when too many pages are open."""
        with self._lock:
            if len(self._clients) >= MAX_EVENT_CLIENTS:
                return None
            q: queue.Queue[str | None] = queue.Queue(maxsize=1000)
            q.put(_event("snapshot", self.pdus))
            self._clients.append(q)
            return q

    def unsubscribe(self, q: queue.Queue[str | None]) -> None:
        with self._lock:
            if q in self._clients:
                self._clients.remove(q)

    def close(self) -> None:
        with self._lock:
            for q in self._clients:
                _offer(q, None)

    def _push(self, kind: str, data: dict[str, Any]) -> None:
        event = _event(kind, data)
        for q in self._clients:
            _offer(q, event)

    def reconfigure(self, config: Config) -> None:
        """A reload: the new PDUs and ports appear at once (those that went leave with :meth:`forget`)."""
        with self._lock:
            for name, pdu in config.pdus.items():
                entry = self.pdus.setdefault(name, {"availability": None, "driver": pdu.driver, "ports": {}})
                entry["driver"] = pdu.driver
                for port in pdu.ports:
                    entry["ports"].setdefault(port, {"state": None, "ack": None})
            self._push("snapshot", self.pdus)

    def forget(self, pdu: str, ports: set[str] | None = None) -> None:
        """A PDU a reload removed (or only the ``ports`` a changed one lost) leaves the page."""
        with self._lock:
            if ports is None:
                self.pdus.pop(pdu, None)
            elif pdu in self.pdus:
                for port in ports:
                    self.pdus[pdu]["ports"].pop(port, None)
            self._push("snapshot", self.pdus)

    def state(self, pdu: str, port: str, on: bool) -> None:
        with self._lock:
            if pdu not in self.pdus:
                return
            outlet = self.pdus[pdu]["ports"].setdefault(port, {"state": None, "ack": None})
            outlet["state"] = "ON" if on else "OFF"
            self._push("state", {"pdu": pdu, "port": port, "state": outlet["state"]})

    def availability(self, pdu: str, online: bool) -> None:
        with self._lock:
            if pdu not in self.pdus:
                return
            self.pdus[pdu]["availability"] = "online" if online else "offline"
            self._push("availability", {"pdu": pdu, "availability": self.pdus[pdu]["availability"]})

    def readings(self, pdu: str, port: str | None, values: dict[str, float]) -> None:
        with self._lock:
            if pdu not in self.pdus:
                return
            entry = self.pdus[pdu] if port is None else self.pdus[pdu]["ports"].get(port)
            if entry is not None:
                entry.setdefault("readings", {}).update(values)
                self._push("readings", {"pdu": pdu, "port": port, "readings": values})

    def ack(self, pdu: str, port: str, ack: dict[str, Any]) -> None:
        with self._lock:
            outlet = self.pdus[pdu]["ports"].get(port) if pdu in self.pdus else None
            if outlet is not None:
                outlet["ack"] = ack
                self._push("ack", {"pdu": pdu, "port": port, "ack": ack})


def _event(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


def _offer(q: queue.Queue[str | None], item: str | None) -> None:
    try:
        q.put_nowait(item)
    except queue.Full:  # a page that stopped reading: it gets a fresh snapshot when it reconnects
        pass


class Observer:
    """The runner's publisher: passes everything to the bridge, and tells metrics and the feed."""

    def __init__(self, publisher: Any, metrics: Metrics | None, feed: StatusFeed | None) -> None:
        self.publisher, self.metrics, self.feed = publisher, metrics, feed

    def state(self, pdu: str, port: str, on: bool) -> None:
        self.publisher.state(pdu, port, on)
        if self.feed is not None:
            self.feed.state(pdu, port, on)

    def availability(self, pdu: str, online: bool) -> None:
        self.publisher.availability(pdu, online)
        if self.metrics is not None:
            self.metrics.online.labels(pdu).set(1 if online else 0)
        if self.feed is not None:
            self.feed.availability(pdu, online)

    def outlet_names(self, pdu: str, names: dict[str, str]) -> None:
        self.publisher.outlet_names(pdu, names)

    def readings(self, pdu: str, port: str | None, values: dict[str, float]) -> None:
        self.publisher.readings(pdu, port, values)
        if self.metrics is not None:
            self.metrics.readings(pdu, port, values)
        if self.feed is not None:
            self.feed.readings(pdu, port, values)

    def ack(self, command: Command, state: bool | None, error: str | None, started: float) -> None:
        self.publisher.ack(command, state, error, started)
        if self.metrics is not None:
            self.metrics.commands.labels(command.pdu, command.action, "error" if error else "ok").inc()
            self.metrics.command_seconds.labels(command.pdu, command.action).observe(time.monotonic() - started)
        if self.feed is not None and command.pdu in self.feed.pdus:
            self.feed.ack(command.pdu, command.port, {
                "action": command.action, "status": "error" if error else "ok", "error": error,
                "state": None if state is None else ("ON" if state else "OFF"),
                "took_ms": round((time.monotonic() - started) * 1000, 1), "at": time.time()})


class MonitorServer:
    """``http.listen``: ``/metrics``, and with ``status_page`` the page, its events and its buttons."""

    def __init__(self, config: Config, metrics: Metrics, feed: StatusFeed | None,
                 submit: Callable[[Command], None]) -> None:
        self.config, self.metrics, self.feed, self.submit = config, metrics, feed, submit
        # the PDUDaemon listener's clients (pdudaemon.auth_file): the page takes the same logins
        self.clients: dict[str, ListenerClient] | None = (config.pdudaemon or {}).get("clients")
        self.server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None, "not started"
        return self.server.server_address[0], self.server.server_address[1]

    def start(self) -> None:
        """Listen on ``http.listen``; MonitorError when the port cannot be had."""
        listen = self.config.http["listen"]
        host, port = split_host(listen, 9421)
        server_class = type("Server", (_BoundedServer,), {
            "address_family": socket.AF_INET6 if ":" in host else socket.AF_INET})
        try:
            self.server = server_class((host, port), _handler(self))
        except OSError as e:
            raise MonitorError(f"cannot listen on {listen} (http.listen): {e.strerror or e}") from None
        threading.Thread(target=self.server.serve_forever, name="http-monitor", daemon=True).start()
        log.info("HTTP monitor on %s:%s (metrics%s)", *self.address, ", status page" if self.feed else "")

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.close()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def command(self, pdu: str, port: str, action: str) -> tuple[int, dict[str, Any]]:
        """Run one page button through the PDU's queue; (HTTP status, the ack or an error)."""
        answer: queue.Queue[bytes] = queue.Queue(maxsize=1)
        try:
            command = request(self.config, action, pdu=pdu, port=port, on_ack=answer.put)
        except BadCommand as e:
            return 404 if str(e).startswith("unknown ") else 400, {"status": "error", "error": str(e)}
        self.submit(command)
        try:
            payload = answer.get(timeout=answer_within(self.config, command))
        except queue.Empty:
            return 504, {"status": "error", "error": "no answer from the PDU's queue in time (it may still run)"}
        return 200, json.loads(payload)


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most MAX_CONNECTIONS at once: the rest are closed at once, so
    a flood of connections can never take the descriptors the MQTT side needs."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 makes a burst of page loads wait for SYN retries

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.info("http: %d connections open, refusing one from %s", MAX_CONNECTIONS, client_address[0])
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _handler(monitor: MonitorServer) -> type[BaseHTTPRequestHandler]:
    page = files("pdumqtt").joinpath("status.html").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        server_version = "pdumqtt"
        timeout = 30  # a request that trickles in is dropped; the event stream sets its own

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http %s: " + format, self.client_address[0], *args)

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _allowed(self) -> ListenerClient | bool:
            """True without authentication, else the logged-in client; False (after a 401) without one."""
            if monitor.clients is None:
                return True
            client = client_for(monitor.clients, authorization=self.headers.get("Authorization"))
            if client is not None:
                return client
            self._send(401, b"login required: a client of pdudaemon.auth_file\n", "text/plain",
                       {"WWW-Authenticate": 'Basic realm="pdumqtt"'})
            return False

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, monitor.metrics.render(), CONTENT_TYPE_LATEST)
            elif monitor.feed is None:
                self._send(404, b"not found: the status page is off (http.status_page)\n", "text/plain")
            elif not self._allowed():
                return
            elif path == "/":
                self._send(200, page, "text/html; charset=utf-8")
            elif path == "/events":
                self._events()
            else:
                self._send(404, b"not found\n", "text/plain")

        def _events(self) -> None:
            assert monitor.feed is not None
            q = monitor.feed.subscribe()
            if q is None:
                self._send(503, b"too many status pages open\n", "text/plain")
                return
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                while True:
                    try:
                        event = q.get(timeout=HEARTBEAT)
                    except queue.Empty:
                        event = ": still here\n\n"
                    if event is None:
                        return
                    self.wfile.write(event.encode())
                    self.wfile.flush()
            except OSError:  # the page went away
                return
            finally:
                monitor.feed.unsubscribe(q)

        def do_POST(self) -> None:
            if monitor.feed is None:
                self._send(404, b"not found: the status page is off (http.status_page)\n", "text/plain")
                return
            client = self._allowed()
            if not client:
                return
            # a header a cross-site form cannot send: a page elsewhere cannot switch outlets
            # through a logged-in browser
            if self.headers.get("X-Pdumqtt") != "1":
                self._json(403, {"status": "error", "error": "missing X-Pdumqtt: 1 header"})
                return
            parts = [unquote(p) for p in self.path.split("?", 1)[0].strip("/").split("/")]
            if len(parts) != 5 or parts[:2] != ["api", "outlet"] or parts[4] not in PAGE_ACTIONS:
                self._json(404, {"status": "error", "error": "expected POST /api/outlet/<pdu>/<port>/on|off|cycle"})
                return
            if isinstance(client, ListenerClient) and not client.may_switch(parts[2]):
                self._json(403, {"status": "error", "error": f"client {client.name!r} may not switch that PDU"})
                return
            status, body = monitor.command(parts[2], parts[3], parts[4])
            self._json(status, body)

    return Handler
