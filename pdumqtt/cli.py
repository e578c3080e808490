"""The ``pdumqtt`` command: the daemon, client commands, config checks, simulators.

Exit status: 0 ok, 1 the device or daemon answered with an error, 2 bad usage or
config, 3 no answer in time.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import voluptuous as vol

from pdumqtt import __version__, registry
from pdumqtt.client import BrokerOptions, NoAnswer, command_topic, format_readings, send, status
from pdumqtt.config import ConfigError, load_config, read_config_file
from pdumqtt.drivers import split_host

EXIT_ERROR, EXIT_USAGE, EXIT_NO_ANSWER = 1, 2, 3


def _fail(message: str, code: int) -> None:
    click.echo(f"pdumqtt: {message}", err=True)
    sys.exit(code)


def _broker(value: str) -> tuple[str, int]:
    try:
        return split_host(value, 1883)
    except vol.Invalid as e:
        raise click.BadParameter(f"expected HOST:PORT ({e.msg})") from None


def broker_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every client command takes, each with its environment variable."""
    for option in reversed([
        click.option("--broker", envvar="PDUMQTT_BROKER", default="127.0.0.1:1883", show_default=True,
                     help="MQTT broker as HOST:PORT [env PDUMQTT_BROKER]"),
        click.option("--username", envvar="PDUMQTT_USERNAME", help="broker user [env PDUMQTT_USERNAME]"),
        click.option("--password", envvar="PDUMQTT_PASSWORD", help="broker password [env PDUMQTT_PASSWORD]"),
        click.option("--base-topic", envvar="PDUMQTT_BASE_TOPIC", default="pdu", show_default=True,
                     help="the daemon's mqtt.base_topic [env PDUMQTT_BASE_TOPIC]"),
    ]):
        func = option(func)
    return func


def _options(broker: str, username: str | None, password: str | None, base_topic: str) -> BrokerOptions:
    host, port = _broker(broker)
    return BrokerOptions(host, port, username, password, base_topic)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pdumqtt")
def main() -> None:
    """pdumqtt: switch PDU outlets over MQTT, one command at a time per PDU."""


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              envvar="PDUMQTT_CONFIG", help="config file, YAML or JSON [env PDUMQTT_CONFIG]")
@click.option("--broker", envvar="PDUMQTT_BROKER",
              help="use this broker (HOST:PORT), overriding mqtt.host/port [env PDUMQTT_BROKER]")
@click.option("--client-id", envvar="PDUMQTT_CLIENT_ID",
              help="MQTT client id, overriding mqtt.client_id; two daemons must never share one "
                   "[env PDUMQTT_CLIENT_ID]")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def daemon(config_path: str, broker: str | None, client_id: str | None, log_level: str) -> None:
    """Run the bridge: serve every configured PDU over MQTT.

    With no broker in the config and no --broker, start a local mosquitto from the
    shipped mosquitto.conf on 127.0.0.1 and stop it on exit.
    """
    from pdumqtt.broker import BrokerError
    from pdumqtt.daemon import Daemon
    from pdumqtt.journal import JournalError
    from pdumqtt.monitor import MonitorError
    from pdumqtt.pdudaemon import ListenerError

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(config_path)
    except ConfigError as e:
        _fail(f"{config_path}: {e}", EXIT_USAGE)
    try:
        Daemon(config, broker=_broker(broker) if broker else None,
               mqtt_overrides={"client_id": client_id} if client_id else None).run()
    except JournalError as e:
        _fail(f"{config_path}: state_dir: {e}", EXIT_USAGE)
    except (BrokerError, ListenerError, MonitorError) as e:
        _fail(str(e), EXIT_ERROR)


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              envvar="PDUMQTT_CONFIG", help="the running daemon's config file [env PDUMQTT_CONFIG]")
@click.option("--client-id", envvar="PDUMQTT_CLIENT_ID",
              help="the daemon's --client-id, if it was started with one [env PDUMQTT_CLIENT_ID]")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
              help="seconds to wait for the daemon's answer")
def reload(config_path: str, client_id: str | None, timeout: float) -> None:
    """Make the running daemon read its config again (SIGHUP) and say what changed.

    The daemon is found by the pid file beside its journal (<state_dir>/<client_id>.pid).
    Exit 0 when the new config is running, 2 when it was refused (the old one keeps
    running), 3 when no daemon runs or it did not answer in time.
    """
    from pdumqtt.reload import ReloadError, ask, daemon_files

    try:
        config, raw = load_config(config_path), None
    except ConfigError:  # the daemon is still to be found: it says why, and keeps the old config
        config = None
        try:
            raw = read_config_file(config_path)
        except ConfigError:
            raw = None
    pid_file, outcome_file = daemon_files(raw, config, client_id)
    try:
        outcome = ask(pid_file, outcome_file, timeout)
    except ReloadError as e:
        _fail(str(e), EXIT_NO_ANSWER)
    if not outcome.ok:
        _fail(f"{outcome.config}: {outcome.summary()}", EXIT_USAGE)
    if outcome.config and Path(outcome.config).resolve() != Path(config_path).resolve():
        click.echo(f"pdumqtt: note: the daemon reads {outcome.config}, not {config_path}", err=True)
    click.echo(outcome.summary())


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              envvar="PDUMQTT_CONFIG", help="config file to validate")
def check(config_path: str) -> None:
    """Validate a config file without starting anything (exit 0 or 2)."""
    try:
        config = load_config(config_path)
    except ConfigError as e:
        _fail(f"{config_path}: {e}", EXIT_USAGE)
    ports = sum(len(p.ports) for p in config.pdus.values())
    click.echo(f"{config_path}: ok, {len(config.pdus)} PDUs, {ports} outlets, {len(config.aliases)} aliases")


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              envvar="PDUMQTT_CONFIG", help="the daemon's config file [env PDUMQTT_CONFIG]")
@click.option("--broker", envvar="PDUMQTT_BROKER", help="check this broker (HOST:PORT) instead of mqtt.host/port")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="seconds to wait for each answer from the broker")
def doctor(config_path: str, broker: str | None, timeout: float) -> None:
    """Check a setup without switching anything, and say what to do.

    The broker (reachable, credentials, round trip, queued-message limit), the running
    daemon and its clock, the PDUDaemon listener's port, ssh known_hosts, and each PDU
    (read through the daemon when it runs, else directly where the driver can read).
    Exit 0 when nothing is wrong (warnings allowed), 1 for problems, 2 for a bad config.
    """
    from pdumqtt.doctor import PROBLEM, Doctor

    try:
        config = load_config(config_path)
    except ConfigError as e:
        _fail(f"{config_path}: {e}", EXIT_USAGE)
    findings = Doctor(config, _broker(broker) if broker else None, timeout).run()
    for finding in findings:
        click.echo(finding.line())
    problems = sum(f.level == PROBLEM for f in findings)
    click.echo(f"{problems} problem(s), {sum(f.level == 'warning' for f in findings)} warning(s)")
    sys.exit(EXIT_ERROR if problems else 0)


@main.command()
@click.argument("pdudaemon_conf", type=click.Path(dir_okay=False))
def migrate(pdudaemon_conf: str) -> None:
    """Print the pdumqtt YAML equivalent to a PDUDaemon config (pdudaemon.conf).

    Whatever cannot be mapped is shown as a comment. The daemon also reads the
    pdudaemon.conf itself, unchanged: this is for moving to a pdumqtt config.
    """
    from pdumqtt.pdudaemon_conf import convert, is_pdudaemon_conf, to_yaml

    try:
        data = read_config_file(pdudaemon_conf)
    except ConfigError as e:
        _fail(str(e), EXIT_USAGE)
    if not is_pdudaemon_conf(data):
        _fail(f"{pdudaemon_conf}: not a PDUDaemon config (expected JSON with 'daemon' and 'pdus' of "
              "{driver: ...} entries)", EXIT_USAGE)
    click.echo(to_yaml(convert(data), pdudaemon_conf), nl=False)


def _schema_rows(options: dict[Any, Any]) -> list[str]:
    rows = []
    for key in options:
        name = str(key)
        if isinstance(key, vol.Required):
            rows.append(f"{name} (required)")
        elif isinstance(key, vol.Optional) and not isinstance(key.default, vol.Undefined):
            rows.append(f"{name} (default {key.default()!r})")
        else:
            rows.append(f"{name} (optional)")
    return rows


@main.command()
def drivers() -> None:
    """List every driver with its options."""
    for name in sorted(registry.names()):
        try:
            cls = registry.load(name)
        except Exception as e:
            click.echo(f"{name}: cannot be loaded: {e}")
            continue
        model = f" - {cls.model}" if cls.model else ""
        click.echo(f"{name}{model}")
        for row in _schema_rows(cls.options) or ["(no options)"]:
            click.echo(f"    {row}")


def _print_ack(ack: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(ack))
        return
    where = f"{ack.get('alias') or ack['pdu']}" + ("" if ack.get("alias") else f"/{ack['port']}")
    state = f", now {ack['state']}" if ack.get("state") else ""
    if ack["status"] == "ok":
        click.echo(f"{where}: {ack['action']} ok{state} ({ack['took_ms']:.0f} ms)")
    else:
        click.echo(f"{where}: {ack['action']} failed: {ack['error']}{state}", err=True)


def _make_action(action: str) -> click.Command:
    @broker_options
    @click.argument("target")
    @click.argument("port", required=False)
    @click.option("--delay", type=click.FloatRange(min=0), help="cycle: seconds off (default from the config)")
    @click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                  help="seconds to wait for the ack (a cycle's delay is added)")
    @click.option("--no-wait", is_flag=True, help="publish and return without waiting for the ack")
    @click.option("--json", "as_json", is_flag=True, help="print the ack as JSON")
    def run(target: str, port: str | None, delay: float | None, timeout: float, no_wait: bool, as_json: bool,
            **broker: Any) -> None:
        options = _options(**broker)
        payload: dict[str, Any] = {"action": action}
        if delay is not None:
            payload["delay"] = delay
        wait_for = timeout + (delay or 0)
        topic = command_topic(options.base_topic, target, port, "get" if action == "get" else "set")
        try:
            ack = send(options, topic, payload, wait_for, wait=not no_wait)
        except NoAnswer as e:
            _fail(str(e), EXIT_NO_ANSWER)
        if ack is None:
            click.echo(f"sent {action} to {topic}")
            return
        _print_ack(ack, as_json)
        sys.exit(0 if ack["status"] == "ok" else EXIT_ERROR)

    run.__doc__ = (f"Switch an outlet {action.upper()}: PDU PORT, or an ALIAS alone." if action in ("on", "off")
                   else f"{action.capitalize()} an outlet: PDU PORT, or an ALIAS alone.")
    return click.command(action)(run)


for _action in ("on", "off", "cycle", "toggle", "get"):
    main.add_command(_make_action(_action))


@main.command("status")
@broker_options
@click.argument("pdu", required=False)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print as JSON")
def status_command(pdu: str | None, timeout: float, as_json: bool, **broker: Any) -> None:
    """Every outlet's state and its PDU's availability, from the retained topics."""
    options = _options(**broker)
    try:
        found = status(options, timeout)
    except NoAnswer as e:
        _fail(str(e), EXIT_NO_ANSWER)
    info = found["info"]
    if info is None:
        _fail(f"no pdumqtt daemon has published under {options.base_topic}/ on this broker", EXIT_ERROR)
    pdus = info["pdus"]
    if pdu is not None and pdu not in pdus:
        _fail(f"no PDU named {pdu!r} (known: {', '.join(sorted(pdus))})", EXIT_USAGE)
    names = [name for name in sorted(pdus) if pdu is None or name == pdu]
    rows = [(name, port, found["states"].get((name, port), "?"), found["availability"].get(name, "?"),
             found["readings"].get((name, port), {})) for name in names for port in pdus[name]["ports"]]
    totals = {name: found["totals"][name] for name in names if name in found["totals"]}
    if as_json:
        click.echo(json.dumps({"bridge": found["bridge"], "outlets": [
            {"pdu": r[0], "port": r[1], "state": r[2], "availability": r[3], **({"readings": r[4]} if r[4] else {})}
            for r in rows], **({"totals": totals} if totals else {}),
            **({key: found[key] for key in ("owners", "daemons")} if found["owners"] or found["daemons"] else {})}))
        return
    click.echo(f"bridge: {found['bridge'] or '?'} (pdumqtt {info.get('version', '?')})")
    header: tuple[str, ...] = ("PDU", "PORT", "STATE", "AVAILABILITY")
    table = [r[:4] for r in rows]
    if totals or any(r[4] for r in rows):  # a READINGS column only where something meters
        header += ("READINGS",)
        table = [(*r[:4], format_readings(r[4])) for r in rows]
        table += [(name, "(total)", "", found["availability"].get(name, "?"), format_readings(values))
                  for name, values in totals.items()]
    _echo_table(header, table)
    if found["owners"] or found["daemons"]:
        _echo_fleet(found, names)


def _echo_table(header: tuple[str, ...], table: list[tuple[Any, ...]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _echo_fleet(found: dict[str, Any], names: list[str]) -> None:
    """Several daemons (pdumqtt/fleet.py): who owns each PDU, who stands by, who is kept out."""
    standby: dict[str, list[str]] = {}
    conflicts: dict[str, list[str]] = {}
    for daemon, record in sorted(found["daemons"].items()):
        for name in record.get("standby", []):
            standby.setdefault(name, []).append(daemon)
        for name in record.get("conflicts", {}):
            conflicts.setdefault(name, []).append(daemon)
    click.echo("")
    rows = [(name, (found["owners"].get(name) or {}).get("daemon", "-"),
             (found["owners"].get(name) or {}).get("state", "-"), ", ".join(standby.get(name, [])) or "-",
             ", ".join(conflicts.get(name, [])) or "-") for name in names]
    _echo_table(("PDU", "OWNER", "CLAIM", "STANDBY", "CONFLICT"), rows)


@main.command()
@broker_options
@click.argument("pdu", required=False)
@click.option("--json", "as_json", is_flag=True, help="one JSON line per change instead of a table")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="seconds to wait for the broker to accept the connection")
def watch(pdu: str | None, as_json: bool, timeout: float, **broker: Any) -> None:
    """A live table of outlets, states, availability and each outlet's last ack; Ctrl-C ends it.

    Watching only subscribes: it never sends a command.
    """
    from pdumqtt.watch import Fleet, Watcher, run_table

    options = _options(**broker)
    stop, changed = threading.Event(), threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    fleet = Fleet(options.base_topic, pdu)
    if as_json:
        def on_change(change: dict[str, Any]) -> None:
            click.echo(json.dumps(change))
            sys.stdout.flush()
    else:
        def on_change(change: dict[str, Any]) -> None:
            changed.set()
    watcher = Watcher(options, fleet, on_change)
    try:
        watcher.start(timeout)
    except NoAnswer as e:
        _fail(str(e), EXIT_NO_ANSWER)
    click.echo(f"watching {options.base_topic}/ on {options.host}:{options.port}; Ctrl-C ends", err=True)
    try:
        if as_json:
            stop.wait()
        else:
            run_table(watcher, changed, stop)
    finally:
        watcher.stop()


@main.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="simulators to start: {name: {kind: KIND, ...options}}")
def sim(config_path: str) -> None:
    """Start device simulators from a small config, until SIGTERM or Ctrl-C."""
    try:
        data = read_config_file(config_path)
    except ConfigError as e:
        _fail(str(e), EXIT_USAGE)
    if not isinstance(data, dict) or not data:
        _fail(f"{config_path}: expected a map of simulator name to {{kind: ..., options}}", EXIT_USAGE)
    kinds = registry.names(registry.SIMULATOR_GROUP)
    sims = []
    for name, raw in data.items():
        kind = raw.get("kind") if isinstance(raw, dict) else None
        if kind not in kinds:
            _fail(f"{config_path}: {name}.kind: expected one of {', '.join(sorted(kinds))}", EXIT_USAGE)
        cls = registry.load(kind, registry.SIMULATOR_GROUP)
        options = {k: v for k, v in raw.items() if k != "kind"}
        try:
            options = vol.Schema(cls.options)(options)
        except vol.Invalid as e:
            _fail(f"{config_path}: {name}: {e}", EXIT_USAGE)
        sims.append((name, kind, cls(options)))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    started = []
    try:
        for name, kind, simulator in sims:
            simulator.start()
            started.append(simulator)
            click.echo(f"{name}: {kind} at {simulator.address}", nl=True)
        sys.stdout.flush()
        done.wait()
    finally:
        for simulator in reversed(started):
            simulator.stop()
