"""Reading PDUDaemon's ``pdudaemon.conf`` unchanged, and ``pdumqtt migrate``.

PDUDaemon's config is JSON: ``daemon`` (the listener's hostname and port), ``pdus`` (name,
which is also the device's host name, to ``{driver: ..., options}``) and ``aliases``
(name to ``{hostname, port}``). :func:`convert` turns it into pdumqtt config data:

- ``daemon.hostname``/``port`` become ``pdudaemon.listen`` (HTTP and TCP both served);
- a PDU keeps its name and options; its driver name is used as is when a driver of that
  name is installed (drivers register PDUDaemon's names for this), else it is left out
  with a note; ``retries`` (PDUDaemon counts every try) and ``retrydelay`` are mapped;
- PDUDaemon takes any port number, so a PDU gets a port count: its ``port_count`` (consumed
  here, unless the driver takes it as an option, as Tasmota's does), else the driver class's
  ``fixed_ports``, else what its :meth:`~pdumqtt.drivers.Driver.ports_for` says these options
  imply (a Kasa strip's, a USB hub's usual count), else :data:`DEFAULT_PORTS`; raised to cover
  its aliases. The comment above the PDU says which, and why;
- ``localcmdline``'s ``cmd_on``/``cmd_off`` strings, with ``%s`` for the port, become
  argument lists with ``{port}`` in place of ``%s``, run without a shell. A string that
  uses the shell (redirections, pipes, ``$``...) keeps it: it runs as
  ``sh -c '<string>' sh <port>`` with ``%s`` replaced by a quoted ``"$1"``, so the port is
  an argument of the script, never part of its text.

Whatever cannot be mapped is reported: left out of the config with a reason, shown as
a comment by ``pdumqtt migrate`` and logged by the daemon.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from typing import Any

import yaml

from pdumqtt import registry
from pdumqtt.config import NAME_RE, RESERVED_PDU_NAMES, ConfigError

DEFAULT_PORTS = 48  # outlets of the largest common PDUs; requests beyond a PDU's own count fail on the device
LISTENER_PORT = 16421
log = logging.getLogger(__name__)

SECRET_RE = re.compile(r"pass|secret|community|token|api_?key|private_?key", re.IGNORECASE)
# Characters that make a command string need a shell (quotes alone do not: shlex splits them).
SHELL_CHARS = set("|&;<>()$`\\*?[]~#!=\n{}")


class Unmappable(Exception):
    """Something in PDUDaemon's config that has no pdumqtt equivalent; the message says why."""


@dataclass
class Conversion:
    """pdumqtt config data from a pdudaemon.conf, and what could not be carried over."""

    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # about the file as a whole
    pdu_notes: dict[str, list[str]] = field(default_factory=dict)  # about one converted PDU
    skipped: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # name -> (why, options)
    skipped_aliases: dict[str, tuple[str, Any]] = field(default_factory=dict)


def is_pdudaemon_conf(data: Any) -> bool:
    """True for PDUDaemon's shape: a ``daemon`` section and ``pdus`` of ``{driver: ...}`` maps."""
    if not isinstance(data, dict) or not isinstance(data.get("daemon"), dict):
        return False
    pdus = data.get("pdus")
    return isinstance(pdus, dict) and all(isinstance(p, dict) and "driver" in p for p in pdus.values())


def shell_command(text: str) -> list[str]:
    """A localcmdline command string with ``%s`` (or ``%d``) for the port, as an argument list.

    Without shell syntax: the words, ``%s`` replaced by ``{port}`` inside its word. With it:
    ``sh -c SCRIPT sh {port}``, the port reaching the script only as ``"$1"``.
    """
    if not isinstance(text, str) or not text.strip():
        raise Unmappable("expected a command string")
    if not SHELL_CHARS & set(text.replace("%s", "").replace("%d", "")):
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise Unmappable(f"cannot split {text!r}: {e}") from None
        return [_placeholders(word, "{port}") for word in words]
    return ["sh", "-c", _shell_script(text), "sh", "{port}"]


def _placeholders(word: str, port: str) -> str:
    out, i = [], 0
    while i < len(word):
        if word[i] == "%":
            nxt = word[i + 1:i + 2]
            if nxt == "%":
                out.append("%")
            elif nxt in ("s", "d"):
                out.append(port)
            else:
                raise Unmappable(f"unsupported '%{nxt}' in {word!r} (only %s for the port)")
            i += 2
            continue
        out.append(word[i])
        i += 1
    return "".join(out)


def _shell_script(text: str) -> str:
    """``text`` with each ``%s`` replaced by the first argument, quoted for where it stands."""
    quoted = {None: '"${1}"', "'": "'\"${1}\"'", '"': "${1}"}
    out: list[str] = []
    state: str | None = None  # the quote we are inside, if any
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and state != "'":
            out.append(text[i:i + 2])
            i += 2
            continue
        if c == "%":
            nxt = text[i + 1:i + 2]
            if nxt == "%":
                out.append("%")
            elif nxt in ("s", "d"):
                out.append(quoted[state])
            else:
                raise Unmappable(f"unsupported '%{nxt}' in {text!r} (only %s for the port)")
            i += 2
            continue
        if state is None and c in "'\"":
            state = c
        elif state == c:
            state = None
        out.append(c)
        i += 1
    if state is not None:
        raise Unmappable(f"unbalanced quote in {text!r}")
    return "".join(out)


def _count(value: Any) -> int | None:
    """A port_count as PDUDaemon reads it (``int(value)``): a whole number from 1, or a string of one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def _ports_of(pdudaemon_driver: str, driver: str | None, options: dict[str, Any],
              alias_ports: list[int]) -> tuple[int, str]:
    cls = registry.load(driver) if driver else None
    first = cls.first_port if cls else 1
    count = _count(options.get("port_count"))
    implied = cls.ports_for(options) if cls else None
    if count:
        why = "from its port_count"
    elif cls and cls.fixed_ports:
        count, why = cls.fixed_ports, f"the outlets of a {pdudaemon_driver}"
    elif implied:
        count, why = implied
    else:
        count, why = DEFAULT_PORTS, (f"PDUDaemon accepts any port number: {DEFAULT_PORTS} covers the largest "
                                     "common PDUs; set this PDU's real outlet count or name its ports")
    if alias_ports and max(alias_ports) + 1 - first > count:
        count, why = max(alias_ports) + 1 - first, "raised to cover its aliases"
    return min(count, 1024), why


def _driver(name: str) -> str | None:
    known = registry.names()
    if name in known:
        return name
    return {k.lower(): k for k in known}.get(name.lower())


def _convert_pdu(name: str, raw: dict[str, Any], alias_ports: list[int]) -> tuple[dict[str, Any], list[str]]:
    if not NAME_RE.match(name):
        raise Unmappable("a pdumqtt PDU name is letters, digits, '_', '.' or '-': rename it (and its aliases)")
    if name in RESERVED_PDU_NAMES:
        raise Unmappable(f"'{name}' is reserved for topics in pdumqtt: rename it")
    options = {k: v for k, v in raw.items() if k not in ("driver", "retries", "retrydelay")}
    pdudaemon_driver = raw["driver"]
    notes: list[str] = []
    out: dict[str, Any] = {}
    driver: str | None = None
    if pdudaemon_driver == "localcmdline":
        out["driver"] = "localcmdline"
        for key in ("cmd_on", "cmd_off"):
            if key in options:
                out[key] = shell_command(options.pop(key))
                if out[key][:2] == ["sh", "-c"]:
                    notes.append(f"{key} uses the shell: it runs as sh -c with the port passed as $1, never "
                                 "pasted into the command")
            else:
                out[key] = ["true"]
                notes.append(f"no {key} in PDUDaemon's config, where it did nothing: 'true' does nothing too")
        options.pop("port_count", None)  # the port count, below
        if options:
            notes.append(f"left out (localcmdline takes cmd_on and cmd_off only): {', '.join(sorted(options))}")
            options = {}
    else:
        driver = _driver(pdudaemon_driver)
        if driver is None:
            raise Unmappable(f"no pdumqtt driver for PDUDaemon's {pdudaemon_driver!r} is installed "
                             "(see `pdumqtt drivers`)")
        out["driver"] = driver
        if "port_count" in options and "port_count" not in {str(k) for k in registry.load(driver).options}:
            count = options.pop("port_count")  # PDUDaemon's drivers but Tasmota's ignore it; here it is the count
            if _count(count) is None:
                notes.append(f"port_count {count!r} left out: expected a whole number from 1")
    count, why = _ports_of(pdudaemon_driver, driver, raw, alias_ports)
    out["ports"] = count
    notes.insert(0, f"ports: {count}, {why}")
    if "retries" in raw:
        if isinstance(raw["retries"], int) and not isinstance(raw["retries"], bool) and raw["retries"] >= 1:
            out["retries"] = raw["retries"] - 1  # PDUDaemon counts the first try too
        else:
            notes.append(f"retries {raw['retries']!r} left out: expected a count of tries from 1")
    if "retrydelay" in raw:
        out["retry_delay"] = raw["retrydelay"]
    out.update(options)
    return {"driver": out.pop("driver"), "ports": out.pop("ports"), **out}, notes


def _masked(options: dict[str, Any]) -> dict[str, Any]:
    return {k: ("<secret: copy it from pdudaemon.conf>" if SECRET_RE.search(k) else v) for k, v in options.items()}


def _check(name: str, pdu: dict[str, Any]) -> None:
    """Validate one converted PDU as the daemon would; Unmappable with the reason if it fails."""
    from pdumqtt.config import load_config_data

    try:
        load_config_data({"pdus": {name: pdu}})
    except ConfigError as e:
        raise Unmappable(f"its options do not fit pdumqtt's {pdu['driver']} driver: {e}") from None


def convert(data: dict[str, Any]) -> Conversion:
    """pdumqtt config data for PDUDaemon config ``data`` (already parsed JSON)."""
    result = Conversion(config={})
    daemon = data.get("daemon") or {}
    host = daemon.get("hostname", "127.0.0.1")
    port = daemon.get("port", LISTENER_PORT)
    host = f"[{host}]" if isinstance(host, str) and ":" in host else host
    result.config["pdudaemon"] = {"listen": f"{host}:{port}"}
    for key, value in daemon.items():
        if key == "listener":
            result.notes.append(f"daemon.listener {value!r}: pdumqtt serves both HTTP and TCP on the one port")
        elif key == "logging_level":
            result.notes.append(f"daemon.logging_level {value!r}: use `pdumqtt daemon --log-level "
                                f"{str(value).lower()}`")
        elif key not in ("hostname", "port"):
            result.notes.append(f"daemon.{key} has no pdumqtt equivalent and is left out")
    for key in data:
        if key not in ("daemon", "pdus", "aliases"):
            result.notes.append(f"section {key!r} has no pdumqtt equivalent and is left out")

    raw_aliases = data.get("aliases") or {}
    alias_ports: dict[str, list[int]] = {}
    for target in raw_aliases.values():
        if isinstance(target, dict) and str(target.get("port", "")).isdigit():
            alias_ports.setdefault(target.get("hostname"), []).append(int(target["port"]))

    pdus: dict[str, Any] = {}
    for name, raw in data["pdus"].items():
        try:
            pdu, notes = _convert_pdu(name, raw, alias_ports.get(name, []))
            _check(name, pdu)
        except Unmappable as e:
            result.skipped[name] = (str(e), _masked(raw))
            continue
        pdus[name] = pdu
        result.pdu_notes[name] = notes
    result.config["pdus"] = pdus

    aliases = {}
    for name, target in raw_aliases.items():
        if not isinstance(target, dict) or "hostname" not in target or "port" not in target:
            result.skipped_aliases[name] = ("expected {hostname, port}", target)
        elif not NAME_RE.match(str(name)):
            result.skipped_aliases[name] = ("an alias name is letters, digits, '_', '.' or '-'", target)
        elif target["hostname"] not in pdus:
            result.skipped_aliases[name] = (f"its PDU {target['hostname']!r} was not converted", target)
        else:
            aliases[name] = {"pdu": target["hostname"], "port": str(target["port"])}
    if aliases:
        result.config["aliases"] = aliases
    return result


def load(data: dict[str, Any], source: str) -> dict[str, Any]:
    """:func:`convert` for the daemon: the config data, with a log line for whatever was left out."""
    conversion = convert(data)
    for name, (why, _) in conversion.skipped.items():
        log.warning("%s: PDUDaemon PDU %r left out: %s", source, name, why)
    for name, (why, _) in conversion.skipped_aliases.items():
        log.warning("%s: PDUDaemon alias %r left out: %s", source, name, why)
    log.info("%s: read as a PDUDaemon config: %d PDUs, listener on %s (`pdumqtt migrate %s` shows the "
             "equivalent pdumqtt config)", source, len(conversion.config["pdus"]),
             conversion.config["pdudaemon"]["listen"], source)
    return conversion.config


def _comment(text: str, indent: str = "") -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in text.splitlines()]


def _block(data: dict[str, Any], indent: str) -> list[str]:
    text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False, width=100)
    return [indent + line for line in text.splitlines()]


def to_yaml(conversion: Conversion, source: str) -> str:
    """The converted config as YAML, with a comment for everything not carried over."""
    lines = _comment(f"pdumqtt config converted from {source} by `pdumqtt migrate`.\n"
                     "No mqtt section: add mqtt.host (or run `pdumqtt daemon --broker HOST:PORT`); without\n"
                     "either, pdumqtt starts a local mosquitto.")
    lines += [f"# {note}" for note in conversion.notes]
    lines += _block({"pdudaemon": conversion.config["pdudaemon"]}, "")
    lines.append("pdus:" if conversion.config["pdus"] or conversion.skipped else "pdus: {}")
    for name, pdu in conversion.config["pdus"].items():
        notes = [textwrap.fill(note, 96, subsequent_indent="  ") for note in conversion.pdu_notes.get(name, [])]
        lines += _comment("\n".join(notes), "  ")
        lines += _block({name: pdu}, "  ")
    for name, (why, options) in conversion.skipped.items():
        lines += _comment(f"NOT CONVERTED: {why}\n{json.dumps({name: options})}", "  ")
    if "aliases" in conversion.config or conversion.skipped_aliases:
        lines.append("aliases:" if "aliases" in conversion.config else "aliases: {}")
        for name, target in conversion.config.get("aliases", {}).items():
            lines += _block({name: target}, "  ")
        for name, (why, target) in conversion.skipped_aliases.items():
            lines += _comment(f"NOT CONVERTED: alias {name}: {why}: {json.dumps(target)}", "  ")
    return "\n".join(lines) + "\n"
