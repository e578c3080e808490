"""The daemon: wires the config, the journal, the broker connection and the PDU runner together."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdumqtt.bridge import MqttBridge
from pdumqtt.broker import EmbeddedBroker
from pdumqtt.commands import Command
from pdumqtt.config import Config, ConfigError, PduConfig, load_config
from pdumqtt.journal import Journal, default_state_dir, journal_path
from pdumqtt.reload import Outcome, outcome_path, pid_path, plan, remove_pid, write_outcome, write_pid
from pdumqtt.runner import Runner

if TYPE_CHECKING:
    from pdumqtt.monitor import Metrics, MonitorServer, StatusFeed

log = logging.getLogger(__name__)


class Daemon:
    """pdumqtt running: ``start()`` returns once everything runs; ``stop()`` ends it;
    ``reload()`` reads the config again and applies it while it runs.

    ``mqtt_overrides`` are mqtt keys given on the command line (``--client-id``): they
    hold over the file's, at start and at every reload.
    """

    def __init__(self, config: Config, broker: tuple[str, int] | None = None,
                 mqtt_overrides: dict[str, Any] | None = None) -> None:
        self.config = config
        self.mqtt_overrides = dict(mqtt_overrides or {})
        config.mqtt.update(self.mqtt_overrides)
        self._broker_given = broker is not None
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
        self.pid_file = pid_path(state_dir, config.client_id)
        self.outcome_file = outcome_path(state_dir, config.client_id)
        self._reload_lock = threading.Lock()
        self._reloads = 0
        self.monitor = None
        self.metrics: Metrics | None = None
        self.feed: StatusFeed | None = None
        if config.http is not None:
            self.monitor = self._monitor()
        else:  # the PDUs are added by _serve, at start
            self.runner = Runner(config, self.bridge, journal=self.journal, pdus=())
        self.runner.on_gone = self._retired
        self.runner.on_restarted = self._restarted
        self.journal.submit = self.runner.submit
        self.fleet = None
        if config.fleet is not None:
            from pdumqtt.fleet import Fleet

            self.fleet = Fleet(config, self.bridge, serve=self._serve_now, accept=self.journal.accept)
            self.runner.may_drive = self.fleet.may_drive
        self.journal.client = self.bridge.client
        self.journal.refuse = self._refuse
        self.bridge.journal = self.journal
        self.bridge.submit = self.journal.accept_from_mqtt
        if self.fleet is not None:  # a command for a PDU another daemon drives is left to it
            self.bridge.submit = lambda command: self.fleet.take(command, self.journal.accept_from_mqtt)
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

        metrics = self.metrics = Metrics()
        feed = self.feed = StatusFeed(self.config) if self.config.http["status_page"] else None
        self.runner = Runner(self.config, Observer(self.bridge, metrics, feed), calls=metrics, journal=self.journal,
                             pdus=())
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
        if self.fleet is None:  # in a fleet, each PDU once claimed, when connected
            for pdu in self.config.pdus.values():
                self._serve(pdu)
        self.runner.start()
        for command in found.pending:  # before anything new arrives: they came first
            pdu = self.config.pdus.get(command.pdu)
            if pdu is None or pdu.resolve_port(command.port) != (command.port, command.number):
                self._refuse(command, f"not run: after a restart, port {command.port!r} of PDU {command.pdu!r} "
                                      "is no longer in the configuration")
            elif self.fleet is not None:  # ours once claimed; left to the owner if another daemon has it
                self.fleet.take(command, self.runner.submit)
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
        if self.fleet is not None:  # first: a standby takes over as soon as the claims are emptied
            self.fleet.stop()
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
        """Serve until SIGTERM or SIGINT; reload at SIGHUP. The pid file says where to send them."""
        done, reload_asked, wake = threading.Event(), threading.Event(), threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            (reload_asked if signum == signal.SIGHUP else done).set()
            wake.set()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP's default would end us
            signal.signal(sig, on_signal)
        self.start()
        try:
            write_pid(self.pid_file)
            while not done.is_set():
                wake.wait()
                wake.clear()
                if reload_asked.is_set() and not done.is_set():
                    reload_asked.clear()
                    self.reload()
        finally:
            remove_pid(self.pid_file)
            self.stop()

    # --- serving PDUs, and reloading which ----------------------------------------------

    def _serve(self, pdu: PduConfig) -> None:
        """A PDU is to be served: at start, and when a reload adds it (in a fleet: once claimed)."""
        if self.fleet is not None:
            self.fleet.claim(pdu.name)
        else:
            self._serve_now(pdu)

    def _serve_now(self, pdu: PduConfig) -> None:
        """The one place a PDU starts being served."""
        self.runner.add(pdu)
        if self.metrics is not None:
            self.metrics.queue_depth.labels(pdu.name).set_function(lambda name=pdu.name: self.runner.waiting(name))

    def _retire(self, name: str) -> None:
        """A reload removed PDU ``name``: it runs what it has queued, then goes (:meth:`_retired`)."""
        if self.fleet is not None:
            self.fleet.release(name)
        self.runner.remove(name)

    def _retired(self, pdu: PduConfig) -> None:
        """The one place a PDU stops being served: its worker has ended (on its thread)."""
        self.bridge.forget(pdu)
        if self.feed is not None:
            self.feed.forget(pdu.name)
        if self.metrics is not None:
            for gauge in (self.metrics.queue_depth, self.metrics.online):
                try:
                    gauge.remove(pdu.name)
                except KeyError:
                    pass
            self.metrics.forget_readings(pdu.name, pdu.ports)

    def _restarted(self, old: PduConfig, new: PduConfig) -> None:
        """A changed PDU's new worker has taken over: empty the topics of the ports it lost."""
        gone = set(old.ports) - set(new.ports)
        if gone:
            self.bridge.forget(old, gone)
            if self.feed is not None:
                self.feed.forget(old.name, gone)
            if self.metrics is not None:
                self.metrics.forget_readings(old.name, gone, totals=False)

    def reload(self, source: Config | str | Path | None = None) -> Outcome:
        """Read the config file again (or ``source``: a file, or a Config) and apply it.

        PDUs added start; removed ones run what they have queued and go, their retained topics
        and Home Assistant entities emptied; changed ones restart after the command under way,
        their queued commands kept. A config that does not validate changes nothing: the error,
        with its key path, is logged and returned. Keys that need a new broker connection (or a
        new listener, journal or discovery) are logged and kept as they are until a restart.
        """
        with self._reload_lock:
            self._reloads += 1
            where = source if isinstance(source, str | Path) else self.config.source
            try:
                new = source if isinstance(source, Config) else load_config(where)
            except ConfigError as e:
                log.error("reload refused, the old configuration keeps running: %s: %s", where, e)
                outcome = Outcome(ok=False, error=str(e), config=str(where))
            else:
                outcome = self._apply(new)
            outcome.pid, outcome.generation = os.getpid(), self._reloads
            write_outcome(self.outcome_file, outcome)
            return outcome

    def _apply(self, new: Config) -> Outcome:
        change = plan(self.config, new, mqtt_overrides=self.mqtt_overrides, broker_given=self._broker_given)
        running = change.config
        if self.fleet is not None:
            self.fleet.reconfigure(running)
        for name in change.added:  # before the bridge takes commands for them
            self._serve(running.pdus[name])
        self.config = running
        self.bridge.reconfigure(running)
        self.journal.window = running.mqtt["transaction_window"]
        if self.listener is not None:
            self.listener.config = running
        if self.monitor is not None:
            self.monitor.config = running
        if self.feed is not None:
            self.feed.reconfigure(running)
        for name in change.changed:
            if self.fleet is None or name in self.runner.workers:  # not one another daemon drives
                self.runner.replace(running.pdus[name])
        for name in change.removed:  # after the bridge: no new command is taken for them
            self._retire(name)
        if self.discovery is not None:
            self.discovery.reconfigure(running)
        if change.restart_needed:
            log.warning("reload: %s changed; not applied until a restart (the broker connection, its session, "
                        "the listeners and the journal stay as they are)", ", ".join(change.restart_needed))
        outcome = Outcome(ok=True, added=change.added, removed=change.removed, changed=change.changed,
                          restart_needed=change.restart_needed, config=running.source)
        log.info("%s", outcome.summary())
        return outcome
