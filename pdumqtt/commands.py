"""Commands: what a message on a ``/set`` or ``/get`` topic asks for, and its ack.

``parse`` turns a topic and payload into a :class:`Command`, or raises
:class:`BadCommand` with a reason for the error ack. It runs on paho's network thread,
so it is cheap and does no I/O.

It also owns the input rules that keep a topic ACL meaningful and the daemon safe:
one spelling per outlet (a configured name, or the number in ASCII digits without
leading zeros), the limits checked before any parsing work (topic and payload size,
JSON depth, number and transaction length), the response topics the daemon will
publish to, and :func:`quote`, which every error and log line uses to echo bad input.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pdumqtt.config import Config

ACTIONS = ("on", "off", "cycle", "toggle")
MAX_PAYLOAD = 16 * 1024  # bytes
MAX_TOPIC = 512  # characters, command and response topics alike; config names are at most 128
MAX_JSON_DEPTH = 4  # nesting of objects and arrays; a command needs 1
MAX_NUMBER = 32  # characters of one JSON number
MAX_DELAY = 24 * 3600.0
MAX_TRANSACTION = 200
QUOTE = 40  # characters of bad input an error or a log line echoes
JSON_KEYS = {"action", "state", "delay", "transaction", "ts"}

# one JSON token that matters for nesting: a string (skipped whole, closed or not, so that
# nothing is scanned twice: linear time on any input) or a bracket
_JSON_NESTING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.S)

_boot = os.urandom(4).hex()
_counter = itertools.count(1)


def new_transaction() -> str:
    """A transaction id unique to this daemon run."""
    return f"{_boot}-{next(_counter)}"


@dataclass(slots=True)
class Command:
    """One request, from its arrival to its ack."""

    action: str  # on, off, cycle, toggle or get
    pdu: str  # as addressed; may be unknown when the command is refused
    port: str  # the port's configured name when known, else the topic segment
    number: int = 0
    delay: float | None = None
    transaction: str = ""
    alias: str | None = None
    reply_to: str = ""  # the topic prefix the ack goes under: {base}/<pdu>/<port> or {base}/alias/<alias>
    response_topic: str | None = None
    correlation: bytes | None = None
    received: float = field(default_factory=time.monotonic)
    deadline: float | None = None  # monotonic time after which it must not run
    client_transaction: bool = False  # the sender chose the id, so it is deduplicated
    # called with the ack's JSON once the command is done, for requests that came in
    # another way than MQTT (the PDUDaemon listener) and wait for their answer
    on_ack: Callable[[bytes], None] | None = None
    # the outlet's meter as the device gave it with the switch, for the ack
    readings: dict[str, float] | None = None


def quote(value: object) -> str:
    """``value`` for an error or a log line: its repr, cut to a short prefix when long."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if len(text) <= QUOTE:
        return repr(text)
    return f"{text[:QUOTE]!r}... ({len(text)} characters)"


def _bounded(text: str, limit: int = 64) -> str:
    """A topic level for an ack field: as is, or its first ``limit`` characters and '...'."""
    return text if len(text) <= limit else text[:limit] + "..."


class BadCommand(Exception):
    """A command that cannot run; the message is the error ack's reason."""

    def __init__(self, reason: str, command: Command) -> None:
        super().__init__(reason)
        self.command = command


def _payload_fields(payload: bytes, command: Command) -> dict[str, Any]:
    """The request's fields from a plain word or a JSON object."""
    if len(payload) > MAX_PAYLOAD:
        raise BadCommand(f"payload too large ({len(payload)} bytes, at most {MAX_PAYLOAD})", command)
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadCommand("payload is not UTF-8 text", command) from None
    if not text.startswith(("{", "[", '"')):
        return {"action": text} if text else {}
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise BadCommand(f"payload JSON nested too deep (more than {MAX_JSON_DEPTH} levels; a command needs 1)",
                         command)
    try:
        data = json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except json.JSONDecodeError as e:
        raise BadCommand(f"payload is not valid JSON: {e.msg} at character {e.pos}", command) from None
    except _NumberTooLong as e:
        raise BadCommand(f"a number in the payload is too long ({e.length} characters, at most {MAX_NUMBER})",
                         command) from None
    if isinstance(data, str):  # "ON" in quotes, as some flows send it
        return {"action": data}
    if not isinstance(data, dict):
        raise BadCommand("payload JSON must be an object", command)
    for key in data:
        if key not in JSON_KEYS:
            raise BadCommand(f"unknown key {quote(key)} in payload (known: {', '.join(sorted(JSON_KEYS))})", command)
    if "action" in data and "state" in data:
        raise BadCommand("give either 'action' or 'state', not both", command)
    if "state" in data:
        data["action"] = data.pop("state")
    return data


class _NumberTooLong(Exception):
    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length


def _json_int(text: str) -> int:
    if len(text) > MAX_NUMBER:  # before int(): Python refuses (slowly) past 4,300 digits
        raise _NumberTooLong(len(text))
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > MAX_NUMBER:
        raise _NumberTooLong(len(text))
    return float(text)


def _json_constant(text: str) -> float:
    return float(text)  # NaN, Infinity: refused later as not finite


def _json_depth(text: str) -> int:
    """The deepest nesting of objects and arrays in ``text``, counted without parsing it
    (json.loads recurses once per level and raises RecursionError on deep input)."""
    depth = deepest = 0
    for token in _JSON_NESTING.finditer(text):
        kind = token.group()[0]
        if kind in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    break
        elif kind in "]}":
            depth -= 1
    return deepest


def _number(value: Any, key: str, command: Command) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadCommand(f"'{key}' must be a number", command)
    return float(value)


def _folded(text: str) -> str:
    """What a look-alike spelling of a name comes to: NFKC (fullwidth and mathematical
    digits become ASCII), no surrounding space, case folded."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def _look_alike(segment: str, names: Any) -> str | None:
    """The configured name that ``segment`` is another spelling of, if any."""
    if len(segment) > 200:
        return None
    folded = _folded(segment)
    for name in names:
        if _folded(name) == folded:
            return name
    return None


def _verb(command: Command) -> str:
    return command.action if command.action in ("set", "get") else "set"


def resolve_alias(config: Config, command: Command, name: str) -> None:
    """Point ``command`` at alias ``name``'s PDU and port; BadCommand when there is no such alias."""
    alias = config.aliases.get(name)
    if alias is None:
        command.pdu = ""
        like = _look_alike(name, config.aliases)
        hint = f": the alias's topic is {config.base_topic}/alias/{like}/{_verb(command)}" if like else ""
        raise BadCommand(f"unknown alias {quote(name)}{hint}", command)
    command.alias, command.pdu = alias.name, alias.pdu
    resolve_port(config, command, alias.port)


def canonical_port(pdu: Any, segment: str) -> str | None:
    """The configured port that ``segment`` spells another way (``01``, `` 1``, ``DUT1``,
    fullwidth or Arabic-Indic digits), for the error's hint; None when it names no port."""
    if len(segment) > 200:
        return None
    like = _look_alike(segment, pdu.ports)
    if like is not None:
        return like
    folded = _folded(segment)
    try:  # int() reads any script's decimal digits
        number = int(folded) if folded and all(c.isdecimal() for c in folded) else None
    except ValueError:
        number = None
    return pdu.names_by_number.get(number) if number is not None else None


def resolve_port(config: Config, command: Command, segment: str) -> None:
    """Set ``command``'s port name and number from ``segment`` (a port name, or its number
    in ASCII digits without leading zeros) on ``command.pdu``; BadCommand when the PDU or the
    port is not configured, naming the canonical topic when ``segment`` spells one another way."""
    pdu = config.pdus.get(command.pdu)
    if pdu is None:
        like = _look_alike(command.pdu, config.pdus)
        hint = f": did you mean {like!r}?" if like else ""
        names = sorted(config.pdus)
        known = ", ".join(names[:32]) + (", ..." if len(names) > 32 else "")
        pdu_name, command.pdu = command.pdu, _bounded(command.pdu)
        raise BadCommand(f"unknown PDU {quote(pdu_name)}{hint} (configured: {known})", command)
    port = pdu.resolve_port(segment)
    if port is None:
        canonical = canonical_port(pdu, segment)
        if canonical is not None:
            where = (f"{config.base_topic}/alias/{command.alias}" if command.alias
                     else f"{config.base_topic}/{pdu.name}/{canonical}")
            raise BadCommand(f"port {quote(segment)} is not how this outlet is written: "
                             f"its topic is {where}/{_verb(command)} (a port is its configured name or its "
                             "number in ASCII digits without leading zeros)", command)
        names = list(pdu.ports)
        known = ", ".join(names[:32]) + (", ..." if len(names) > 32 else "")
        raise BadCommand(f"unknown port {quote(segment)} on PDU {pdu.name!r} (ports: {known})", command)
    command.port, command.number = port


def check_delay(value: Any, command: Command) -> float:
    """A request's delay in seconds, within range; BadCommand otherwise."""
    delay = _number(value, "delay", command)
    if not 0 <= delay <= MAX_DELAY:
        raise BadCommand(f"'delay' must be from 0 to {MAX_DELAY:g} seconds, not {delay:g}", command)
    return delay


def parse(config: Config, topic: str, payload: bytes, *, retained: bool = False,
          expiry: float | None = None) -> Command:
    """The command a message asks for; BadCommand when it cannot run.

    ``expiry`` is the MQTT v5 message expiry interval left when the broker delivered it.
    """
    now = time.monotonic()
    levels = topic[len(config.base_topic) + 1:].split("/")
    verb = levels[-1]
    command = Command(action=verb, pdu=levels[0], port=_bounded(levels[1]) if len(levels) == 3 else "",
                      reply_to=topic[: -len(verb) - 1], received=now, transaction=new_transaction())
    if len(topic) > MAX_TOPIC:
        command.pdu = _bounded(command.pdu)
        raise BadCommand(f"topic too long ({len(topic)} characters, at most {MAX_TOPIC})", command)
    if len(levels) != 3 or verb not in ("set", "get"):
        raise BadCommand(f"topic {quote(topic)} is not {config.base_topic}/<pdu>/<port>/set or /get", command)
    if verb == "set":
        fields = _payload_fields(payload, command)
        if isinstance(fields.get("action"), str) and fields["action"].lower() in ACTIONS:
            command.action = fields["action"].lower()
    else:  # a /get takes any payload; a JSON one may carry a transaction
        try:
            fields = _payload_fields(payload, command)
        except BadCommand:
            fields = {}
    if "transaction" in fields:
        tx = fields["transaction"]
        if isinstance(tx, bool) or not isinstance(tx, str | int) or not str(tx):
            raise BadCommand(f"'transaction' must be a string of 1 to {MAX_TRANSACTION} characters", command)
        if len(str(tx)) > MAX_TRANSACTION:
            raise BadCommand(f"'transaction' too long ({len(str(tx))} characters, at most {MAX_TRANSACTION})",
                             command)
        command.transaction, command.client_transaction = str(tx), True
    if levels[0] == "alias":
        resolve_alias(config, command, levels[1])
    else:
        resolve_port(config, command, levels[1])

    if verb == "set":
        if retained:
            raise BadCommand("refused a retained /set: it would fire again at every restart "
                             "(publish commands without the retain flag)", command)
        action = fields.get("action")
        if action is None:
            raise BadCommand("empty command: send ON, OFF, CYCLE or TOGGLE", command)
        if not isinstance(action, str) or action.lower() not in ACTIONS:
            raise BadCommand(f"unknown action {quote(action)}: expected ON, OFF, CYCLE or TOGGLE", command)
        command.action = action.lower()
        if "delay" in fields:
            command.delay = check_delay(fields["delay"], command)

    max_age = config.mqtt["max_command_age"]
    command.deadline = now + max_age
    if "ts" in fields:
        age = time.time() - _number(fields["ts"], "ts", command)
        command.deadline = now + max_age - max(age, 0.0)
    if expiry is not None:
        command.deadline = min(command.deadline, now + expiry)
    return command


def request(config: Config, action: str, *, pdu: str = "", port: str = "", alias: str | None = None,
            delay: Any = None, on_ack: Callable[[bytes], None] | None = None) -> Command:
    """A command that came in another way than MQTT (the PDUDaemon listener), checked as a
    ``/set`` would be; BadCommand when it cannot run. Its ack also goes to MQTT, under the
    PDU's (or alias's) topic."""
    now = time.monotonic()
    command = Command(action=action, pdu=pdu, port=port, received=now, transaction=new_transaction(),
                      on_ack=on_ack)
    if action not in ACTIONS:
        raise BadCommand(f"unknown action {quote(action)}: expected one of {', '.join(ACTIONS)}", command)
    if alias is not None:
        resolve_alias(config, command, alias)
        command.reply_to = f"{config.base_topic}/alias/{alias}"
    else:
        if port.isascii() and port.isdigit() and len(port) <= 12:
            port = str(int(port))  # PDUDaemon reads a port with int(): 04 is port 4 there
        resolve_port(config, command, port)
        command.reply_to = f"{config.base_topic}/{command.pdu}/{command.port}"
    if delay is not None:
        command.delay = check_delay(delay, command)
    command.deadline = now + config.mqtt["max_command_age"]
    return command


def response_topic_problem(config: Config, topic: str) -> str | None:
    """Why the daemon will not publish a reply on ``topic``, or None when it may.

    A reply goes out with the daemon's own broker rights, which are wider than the
    requester's: a response topic under the daemon's base topic or Home Assistant's
    prefix, or any ``/set`` or ``/get`` topic, would let a client publish there as the
    daemon (a confused deputy). ``mqtt.response_topic_prefix`` narrows it further.
    """
    if not topic:
        return "it is empty"
    if len(topic) > MAX_TOPIC:
        return f"it is too long ({len(topic)} characters, at most {MAX_TOPIC})"
    if "+" in topic or "#" in topic or "\0" in topic:
        return "it has wildcards ('+', '#') or a NUL"
    if topic.startswith("$"):
        return "topics starting with '$' are the broker's"
    for own in (config.base_topic, config.homeassistant["prefix"]):
        if topic == own or topic.startswith(own + "/"):
            return f"it is under {own}/, where only the daemon publishes"
    if topic.rsplit("/", 1)[-1] in ("set", "get"):
        return "it is a /set or /get topic: a reply there would be a command"
    prefixes = config.mqtt.get("response_topic_prefix")
    if prefixes and not any(topic.startswith(p.rstrip("/") + "/") for p in prefixes):
        return f"it is not under the allowed prefix ({', '.join(p.rstrip('/') + '/' for p in prefixes)})"
    return None


def ack_payload(command: Command, status: str, state: bool | None, error: str | None,
                queued_ms: float, took_ms: float) -> bytes:
    """The ack's JSON, as the contract describes it."""
    ack: dict[str, Any] = {
        "transaction": command.transaction, "pdu": command.pdu, "port": command.port,
        "action": command.action, "status": status,
        "state": None if state is None else ("ON" if state else "OFF"),
        "error": error, "queued_ms": round(queued_ms, 1), "took_ms": round(took_ms, 1),
    }
    if command.alias:
        ack["alias"] = command.alias
    if command.readings:
        ack["readings"] = command.readings
    return json.dumps(ack).encode()
