"""Reloading the configuration: what a new config changes, and how ``pdumqtt reload`` finds the daemon.

It owns three things:

- :func:`plan`: the difference between the running config and a new one: PDUs added,
  removed and changed, the keys that only a restart can apply, and the config the daemon
  runs with from then on (the new PDUs, aliases and per-command settings; the old broker
  connection, listeners, Home Assistant settings and state directory);
- the daemon's two files beside its journal in the state directory: ``<client_id>.pid``
  (written while ``pdumqtt daemon`` runs, so that ``kill -HUP`` and ``pdumqtt reload`` can
  find it) and ``<client_id>.reload`` (the outcome of the last reload, as JSON);
- :func:`ask`: ``pdumqtt reload``'s side: find the daemon, send SIGHUP, wait for the outcome.

A reload is asked for with a signal, not over MQTT: only the daemon's own user (or root) on
its host can send it, nothing new listens on the network, and it works while the broker is
away, which is when a config is most often fixed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pdumqtt.config import Config, default_client_id
from pdumqtt.journal import default_state_dir, journal_path

log = logging.getLogger(__name__)

# mqtt keys read per command, which a reload applies; every other mqtt key needs a new
# connection (and the journal is per client id), so it waits for a restart
LIVE_MQTT_KEYS = ("max_command_age", "transaction_window", "response_topic_prefix")
# with --broker on the command line, the file's host and port are not used at all
BROKER_KEYS = ("host", "port")


class ReloadError(Exception):
    """``pdumqtt reload`` could not ask the daemon, or had no answer; the message says why."""


@dataclass
class Plan:
    """What a reload does, and the config it leaves running."""

    config: Config
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)  # key paths changed but not applied


@dataclass
class Outcome:
    """The last reload's outcome, as the daemon writes it for ``pdumqtt reload``."""

    ok: bool
    error: str | None = None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    config: str = ""
    pid: int = 0
    generation: int = 0

    def summary(self) -> str:
        if not self.ok:
            return f"reload refused, the old configuration keeps running: {self.error}"
        parts = [f"{len(names)} {what}" + (f" ({', '.join(names)})" if names else "")
                 for what, names in (("added", self.added), ("removed", self.removed), ("changed", self.changed))]
        text = "reloaded: PDUs " + ", ".join(parts)
        if self.restart_needed:
            text += f"; not applied until a restart: {', '.join(self.restart_needed)}"
        return text


def _pdu_differs(old: Any, new: Any) -> bool:
    return old != new or old.meter_deadband != new.meter_deadband  # the deadband is not in ==


def plan(old: Config, new: Config, *, mqtt_overrides: dict[str, Any] | None = None,
         broker_given: bool = False) -> Plan:
    """What changes from ``old`` to ``new``; ``mqtt_overrides`` (``--client-id``) hold for both."""
    new_mqtt = {**new.mqtt, **(mqtt_overrides or {})}
    restart = [f"mqtt.{key}" for key in sorted(set(old.mqtt) | set(new_mqtt))
               if key not in LIVE_MQTT_KEYS and not (broker_given and key in BROKER_KEYS)
               and old.mqtt.get(key) != new_mqtt.get(key)]
    for section in ("homeassistant", "pdudaemon", "http", "state_dir", "fleet"):
        if getattr(old, section) != getattr(new, section):
            restart.append(section)
    mqtt = {k: v for k, v in old.mqtt.items() if k not in LIVE_MQTT_KEYS}
    mqtt.update({k: new_mqtt[k] for k in LIVE_MQTT_KEYS if k in new_mqtt})
    running = replace(new, mqtt=mqtt, homeassistant=old.homeassistant, pdudaemon=old.pdudaemon,
                      http=old.http, state_dir=old.state_dir, fleet=old.fleet)
    return Plan(running,
                added=[name for name in new.pdus if name not in old.pdus],
                removed=[name for name in old.pdus if name not in new.pdus],
                changed=[name for name, pdu in new.pdus.items()
                         if name in old.pdus and _pdu_differs(old.pdus[name], pdu)],
                restart_needed=restart)


# --- the daemon's files ------------------------------------------------------------------

def pid_path(state_dir: str | Path, client_id: str) -> Path:
    return journal_path(state_dir, client_id).with_suffix(".pid")


def outcome_path(state_dir: str | Path, client_id: str) -> Path:
    return journal_path(state_dir, client_id).with_suffix(".reload")


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_pid(path: Path) -> None:
    _write_atomically(path, f"{os.getpid()}\n")


def remove_pid(path: Path) -> None:
    """Remove the pid file if it is still ours."""
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except OSError:
        pass


def write_outcome(path: Path, outcome: Outcome) -> None:
    try:
        _write_atomically(path, json.dumps(asdict(outcome)))
    except OSError as e:  # the reload itself stands; only pdumqtt reload will not hear of it
        log.warning("reload: cannot write %s: %s", path, e.strerror)


def read_outcome(path: Path) -> Outcome | None:
    try:
        return Outcome(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


# --- pdumqtt reload ----------------------------------------------------------------------

def daemon_files(raw: Any, config: Config | None, client_id: str | None) -> tuple[Path, Path]:
    """The pid and outcome files of the daemon that runs this config. ``raw`` is the file's data
    when it does not validate (``config`` None): the daemon must be found to hear why."""
    if config is not None:
        client_id = client_id or config.client_id
        state_dir: Any = config.state_dir
    else:
        data = raw if isinstance(raw, dict) else {}
        mqtt = data.get("mqtt") if isinstance(data.get("mqtt"), dict) else {}
        base = mqtt.get("base_topic") if isinstance(mqtt.get("base_topic"), str) else "pdu"
        client_id = client_id or (mqtt.get("client_id") if isinstance(mqtt.get("client_id"), str) else None) \
            or default_client_id(base)
        state_dir = data.get("state_dir") if isinstance(data.get("state_dir"), str) else None
    state_dir = state_dir or default_state_dir()
    return pid_path(state_dir, client_id), outcome_path(state_dir, client_id)


def _daemon_pid(path: Path) -> int:
    try:
        pid = int(path.read_text().strip())
    except FileNotFoundError:
        raise ReloadError(f"no pdumqtt daemon runs with this config: {path} does not exist (is the "
                          "daemon running, with the same client id and state_dir?)") from None
    except (OSError, ValueError) as e:
        raise ReloadError(f"cannot read the daemon's pid from {path}: {e}") from None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        raise ReloadError(f"the daemon in {path} (pid {pid}) is not running (a stale pid file)") from None
    except OSError:
        cmdline = b"pdumqtt"  # no /proc to look at: trust the file
    if b"pdumqtt" not in cmdline:  # the pid was reused after a crash: never signal a stranger
        raise ReloadError(f"pid {pid} in {path} is not a pdumqtt daemon (a stale pid file)")
    return pid


def ask(pid_file: Path, outcome_file: Path, timeout: float) -> Outcome:
    """Send the daemon SIGHUP and wait for the outcome of that reload."""
    pid = _daemon_pid(pid_file)
    before = read_outcome(outcome_file)
    generation = before.generation if before is not None and before.pid == pid else 0
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ReloadError(f"the daemon in {pid_file} (pid {pid}) is not running (a stale pid file)") from None
    except PermissionError:
        raise ReloadError(f"not allowed to signal the daemon (pid {pid}): run as its user or root") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = read_outcome(outcome_file)
        if outcome is not None and outcome.pid == pid and outcome.generation > generation:
            return outcome
        time.sleep(0.05)  # the daemon answers through a file: nothing to wait on but its mtime
    raise ReloadError(f"the daemon (pid {pid}) was asked to reload but said nothing within {timeout:g} s; "
                      "see its log")
