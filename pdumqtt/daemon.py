"""The daemon: wires the config, the broker connection and the PDU runner together."""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING

from pdumqtt.bridge import MqttBridge
from pdumqtt.broker import EmbeddedBroker
from pdumqtt.config import Config
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
        self.monitor = None
        if config.http is not None:
            self.monitor = self._monitor()
        else:
            self.runner = Runner(config, self.bridge)
        self.bridge.submit = self.runner.submit
        self.discovery = None
        if config.homeassistant["discovery"]:
            from pdumqtt.homeassistant import Discovery

            self.discovery = Discovery(config, self.bridge.client)
            self.bridge.on_connected.append(self.discovery.on_connected)
        self.listener = None
        if config.pdudaemon is not None:
            from pdumqtt.pdudaemon import PduDaemonListener

            self.listener = PduDaemonListener(config, self.runner.submit)
        self.stopped = threading.Event()

    def _monitor(self) -> MonitorServer:
        """Metrics and the status page see everything the runner publishes, through an Observer."""
        from pdumqtt.monitor import Metrics, MonitorServer, Observer, StatusFeed

        metrics = Metrics()
        feed = StatusFeed(self.config) if self.config.http["status_page"] else None
        self.runner = Runner(self.config, Observer(self.bridge, metrics, feed), calls=metrics)
        for name, worker in self.runner.workers.items():
            metrics.queue_depth.labels(name).set_function(lambda worker=worker: worker.waiting)
        metrics.broker_connected.set_function(lambda: 1 if self.bridge.connected.is_set() else 0)
        self.bridge.on_connected.append(lambda client: metrics.broker_connections.inc())
        return MonitorServer(self.config, metrics, feed, self.runner.submit)

    @property
    def connected(self) -> threading.Event:
        return self.bridge.connected

    def start(self) -> None:
        if self.monitor is not None:  # first: a taken port stops us before anything runs
            self.monitor.start()
        if self.listener is not None:
            try:
                self.listener.start()
            except Exception:
                if self.monitor is not None:
                    self.monitor.stop()
                raise
        if self.embedded is not None:
            self.embedded.start()
        self.runner.start()
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
