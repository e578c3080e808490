"""The MQTT packets every command costs, decoded and encoded without paho's property machinery.

paho builds a :class:`~paho.mqtt.properties.Properties` (its lookup tables rebuilt each time)
and a :class:`~paho.mqtt.reasoncodes.ReasonCode` for every PUBLISH and PUBACK, and reads
and packs each property by scanning all 27 names; with a command costing one PUBLISH in,
three out and their three PUBACKs, that was half of the daemon's CPU. This module owns the
common cases only, each giving what paho would give:

- :func:`decode_publish`: an incoming QoS 0 or 1 v5 PUBLISH whose properties are among those a
  command carries (message expiry, response topic, correlation data, content type, payload
  format). Anything else (QoS 2, a topic alias, user properties, a subscription identifier,
  a duplicate or malformed property) is None, for paho's own decoder, which also says what
  is wrong with a malformed packet.
- :func:`incoming_message`: the message for ``on_message``, sharing one ``info`` (an outgoing
  message's completion, with a Condition of its own, which an incoming one never uses).
- :func:`decode_puback`: a PUBACK without properties (mosquitto's, whose v5 reason is often
  "No matching subscribers"), its reason code shared instead of built per packet.
- :func:`reply_properties`: a reply's Correlation Data, packed directly.
"""

from __future__ import annotations

from typing import NamedTuple

from paho.mqtt.client import MQTTMessage
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers
from paho.mqtt.reasoncodes import ReasonCode

_EMPTY_PUBLISH = Properties(PacketTypes.PUBLISH)
_TABLES = frozenset(vars(_EMPTY_PUBLISH))  # packetType, types, names, properties: shared, read-only

_PUBACK_NO_PROPERTIES = Properties(PacketTypes.PUBACK)
_PUBACK_REASONS = {0: ReasonCode(PacketTypes.PUBACK)}  # by value; at most 256, made the first time seen

# property identifier: (paho's attribute name, how the value is written)
_PUBLISH_PROPERTIES = {1: ("PayloadFormatIndicator", "byte"), 2: ("MessageExpiryInterval", "int32"),
                       3: ("ContentType", "utf8"), 8: ("ResponseTopic", "utf8"), 9: ("CorrelationData", "binary")}


def publish_properties() -> Properties:
    """An empty PUBLISH Properties sharing the lookup tables (paho's constructor rebuilds them)."""
    properties = Properties.__new__(Properties)
    properties.__dict__.update(vars(_EMPTY_PUBLISH))
    return properties


class _ReplyProperties(Properties):
    """A reply's properties: packed without paho's scan of every property name."""

    def pack(self) -> bytes:
        extra = vars(self).keys() - _TABLES
        if extra - {"CorrelationData"}:  # set more than the correlation: paho's general packing
            return super().pack()
        if not extra:
            return b"\x00"
        data = self.CorrelationData
        body = b"\x09" + len(data).to_bytes(2, "big") + data
        return VariableByteIntegers.encode(len(body)) + body


def reply_properties(correlation: bytes | None) -> Properties | None:
    """The v5 properties of a reply on a response topic: its request's Correlation Data, if any."""
    if correlation is None:
        return None
    properties = _ReplyProperties.__new__(_ReplyProperties)
    properties.__dict__.update(vars(_EMPTY_PUBLISH))
    object.__setattr__(properties, "CorrelationData", bytes(correlation))
    return properties


class Publish(NamedTuple):
    qos: int
    dup: bool
    retain: bool
    topic: bytes
    mid: int
    properties: Properties
    payload: bytes


def decode_publish(header: int, packet: bytes | bytearray) -> Publish | None:
    """A v5 PUBLISH as paho's decoder gives it, or None when it is not a case this decodes."""
    qos = (header & 0x06) >> 1
    if qos == 2 or len(packet) < 3:
        return None
    data = bytes(packet)
    end_topic = 2 + int.from_bytes(data[0:2], "big")
    if end_topic == 2:  # an empty topic comes with a topic alias
        return None
    topic = data[2:end_topic]
    at, mid = end_topic, 0
    if qos:
        mid, at = int.from_bytes(data[at:at + 2], "big"), at + 2
    length, shift = 0, 0
    for _ in range(4):  # the properties' length: a variable byte integer, at most four bytes
        if at >= len(data):
            return None
        byte = data[at]
        at += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        return None
    end = at + length
    if end > len(data):
        return None
    properties = publish_properties()
    found = vars(properties)
    while at < end:
        kind = _PUBLISH_PROPERTIES.get(data[at])  # every identifier here is below 128: one byte
        if kind is None or kind[0] in found:
            return None
        name, form = kind
        at += 1
        if form == "byte":
            value: object = data[at] if at < end else None
            if value not in (0, 1):
                return None
            at += 1
        elif form == "int32":
            if at + 4 > end:
                return None
            value, at = int.from_bytes(data[at:at + 4], "big"), at + 4
        else:
            if at + 2 > end:
                return None
            stop = at + 2 + int.from_bytes(data[at:at + 2], "big")
            if stop > end:
                return None
            value, at = data[at + 2:stop], stop
            if form == "utf8":
                try:
                    value = value.decode("utf-8")  # strict: refuses surrogates, as MQTT does
                except UnicodeDecodeError:
                    return None
                if "\x00" in value or "\ufeff" in value:  # refused by MQTT; paho's decoder says so
                    return None
        if at > end:
            return None
        found[name] = value
    return Publish(qos, bool(header & 0x08), bool(header & 0x01), topic, mid, properties, data[end:])


_INCOMING = MQTTMessage()


def incoming_message(publish: Publish, timestamp: float) -> MQTTMessage:
    """``publish`` as paho hands a message to ``on_message``."""
    message = MQTTMessage.__new__(MQTTMessage)
    for slot in MQTTMessage.__slots__:  # what paho's constructor sets, info included
        setattr(message, slot, getattr(_INCOMING, slot))
    message.mid, message._topic, message.timestamp = publish.mid, publish.topic, timestamp
    message.dup, message.qos, message.retain = publish.dup, publish.qos, publish.retain
    message.properties, message.payload = publish.properties, publish.payload
    return message


def decode_puback(packet: bytes | bytearray, v5: bool) -> tuple[int, ReasonCode, Properties] | None:
    """A PUBACK's packet id, reason code and properties as paho's decoder gives them, or None
    for paho's decoder when it has properties (a reason string) or is malformed."""
    size = len(packet)
    if size == 2:
        reason = _PUBACK_REASONS[0]
    elif v5 and (size == 3 or (size == 4 and packet[3] == 0)):
        reason = _PUBACK_REASONS.get(packet[2])
        if reason is None:
            reason = ReasonCode(PacketTypes.PUBACK)
            try:
                reason.unpack(packet[2:3])
            except (KeyError, ValueError):  # not a PUBACK's reason code: paho's decoder calls it malformed
                return None
            _PUBACK_REASONS[packet[2]] = reason
    else:
        return None
    return int.from_bytes(packet[0:2], "big"), reason, _PUBACK_NO_PROPERTIES
