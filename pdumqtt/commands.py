"""Commands: what a message on a ``/set`` or ``/get`` topic asks for, and its ack.

``parse`` turns a topic and payload into a :class:`Command`, or raises
:class:`BadCommand` with a reason for the error ack. It runs on paho's network thread,
so it is cheap and does no I/O.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pdumqtt.config import Config

ACTIONS = ("on", "off", "cycle", "toggle")
MAX_PAYLOAD = 16 * 1024
MAX_DELAY = 24 * 3600.0
MAX_TRANSACTION = 200
JSON_KEYS = {"action", "state", "delay", "transaction", "ts"}

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
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadCommand(f"payload is not valid JSON: {e.msg} at character {e.pos}", command) from None
    if isinstance(data, str):  # "ON" in quotes, as some flows send it
        return {"action": data}
    if not isinstance(data, dict):
        raise BadCommand("payload JSON must be an object", command)
    for key in data:
        if key not in JSON_KEYS:
            raise BadCommand(f"unknown key {key[:40]!r} in payload (known: {', '.join(sorted(JSON_KEYS))})", command)
    if "action" in data and "state" in data:
        raise BadCommand("give either 'action' or 'state', not both", command)
    if "state" in data:
        data["action"] = data.pop("state")
    return data


def _number(value: Any, key: str, command: Command) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadCommand(f"'{key}' must be a number", command)
    return float(value)


def resolve_alias(config: Config, command: Command, name: str) -> None:
    """Point ``command`` at alias ``name``'s PDU and port; BadCommand when there is no such alias."""
    alias = config.aliases.get(name)
    if alias is None:
        command.pdu = ""
        raise BadCommand(f"unknown alias {name!r}", command)
    command.alias, command.pdu = alias.name, alias.pdu
    resolve_port(config, command, alias.port)


def resolve_port(config: Config, command: Command, segment: str) -> None:
    """Set ``command``'s port name and number from ``segment`` (a port name or number) on
    ``command.pdu``; BadCommand when the PDU or the port is not configured."""
    pdu = config.pdus.get(command.pdu)
    if pdu is None:
        raise BadCommand(f"unknown PDU {command.pdu!r} (configured: {', '.join(sorted(config.pdus))})", command)
    port = pdu.resolve_port(segment)
    if port is None:
        raise BadCommand(f"unknown port {segment!r} on PDU {pdu.name!r} "
                         f"(ports: {', '.join(list(pdu.ports)[:32])})", command)
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
    command = Command(action=verb, pdu=levels[0], port=levels[1] if len(levels) == 3 else "",
                      reply_to=topic[: -len(verb) - 1], received=now, transaction=new_transaction())
    if len(levels) != 3 or verb not in ("set", "get"):
        raise BadCommand(f"topic {topic[:200]!r} is not {config.base_topic}/<pdu>/<port>/set or /get", command)
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
        if isinstance(tx, bool) or not isinstance(tx, str | int) or not str(tx) or len(str(tx)) > MAX_TRANSACTION:
            raise BadCommand(f"'transaction' must be a string of 1 to {MAX_TRANSACTION} characters", command)
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
            raise BadCommand(f"unknown action {str(action)[:40]!r}: expected ON, OFF, CYCLE or TOGGLE", command)
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
        raise BadCommand(f"unknown action {action[:40]!r}: expected one of {', '.join(ACTIONS)}", command)
    if alias is not None:
        resolve_alias(config, command, alias)
        command.reply_to = f"{config.base_topic}/alias/{alias}"
    else:
        resolve_port(config, command, port)
        command.reply_to = f"{config.base_topic}/{command.pdu}/{command.port}"
    if delay is not None:
        command.delay = check_delay(delay, command)
    command.deadline = now + config.mqtt["max_command_age"]
    return command


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
