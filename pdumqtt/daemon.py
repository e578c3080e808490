"""The daemon: wires the config, the broker connection and the PDU runner together."""

from __future__ import annotations

import logging
import signal
import threading

from pdumqtt.bridge import MqttBridge
from pdumqtt.broker import EmbeddedBroker
from pdumqtt.config import Config
from pdumqtt.runner import Runner

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

    @property
    def connected(self) -> threading.Event:
        return self.bridge.connected

    def start(self) -> None:
        if self.listener is not None:  # first: a taken port stops us before anything runs
            self.listener.start()
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
