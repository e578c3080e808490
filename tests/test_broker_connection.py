"""The daemon and its broker: login, losing the broker and finding it again."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
from support import Broker, Probe, free_port, start_mosquitto, wait_until


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test's own, which the test may stop and start again."""
    brokers: list[Broker] = []

    def start(port: int | None = None, extra: str = "") -> Broker:
        b = start_mosquitto(tmp_path, port=port, extra=extra)
        brokers.append(b)
        return b

    yield start
    for b in brokers:
        if b.process.poll() is None:
            b.process.terminate()
            b.process.wait(10)


def test_the_daemon_reconnects_and_says_everything_again(own_broker, unique):
    from pdumqtt.config import load_config_data
    from pdumqtt.daemon import Daemon

    first = own_broker()
    daemon = Daemon(load_config_data({"mqtt": {"client_id": unique},
                                      "pdus": {unique: {"driver": "sim", "ports": 2}}}),
                    broker=(first.host, first.port))
    daemon.start()
    try:
        probe = Probe(first)
        probe.subscribe(f"pdu/{unique}/1/state")
        probe.subscribe("pdu/bridge/state")
        probe.wait_for("pdu/bridge/state", lambda m: m.payload == b"online")
        assert probe.request(f"pdu/{unique}/1/set", "ON")["status"] == "ok"
        probe.close()
        first.process.terminate()
        first.process.wait(10)

        # a new, empty broker on the same port: our retained topics must come back
        second = own_broker(port=first.port)
        probe = Probe(second)
        probe.subscribe(f"pdu/{unique}/1/state")
        probe.subscribe(f"pdu/{unique}/availability")
        probe.subscribe("pdu/bridge/state")
        probe.wait_for("pdu/bridge/state", lambda m: m.payload == b"online", timeout=30)
        assert probe.wait_for(f"pdu/{unique}/1/state", timeout=10).payload == b"ON"
        assert probe.wait_for(f"pdu/{unique}/availability", timeout=10).payload == b"online"
        assert probe.request(f"pdu/{unique}/2/set", "ON")["status"] == "ok"
        probe.close()
    finally:
        daemon.stop()


def test_username_and_password_file(own_broker, tmp_path, daemon_process, unique):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "labuser", "s3cret"], check=True)
    broker = own_broker(extra=f"allow_anonymous false\npassword_file {passwords}\n")
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")

    proc = daemon_process({"mqtt": {"host": broker.host, "port": broker.port, "username": "labuser",
                                    "password_file": str(secret), "base_topic": unique},
                           "pdus": {"p": {"driver": "sim", "ports": 1}}}, "--log-level", "debug")
    probe = Probe(broker, username="labuser", password="s3cret")
    try:
        probe.subscribe(f"{unique}/bridge/state")
        probe.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"online", timeout=20)
        assert probe.request(f"{unique}/p/1/set", "ON")["status"] == "ok"
    finally:
        probe.close()
    proc.stop()
    assert "s3cret" not in proc.process.stdout.read()


def test_a_wrong_password_is_logged_and_never_printed(own_broker, tmp_path, daemon_process, unique):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "labuser", "s3cret"], check=True)
    broker = own_broker(extra=f"allow_anonymous false\npassword_file {passwords}\n")
    proc = daemon_process({"mqtt": {"host": broker.host, "port": broker.port, "username": "labuser",
                                    "password": "wrong-Pa55", "base_topic": unique},
                           "pdus": {"p": {"driver": "sim", "ports": 1}}}, "--log-level", "debug")
    lines = []
    for line in proc.process.stdout:
        lines.append(line)
        if "refused the connection" in line:
            break
    proc.stop()
    output = "".join(lines) + proc.process.stdout.read()
    assert "refused the connection" in output
    assert "wrong-Pa55" not in output


def make_certificates(folder) -> tuple[str, str, str]:
    """A CA and a server certificate for 127.0.0.1, made with openssl."""
    ca_key, ca, key, csr, cert = (str(folder / n) for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                             "server.pem"))
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pdumqtt test CA",
        "-keyout", ca_key, "-out", ca)
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
        "-extfile", str(ext), "-out", cert)
    return ca, cert, key


def test_tls_with_a_private_ca(own_broker, tmp_path, daemon_process, unique):
    ca, cert, key = make_certificates(tmp_path)
    tls_port = free_port()
    # one broker, two listeners: plain for the test's probe, TLS for the daemon
    broker = own_broker(extra=f"allow_anonymous true\nlistener {tls_port} 127.0.0.1\n"
                              f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n")
    probe = Probe(broker)
    try:
        probe.subscribe(f"{unique}/bridge/state")
        daemon_process({"mqtt": {"host": "127.0.0.1", "port": tls_port, "tls": {"ca_certs": ca},
                                 "base_topic": unique}, "pdus": {"p": {"driver": "sim", "ports": 1}}})
        probe.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"online", timeout=20)
        assert probe.request(f"{unique}/p/1/set", "ON")["status"] == "ok"
    finally:
        probe.close()


def test_an_ack_made_while_disconnected_is_delivered_on_reconnect(broker, probe, unique):
    """paho promises nothing for what is published before its CONNACK: the bridge holds acks."""
    import socket

    import paho.mqtt.client as mqtt
    from support import free_port

    from pdumqtt.config import load_config_data
    from pdumqtt.daemon import Daemon

    listen = free_port()
    daemon = Daemon(load_config_data({"mqtt": {"client_id": unique}, "pdudaemon": {"listen": f"127.0.0.1:{listen}"},
                                      "pdus": {unique: {"driver": "sim", "ports": 2}}}),
                    broker=(broker.host, broker.port))
    probe.subscribe(f"pdu/{unique}/2/ack")
    daemon.start()
    try:
        wait_until(daemon.connected.is_set, 10, "the daemon to connect")
        # another client with the daemon's id takes its session over: the broker drops the daemon,
        # which comes back after its reconnect delay (a second)
        impostor = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique, protocol=mqtt.MQTTv5)
        impostor.connect(broker.host, broker.port)
        wait_until(lambda: not daemon.connected.is_set(), 10, "the daemon to be dropped")
        with socket.create_connection(("127.0.0.1", listen), timeout=10) as sock:
            sock.sendall(f"{unique} 2 on".encode())
            assert sock.recv(64) == b"ack\n"  # switched while the daemon is away from the broker
        impostor.socket().close()
        ack = json.loads(probe.wait_for(f"pdu/{unique}/2/ack", timeout=20).payload)
        assert ack["status"] == "ok" and ack["state"] == "ON"
    finally:
        daemon.stop()


# --- what paho holds: the publish window ------------------------------------------------


class _Paho:
    """Just enough of a paho client for the window: publish() hands out MQTTMessageInfo."""

    def __init__(self) -> None:
        import paho.mqtt.client as mqtt

        self.sent: list[mqtt.MQTTMessageInfo] = []
        self._mqtt = mqtt

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, properties: object = None):
        info = self._mqtt.MQTTMessageInfo(len(self.sent) % 65535 + 1)  # mids wrap around: the window never looks
        info.rc = self._mqtt.MQTT_ERR_SUCCESS
        self.sent.append(info)
        return info

    def done(self, *infos) -> None:
        for info in infos:
            info._set_as_published()  # what paho does on the PUBACK (QoS 1) or once written (QoS 0)


def _reserving(window, count: int, timeout: float | None, wanted=lambda: True):
    """reserve() on a thread of its own; the result once it returns."""
    import threading

    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(window.reserve(count, timeout, wanted)), daemon=True)
    thread.start()
    return thread, result


def test_the_window_waits_for_room_and_never_for_a_lost_message():
    import time

    import paho.mqtt.client as mqtt

    from pdumqtt.bridge import PublishWindow

    paho = _Paho()
    window = PublishWindow(paho, size=4)  # type: ignore[arg-type]
    assert window.reserve(4, None, lambda: True)
    infos = [window.publish("t", b"x") for _ in range(4)]
    window.release(4)
    assert window.outstanding == 4
    thread, result = _reserving(window, 2, None)
    thread.join(0.2)
    assert thread.is_alive() and not result  # full: it waits
    paho.done(infos[0])
    thread.join(0.2)
    assert thread.is_alive()  # one done is not room for two
    infos[1].rc = mqtt.MQTT_ERR_CONN_LOST  # a QoS 0 message paho dropped with the connection
    paho.done(infos[1])
    thread.join(5)
    assert result == [True] and window.outstanding == 2
    window.release(2)

    # done out of order (a QoS 0 message written while an older QoS 1 one waits for its PUBACK):
    # the waiter waits for the oldest, without spinning
    older = paho.sent[2:4]  # still with paho
    [window.publish("t", b"x") for _ in range(2)]
    thread, result = _reserving(window, 2, None)
    paho.done(older[1])
    cpu = time.process_time()
    thread.join(0.3)
    assert thread.is_alive() and time.process_time() - cpu < 0.1
    paho.done(older[0])
    thread.join(5)
    assert result == [True]
    window.release(2)
    paho.done(*paho.sent)

    # a waiter that is no longer wanted (disconnected, stopping) gives up at once when woken
    assert window.outstanding == 0
    window.reserve(4, None, lambda: True)
    wanted = [True]
    thread, result = _reserving(window, 1, None, lambda: wanted[0])
    wanted[0] = False
    window.wake()
    thread.join(5)
    assert result == [False]

    # a broker that stopped answering: the worker waits its timeout, then publishes anyway
    thread, result = _reserving(window, 1, 0.3)
    thread.join(5)
    assert result == [True] and window.overruns == 1
    # and the next does not wait again while the broker has not caught up
    assert window.reserve(1, 5.0, lambda: True) and window.overruns == 1
    window.release(6)
    assert window.reserve(3, 5.0, lambda: True)  # caught up: waits (here: fits) again
    window.release(3)


def test_the_window_bounds_what_paho_holds_while_the_broker_stands_still(own_broker, unique, monkeypatch):
    """A broker stopped with SIGSTOP acknowledges nothing: a worker publishing states waits for
    room, paho never holds more than the window, and every state arrives once it goes on."""
    import signal
    import threading

    from support import retained, start_daemon

    import pdumqtt.bridge

    monkeypatch.setattr(pdumqtt.bridge, "PUBLISH_WAIT", 60.0)  # no publishing anyway within the test
    broker = own_broker()
    daemon = start_daemon({"pdus": {unique: {"driver": "sim", "ports": 2}}}, broker)
    probe = Probe(broker)
    try:
        window, paho = daemon.bridge.window, daemon.bridge.client
        window.size = 10
        topic = f"pdu/{unique}/t/state"  # no outlet of the PDU: only this test says it
        probe.subscribe(topic)
        most = [0]
        broker.process.send_signal(signal.SIGSTOP)
        try:
            worker = threading.Thread(target=lambda: [daemon.bridge.state(unique, "t", i % 2 == 0) for i in range(61)],
                                      daemon=True)
            worker.start()

            def stalled() -> bool:
                most[0] = max(most[0], len(paho._out_messages))  # paho's own record of what it holds
                return window.outstanding >= window.size

            wait_until(stalled, 10, "the window to fill")
            worker.join(0.3)
            assert worker.is_alive(), "the worker did not wait for room"
            most[0] = max(most[0], len(paho._out_messages))
        finally:
            broker.process.send_signal(signal.SIGCONT)
        worker.join(30)
        assert not worker.is_alive()
        arrived = probe.wait_count(topic, 61, timeout=30)
        assert [m.payload for m in arrived] == [b"ON", b"OFF"] * 30 + [b"ON"]  # all, in order
        assert most[0] <= window.size, f"paho held {most[0]} messages"
        assert window.overruns == 0
        assert [m.payload for m in retained(broker, topic)] == [b"ON"]
    finally:
        probe.close()
        daemon.stop()


def test_a_connect_says_everything_again_from_a_thread_of_its_own(broker, unique):
    """paho's network thread only subscribes on connect: the states, said again after a reconnect,
    are published from elsewhere (it must keep reading and writing the socket meanwhile)."""
    import threading

    import paho.mqtt.client as mqtt
    from support import retained, start_daemon

    daemon = start_daemon({"mqtt": {"client_id": unique}, "pdus": {unique: {"driver": "sim", "ports": 150}}}, broker)
    try:
        bridge = daemon.bridge
        bridge.window.size = 20  # the states come again in many rounds of room
        wait_until(lambda: len(retained(broker, f"pdu/{unique}/+/state")) == 150, 20, "the first states")
        published: list[tuple[int, str]] = []
        publish = bridge.window.publish

        def recording(topic, *args, **kwargs):
            published.append((threading.get_ident(), topic))
            return publish(topic, *args, **kwargs)

        bridge.window.publish = recording
        # another client with the daemon's id takes its session over: the daemon reconnects
        impostor = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique, protocol=mqtt.MQTTv5)
        impostor.connect(broker.host, broker.port)
        wait_until(lambda: not daemon.connected.is_set(), 10, "the daemon to be dropped")
        impostor.socket().close()
        wait_until(lambda: sum(topic.endswith("/state") for _, topic in published) >= 150, 30, "the states again")
        assert bridge._network_thread not in {thread for thread, _ in published}
    finally:
        daemon.stop()


def test_discovery_and_states_come_back_after_a_broker_restart(own_broker, unique):
    """After a restart the broker holds nothing: every state and discovery config is said again,
    through a window much smaller than what there is to say."""
    from support import retained, start_daemon

    first = own_broker()
    daemon = start_daemon({"mqtt": {"client_id": unique}, "homeassistant": {"discovery": True, "prefix": unique},
                           "pdus": {f"{unique}-{n}": {"driver": "sim", "ports": 60} for n in range(3)}}, first)
    try:
        daemon.bridge.window.size = 30
        daemon.discovery.window.size = 30
        assert daemon.discovery.synced.wait(20)
        first.process.terminate()
        first.process.wait(10)
        wait_until(lambda: not daemon.connected.is_set(), 10, "the daemon to notice")
        daemon.discovery.synced.clear()

        second = own_broker(port=first.port)
        wait_until(daemon.connected.is_set, 30, "the daemon to reconnect")
        assert daemon.discovery.synced.wait(30), "discovery never synced again"
        configs = retained(second, f"{unique}/#")
        assert len(configs) == 3 * 60 * 2 and all(m.payload for m in configs)
        wait_until(lambda: len(retained(second, "pdu/+/+/state")) == 3 * 60, 20, "every state")
        assert len(retained(second, "pdu/+/availability")) == 3
    finally:
        daemon.stop()


def test_packets_written_by_many_threads_arrive_whole_and_in_order(broker, make_probe, unique):
    """The bridge's client lets a publishing thread write its packets itself, beside paho's
    network thread (which writes the PUBACKs of what comes in, and the QoS 1 messages held
    back by the in-flight limit): every message arrives, intact and in each thread's order,
    also when large ones fill the socket and a write is left half done."""
    import paho.mqtt.client as mqtt

    from pdumqtt.bridge import _Client

    probe = make_probe()
    probe.subscribe(f"{unique}/out/#")
    client = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id=unique, protocol=mqtt.MQTTv5)
    lost: list[object] = []
    client.on_disconnect = lambda *args: lost.append(args)
    echoed = []
    client.on_message = lambda c, u, m: echoed.append(m.payload)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.max_inflight_messages_set(100)  # room for the threads' own writes, and some held back
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert connected.wait(10)
        client.subscribe(f"{unique}/echo", qos=1)
        threads, rounds = 6, 300

        def size(seq: int) -> int:
            return 200_000 if seq % 8 == 7 else seq

        def publish(index: int) -> None:
            for seq in range(rounds):
                body = f"{seq}:".encode() + b"x" * size(seq)
                with client.batch():
                    client.publish(f"{unique}/out/{index}/a", body, qos=1)
                    last = client.publish(f"{unique}/out/{index}/b", body, qos=1)
                if seq % 3:  # mostly like a worker, one command's messages at a time
                    last.wait_for_publish(10)
                if seq % 10 == 0:
                    client.publish(f"{unique}/echo", b"e", qos=1)  # its PUBACK is paho's thread's

        workers = [threading.Thread(target=publish, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        got = probe.wait_count(f"{unique}/out/#", threads * rounds * 2, timeout=60)
        for index in range(threads):
            for leg in "ab":
                bodies = [m.payload for m in got if m.topic == f"{unique}/out/{index}/{leg}"]
                seqs = [int(body.split(b":")[0]) for body in bodies]
                assert seqs == list(range(rounds))
                assert [len(body) for body in bodies] == [len(f"{s}:") + size(s) for s in seqs]
        wait_until(lambda: len(echoed) == threads * (rounds // 10), 20, "the echoes")
        assert not lost, "the broker dropped the connection (a packet written out of turn?)"
    finally:
        client.disconnect()
        client.loop_stop()
