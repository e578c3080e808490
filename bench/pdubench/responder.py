"""The request/reply floor: a bare paho v5 responder, run as a process of its own.

    python responder.py PORT TOPIC_FILTER [DELAY]

It subscribes (QoS 1) to TOPIC_FILTER and answers every request on the request's v5
Response Topic, QoS 1, with its Correlation Data and an ack-shaped JSON payload: the
pattern a pdumqtt command follows, with nothing in between but paho and the broker. It
runs paho's loop in its one thread (``loop_forever``) and sets TCP_NODELAY on its socket,
as the requester does. Imports nothing from pdumqtt or the bench, so it measures paho alone.

With DELAY (seconds), each answer goes out that long after its request came, from a second
thread: the floor of workload (d), whose driver takes that long.
"""

from __future__ import annotations

import json
import queue
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


def no_delay(client: mqtt.Client, userdata: object, sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main(port: int, topic_filter: str, delay: float = 0.0) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-responder-{port}-{topic_filter}",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.on_socket_open = no_delay

    def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        client.subscribe(topic_filter, options=SubscribeOptions(qos=1))

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        reply_to = getattr(message.properties, "ResponseTopic", None)
        if not reply_to:
            return
        parts = message.topic.split("/")
        action = message.payload.decode(errors="replace").lower()
        payload = json.dumps({"pdu": parts[-3], "port": parts[-2], "action": action, "status": "ok",
                              "state": action.upper(), "error": None}).encode()
        props = Properties(PacketTypes.PUBLISH)
        correlation = getattr(message.properties, "CorrelationData", None)
        if correlation is not None:
            props.CorrelationData = correlation
        if delay:
            later.put((time.monotonic() + delay, reply_to, payload, props))
        else:
            client.publish(reply_to, payload, qos=1, properties=props)

    later: queue.SimpleQueue[tuple[float, str, bytes, Properties]] = queue.SimpleQueue()

    def answer_later() -> None:  # every request waits the same delay, so they come due in order
        while True:
            due, reply_to, payload, props = later.get()
            time.sleep(max(0.0, due - time.monotonic()))
            client.publish(reply_to, payload, qos=1, properties=props)

    if delay:
        threading.Thread(target=answer_later, daemon=True).start()
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=600)
    client.loop_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
