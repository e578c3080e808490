"""The daemon and its broker: login, losing the broker and finding it again."""

from __future__ import annotations

import json
import subprocess

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
