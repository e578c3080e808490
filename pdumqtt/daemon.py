"""The daemon: wires the config, the journal, the broker connection and the PDU runner together."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import TYPE_CHECKING

from pdumqtt.bridge import MqttBridge
from pdumqtt.broker import EmbeddedBroker
from pdumqtt.commands import Command
from pdumqtt.config import Config
from pdumqtt.journal import Journal, default_state_dir, journal_path
from pdumqtt.runner import Runner

if TYPE_CHECKING:
    from pdumqtt.monitor import MonitorServer

log = logging.getLogger(__name__)


class Daemon:
    """pdumqtt running: ``start()`` returns once everything runs; ``stop()`` ends it."""

    def __init__(self, config: Config, broker: tuple[str, int] | None = None) -> None:
        self.config = config
        self.embedded: EmbeddedBroker | None = None
        if broker is None:
            if "host" in config.mqtt:
                broker = (config.mqtt["host"], config.mqtt["port"])
            else:
                self.embedded = EmbeddedBroker(config.mqtt["port"])
                broker = ("127.0.0.1", config.mqtt["port"])
        self.broker = broker
        self.bridge = MqttBridge(config, *broker)
        state_dir = config.state_dir or default_state_dir()
        self.journal = Journal(journal_path(state_dir, config.client_id), config.mqtt["transaction_window"])
        self.monitor = None
        if config.http is not None:
            self.monitor = self._monitor()
        else:
            self.runner = Runner(config, self.bridge, journal=self.journal)
        self.journal.submit = self.runner.submit
        self.journal.client = self.bridge.client
        self.journal.refuse = self._refuse
        self.bridge.journal = self.journal
        self.bridge.submit = self.journal.accept_from_mqtt
        self.discovery = None
        if config.homeassistant["discovery"]:
            from pdumqtt.homeassistant import Discovery

            self.discovery = Discovery(config, self.bridge.client)
            self.bridge.on_connected.append(self.discovery.on_connected)
        self.listener = None
        if config.pdudaemon is not None:
            from pdumqtt.pdudaemon import PduDaemonListener

            self.listener = PduDaemonListener(config, self.journal.accept)
        self.stopped = threading.Event()

    def _monitor(self) -> MonitorServer:
        """Metrics and the status page see everything the runner publishes, through an Observer."""
        from pdumqtt.monitor import Metrics, MonitorServer, Observer, StatusFeed

        metrics = Metrics()
        feed = StatusFeed(self.config) if self.config.http["status_page"] else None
        self.runner = Runner(self.config, Observer(self.bridge, metrics, feed), calls=metrics, journal=self.journal)
        for name, worker in self.runner.workers.items():
            metrics.queue_depth.labels(name).set_function(lambda worker=worker: worker.waiting)
        metrics.broker_connected.set_function(lambda: 1 if self.bridge.connected.is_set() else 0)
        self.bridge.on_connected.append(lambda client: metrics.broker_connections.inc())
        return MonitorServer(self.config, metrics, feed, self.journal.accept)

    @property
    def connected(self) -> threading.Event:
        return self.bridge.connected

    def _refuse(self, command: Command, reason: str) -> None:
        self.bridge.ack(command, None, reason, time.monotonic())

    def start(self) -> None:
        """Start everything; JournalError when the state directory cannot be used."""
        self.journal.open()  # first: a second daemon with our client id stops here
        try:
            if self.monitor is not None:  # a taken port stops us before anything runs
                self.monitor.start()
            if self.listener is not None:
                try:
                    self.listener.start()
                except Exception:
                    if self.monitor is not None:
                        self.monitor.stop()
                    raise
        except BaseException:
            self.journal.close()
            raise
        if self.embedded is not None:
            self.embedded.start()
        found = self.journal.recover()
        for command, ack in found.answered + found.unanswered:  # a client's retry must not run it again
            if command.client_transaction and self.bridge.transactions.claim(command) is True:
                self.bridge.transactions.complete(command, ack)
        for command in found.pending:
            if command.client_transaction:
                self.bridge.transactions.claim(command)
        self.runner.start()
        for command in found.pending:  # before anything new arrives: they came first
            pdu = self.config.pdus.get(command.pdu)
            if pdu is None or pdu.resolve_port(command.port) != (command.port, command.number):
                self._refuse(command, f"not run: after a restart, port {command.port!r} of PDU {command.pdu!r} "
                                      "is no longer in the configuration")
            else:
                self.runner.submit(command)
        for command, ack in found.unanswered:  # held until connected
            self.bridge.publish_ack(command, ack)
        self.journal.start()
        self.bridge.start()
        log.info("pdumqtt serving %d PDUs on %s:%s under %s/", len(self.config.pdus), *self.broker,
                 self.config.base_topic)

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self.listener is not None:
            self.listener.close()
        self.runner.stop()
        self.bridge.stop()
        self.journal.close()
        if self.listener is not None:  # after the runner, so requests under way get their answer
            self.listener.stop()
        if self.monitor is not None:
            self.monitor.stop()
        if self.embedded is not None:
            self.embedded.stop()
        log.info("pdumqtt stopped")

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT."""
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        try:
            done.wait()
        finally:
            self.stop()
