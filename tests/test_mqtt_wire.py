"""pdumqtt/mqtt_wire.py gives what paho's own decoder and packer give, or leaves the packet to paho."""

import random

import pytest
from paho.mqtt import _packet
from paho.mqtt.client import MQTTMessage
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pdumqtt import mqtt_wire


def publish_packet(topic: bytes, payload: bytes, qos: int = 1, mid: int = 7, props: bytes = b"\x00") -> bytes:
    return len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"") + props + payload


def packed(**values: object) -> bytes:
    properties = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(properties, name, value)
    return properties.pack()


def assert_as_paho(header: int, packet: bytes) -> None:
    ours = mqtt_wire.decode_publish(header, bytearray(packet))
    assert ours is not None
    theirs = _packet.decode_publish(header, bytearray(packet), MQTTProtocolVersion.MQTTv5)
    assert (ours.qos, ours.dup, ours.retain, ours.topic, ours.mid, ours.payload) == \
        (theirs.qos, theirs.dup, theirs.retain, theirs.topic, theirs.mid, theirs.payload)
    assert type(ours.topic) is type(theirs.topic) and type(ours.payload) is type(theirs.payload)
    assert ours.properties.json() == theirs.properties.json()
    assert str(ours.properties) == str(theirs.properties)


@pytest.mark.parametrize("props", [
    {},
    {"ResponseTopic": "reply/me", "CorrelationData": b"\x00\x01abc"},
    {"MessageExpiryInterval": 30, "ResponseTopic": "r", "CorrelationData": b""},
    {"PayloadFormatIndicator": 1, "ContentType": "application/json", "ResponseTopic": "r\u00e9"},
])
@pytest.mark.parametrize("header", [0x32, 0x3A, 0x33, 0x30])
def test_a_command_publish_decodes_as_paho_decodes_it(props, header):
    qos = (header >> 1) & 3
    assert_as_paho(header, publish_packet(b"pdu/p1/1/set", b'{"action": "on"}', qos=qos, props=packed(**props)))


@pytest.mark.parametrize("props", [
    packed(UserProperty=("a", "b")),  # a property mqtt_wire does not read
    packed(TopicAlias=3),
    packed(SubscriptionIdentifier=5),
    b"\x08\x08\x00\x01r\x08\x00\x01s",  # a property given twice
    b"\x04\x08\x00\x02\xff\xfe",  # not UTF-8
    b"\x04\x08\x00\x01\x00",  # a NUL
    b"\x05\x08\x00\x03\xef\xbb\xbf",  # U+FEFF
    b"\x02\x01\x02",  # a payload format indicator that is neither 0 nor 1
    b"\x05\x02\x00\x00\x00",  # cut short
    b"\x09",  # longer than the packet
    b"\xff\xff\xff\xff\x7f",  # a length of five bytes
])
def test_what_mqtt_wire_does_not_decode_goes_to_paho(props):
    assert mqtt_wire.decode_publish(0x32, publish_packet(b"t", b"", props=props)) is None


def test_qos_2_and_an_empty_topic_go_to_paho():
    assert mqtt_wire.decode_publish(0x34, publish_packet(b"t", b"x", qos=2)) is None
    assert mqtt_wire.decode_publish(0x32, publish_packet(b"", b"x")) is None


def test_random_bytes_decode_as_paho_or_go_to_it():
    rng = random.Random(13)
    base = publish_packet(b"pdu/p1/1/set", b"ON", props=packed(ResponseTopic="r", CorrelationData=b"c",
                                                                    MessageExpiryInterval=5))
    for _ in range(3000):
        packet = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            packet[rng.randrange(len(packet))] = rng.randrange(256)
        packet = packet[:rng.randint(0, len(packet))] if rng.random() < 0.2 else packet
        if mqtt_wire.decode_publish(0x32, packet) is not None:
            assert_as_paho(0x32, bytes(packet))


@pytest.mark.parametrize("correlation", [b"", b"\x00abc", bytes(range(256)) * 3])
def test_reply_properties_pack_as_paho_packs_them(correlation):
    assert mqtt_wire.reply_properties(correlation).pack() == packed(CorrelationData=correlation)
    assert mqtt_wire.reply_properties(None) is None


def test_reply_properties_with_more_set_pack_as_paho():
    properties = mqtt_wire.reply_properties(b"c")
    properties.MessageExpiryInterval = 9
    assert properties.pack() == packed(MessageExpiryInterval=9, CorrelationData=b"c")


@pytest.mark.parametrize("packet", [b"\x00\x07", b"\x01\x07\x00", b"\x01\x07\x10", b"\x01\x07\x87\x00"])
def test_a_puback_without_properties_decodes_as_paho_decodes_it(packet):
    ours = mqtt_wire.decode_puback(bytearray(packet), v5=True)
    theirs = _packet.decode_puback(0x40, bytearray(packet), MQTTProtocolVersion.MQTTv5)
    assert ours[0] == theirs.mid and ours[1] == theirs.reason and ours[1].getName() == theirs.reason.getName()
    assert ours[1].is_failure == theirs.reason.is_failure and str(ours[2]) == str(theirs.properties)


@pytest.mark.parametrize(("packet", "v5"), [
    (b"\x00\x07\x00", False),  # v3.1.1: two bytes or malformed
    (b"\x00\x07\x02", True),  # not a PUBACK reason code
    (b"\x00\x07\x10\x03\x1f\x00\x00", True),  # a reason string
    (b"\x00", True),
])
def test_a_puback_with_properties_or_malformed_goes_to_paho(packet, v5):
    assert mqtt_wire.decode_puback(bytearray(packet), v5) is None


def test_an_incoming_message_has_what_paho_gives_on_message():
    publish = mqtt_wire.decode_publish(0x3B, publish_packet(b"pdu/p1/1/set", b"ON", props=packed(ResponseTopic="r")))
    message = mqtt_wire.incoming_message(publish, 12.5)
    assert (message.topic, message.payload, message.mid, message.qos, message.dup, message.retain) == \
        ("pdu/p1/1/set", b"ON", 7, 1, True, True)
    assert message.timestamp == 12.5 and message.properties.ResponseTopic == "r"
    assert message.state == MQTTMessage().state and message.info.mid == 0
