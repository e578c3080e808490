"""With the shipped mosquitto ACL (examples/mosquitto/acl), a client switches only what it
is granted: not through another spelling of a topic, not by naming a Response Topic the
daemon would publish to with its own rights, not through the PDUDaemon listener.

The broker is a real mosquitto with ``password_file`` and ``acl_file``; the daemon logs in
as ``pdumqtt``. Each test ends with the same check: lab2's outlet 1 (the "network switch"
every user but the admin is kept from) was never switched.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from support import ROOT, Broker, Probe, free_port, start_mosquitto, tcp_exchange, wait_until

from pdumqtt.drivers.sim import device

ACL = ROOT / "examples" / "mosquitto" / "acl"
USERS = ("pdumqtt", "lab-admin", "ci-lab1", "lab-user", "viewer")
LAVA_TOKEN = "lava-" + uuid.uuid4().hex
ADMIN_PASSWORD = "admin-" + uuid.uuid4().hex
# sim devices are per PDU name and per process: names of this module's own
LAB1, LAB2 = "lab1", "lab2"


def password(user: str) -> str:
    return f"pw-{user}-0123"


class Lab:
    broker: Broker
    daemon: Any
    listener: tuple[str, int]
    log: list[str]

    def probe(self, user: str) -> Probe:
        p = Probe(self.broker, username=user, password=password(user), reply_prefix=f"reply/{user}")
        self.probes.append(p)
        return p

    def __init__(self) -> None:
        self.probes: list[Probe] = []


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + ("\n" + record.exc_text if record.exc_text else ""))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from pdumqtt.config import load_config_data
    from pdumqtt.daemon import Daemon

    tmp = tmp_path_factory.mktemp("acl")
    passwd = tmp / "passwd"
    for n, user in enumerate(USERS):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if n == 0 else []), str(passwd), user, password(user)],
                       check=True, capture_output=True)
    setup = Lab()
    setup.broker = start_mosquitto(tmp, extra=f"allow_anonymous false\npassword_file {passwd}\nacl_file {ACL}\n")
    secret = tmp / "mqtt-password"
    secret.write_text(password("pdumqtt") + "\n")
    clients = tmp / "pdudaemon-clients.yaml"
    clients.write_text(yaml.safe_dump({"lava": {"token": LAVA_TOKEN, "pdus": [LAB1]},
                                       "admin": {"password": ADMIN_PASSWORD, "pdus": ["*"]}}))
    config = load_config_data({
        "mqtt": {"host": setup.broker.host, "port": setup.broker.port, "username": "pdumqtt",
                 "password_file": str(secret), "client_id": f"acl-{uuid.uuid4().hex[:8]}",
                 "response_topic_prefix": "reply"},
        "pdudaemon": {"listen": f"127.0.0.1:{free_port()}", "auth_file": str(clients)},
        "defaults": {"retries": 0, "timeout": 2},
        "pdus": {LAB1: {"driver": "sim", "ports": 4}, LAB2: {"driver": "sim", "ports": 4}},
        "aliases": {"rpi4-01": {"pdu": LAB1, "port": 3}, "core-switch": {"pdu": LAB2, "port": 1}},
    })
    setup.log = []
    handler = _Collect(setup.log)
    logging.getLogger("pdumqtt").addHandler(handler)
    setup.daemon = Daemon(config, broker=(setup.broker.host, setup.broker.port))
    setup.daemon.start()
    try:
        wait_until(setup.daemon.connected.is_set, 10, "the daemon to log in")
        setup.listener = setup.daemon.listener.address
        yield setup
    finally:
        for p in setup.probes:
            p.close()
        setup.daemon.stop()
        logging.getLogger("pdumqtt").removeHandler(handler)
        setup.broker.process.terminate()
        setup.broker.process.wait(10)
    assert not any("Traceback" in line for line in setup.log)
    assert not any(secret_text in line for line in setup.log for secret_text in (LAVA_TOKEN, ADMIN_PASSWORD))


def publish_denied(lab: Lab, user: str, topics: list[str]) -> None:
    """Publish as ``user`` where the ACL grants nothing, and wait for each PUBACK (the broker
    has then routed the message, had it been granted). One connection per message: after a
    denied QoS 1 publish, mosquitto 2.0.11 drops the connection at the next packet."""
    for topic in topics:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.username_pw_set(user, password(user))
        connected = threading.Event()
        client.on_connect = lambda *a, done=connected: done.set()
        client.connect(lab.broker.host, lab.broker.port)
        client.loop_start()
        try:
            assert connected.wait(10), f"{user} could not log in"
            client.publish(topic, "ON", qos=1).wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()


def switched(pdu: str) -> dict[int, bool]:
    return dict(device(pdu).outlets)


def assert_network_switch_untouched() -> None:
    assert 1 not in switched(LAB2), f"lab2 outlet 1 was switched: {switched(LAB2)}"


def test_a_ci_runner_switches_its_own_outlets_and_nothing_else(lab: Lab) -> None:
    ci = lab.probe("ci-lab1")
    assert ci.request(f"pdu/{LAB1}/2/set", "ON")["status"] == "ok"
    assert ci.request("pdu/alias/rpi4-01/set", "ON")["status"] == "ok"
    assert switched(LAB1) == {2: True, 3: True}
    denied = [f"pdu/{LAB2}/{port}/set" for port in ("1", "01", "\u0661", "\uff11", "\U0001d7e3", "2")]
    denied += ["pdu/alias/core-switch/set", "pdu/bridge/state", f"pdu/{LAB1}/2/state"]
    publish_denied(lab, "ci-lab1", denied)  # the broker drops each: not granted
    publish_denied(lab, "viewer", [*denied, f"pdu/{LAB1}/1/set"])
    # the broker keeps each client's messages in order: once this is answered, the rest was seen
    assert ci.request(f"pdu/{LAB1}/2/set", "OFF")["status"] == "ok"
    print(f"\nci-lab1 and viewer: {2 * len(denied) + 1} publishes outside their grants, "
          f"outlets switched: lab1 {switched(LAB1)}, lab2 {switched(LAB2)}")
    assert switched(LAB2) == {} and switched(LAB1) == {2: False, 3: True}


# ASCII with leading zeros or spaces; Arabic-Indic, fullwidth, mathematical, Bengali digits
SPELLINGS = ["01", "001", "0001", " 1", "1 ", "1.0", "1\u200b", "\u0661", "\uff11", "\U0001d7e3", "\u09e7"]


def test_a_denied_outlet_cannot_be_reached_through_another_spelling(lab: Lab) -> None:
    """lab-user may switch every outlet but lab2/1 (denied in the ACL by its one topic)."""
    user = lab.probe("lab-user")
    refused = 0
    for spelling in SPELLINGS:
        ack = user.request(f"pdu/{LAB2}/{spelling}/set", "ON")
        assert ack["status"] == "error", (spelling, ack)
        assert f"its topic is pdu/{LAB2}/1/set" in ack["error"] or "unknown port" in ack["error"], ack
        refused += 1
    publish_denied(lab, "lab-user", [f"pdu/{LAB2}/1/set", "pdu/alias/core-switch/set"])
    ack = user.request(f"pdu/{LAB2}/2/set", "ON")  # what lab-user may do, it can
    assert ack["status"] == "ok" and switched(LAB2) == {2: True}
    print(f"\nlab-user: {refused} other spellings of lab2/1 refused by the daemon, 2 denied by the broker")
    assert_network_switch_untouched()


DEPUTY_TOPICS = [
    "pdu/bridge/state", "pdu/bridge/info", f"pdu/{LAB2}/1/state", f"pdu/{LAB2}/1/set", f"pdu/{LAB2}/1/ack",
    "pdu/alias/core-switch/set", "homeassistant/switch/lab2_1/config", "homeassistant/status",
    "zigbee2mqtt/plug/set", "other/thing/get", "elsewhere/reply", "$SYS/broker/x", "reply",
]


def test_a_response_topic_cannot_make_the_daemon_publish_for_a_client(lab: Lab) -> None:
    user = lab.probe("lab-user")
    admin = lab.probe("lab-admin")
    admin.subscribe("#")
    user.subscribe(f"pdu/{LAB2}/2/ack")
    start = len(admin.messages)
    for topic in DEPUTY_TOPICS:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topic
        props.CorrelationData = topic.encode()
        before = len(user.all(f"pdu/{LAB2}/2/ack"))
        user.publish(f"pdu/{LAB2}/2/set", "OFF", properties=props)
        ack = json.loads(user.wait_count(f"pdu/{LAB2}/2/ack", before + 1)[-1].payload)
        assert ack["status"] == "error" and "refused the response topic" in ack["error"], (topic, ack)
    assert user.request(f"pdu/{LAB2}/3/set", "ON")["status"] == "ok"  # and a good one works
    # what was published during the test (not the retained topics the subscription replayed)
    published = {m.topic for m in admin.messages[start:] if not m.retain and m.topic != f"pdu/{LAB2}/2/ack"}
    wrong = published & set(DEPUTY_TOPICS)
    print(f"\n{len(DEPUTY_TOPICS)} response topics tried; the daemon published on none of them: {sorted(wrong)}")
    assert not wrong
    assert 2 not in switched(LAB2) or switched(LAB2)[2] is True  # the refused OFFs never ran
    assert_network_switch_untouched()


def http_get(address: tuple[str, int], target: str, authorization: str | None = None) -> tuple[int, bytes]:
    head = f"GET {target} HTTP/1.1\r\nHost: pdu\r\n" + (f"Authorization: {authorization}\r\n" if authorization else "")
    reply = tcp_exchange(address, (head + "\r\n").encode())
    return int(reply.split(b" ")[1]), reply


def test_the_pdudaemon_listener_needs_credentials_and_keeps_clients_to_their_pdus(lab: Lab) -> None:
    address = lab.listener
    tcp_answers = {
        f"{LAB2} 1 on": b"nack\n",  # no token
        f"token=wrong-{LAVA_TOKEN} {LAB2} 1 on": b"nack\n",
        f"token={LAVA_TOKEN} {LAB2} 1 on": b"nack\n",  # lava may switch lab1 only
        f"token={ADMIN_PASSWORD} {LAB2} 1 on": b"nack\n",  # a password is for HTTP basic auth
        f"token={LAVA_TOKEN} {LAB1} 4 on": b"ack\n",
    }
    for line, answer in tcp_answers.items():
        assert tcp_exchange(address, line.encode()) == answer, line
    basic = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    wrong_basic = "Basic " + base64.b64encode(b"admin:guess").decode()
    http_answers = [
        (f"/power/control/on?hostname={LAB2}&port=1", None, 401),
        (f"/power/control/on?hostname={LAB2}&port=1", wrong_basic, 401),
        (f"/power/control/on?hostname={LAB2}&port=1", "Basic !!!", 401),
        (f"/power/control/on?hostname={LAB2}&port=1", f"Bearer {LAVA_TOKEN}", 403),
        ("/power/control/on?alias=core-switch", f"Bearer {LAVA_TOKEN}", 403),
        (f"/power/control/on?hostname={LAB1}&port=1", f"Bearer {LAVA_TOKEN}", 200),
        (f"/power/control/off?hostname={LAB2}&port=4", basic, 200),
    ]
    for target, authorization, status in http_answers:
        got, reply = http_get(address, target, authorization)
        assert got == status, (target, authorization, reply)
        if status == 401:
            assert b"WWW-Authenticate: Basic" in reply
    refused = sum(a != b"ack\n" for a in tcp_answers.values()) + sum(s != 200 for *_, s in http_answers)
    print(f"\nlistener: {len(tcp_answers) + len(http_answers)} requests, {refused} refused")
    assert switched(LAB1).get(1) is True and switched(LAB1).get(4) is True and switched(LAB2).get(4) is False
    assert_network_switch_untouched()


def test_pduclient_token(lab: Lab) -> None:
    import sys

    host, port = lab.listener
    base = [sys.executable, "-c", "from pdumqtt.pduclient import run; run()", "--daemon", f"{host}:{port}",
            "--hostname", LAB1, "--port", "1", "--command", "off"]
    for extra in ([], ["-H"]):
        refused = subprocess.run(base + extra, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 127, refused.stdout
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=30,
                              env={**os.environ, "PDUMQTT_PDUDAEMON_TOKEN": LAVA_TOKEN})
        assert done.returncode == 0, done.stdout
    assert switched(LAB1).get(1) is False


def test_labgrid_sends_basic_auth_from_netrc(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """labgrid's PDUDaemonDriver calls requests.get(url) with no auth: requests then takes the
    login for the host from ~/.netrc (or $NETRC)."""
    import requests

    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login admin password {ADMIN_PASSWORD}\n")
    netrc.chmod(0o600)
    host, port = lab.listener
    url = f"http://{host}:{port}/power/control/on?hostname={LAB1}&port=2"
    assert requests.get(url, timeout=20).status_code == 401
    monkeypatch.setenv("NETRC", str(netrc))
    assert requests.get(url, timeout=20).status_code == 200
    assert switched(LAB1).get(2) is True
    assert_network_switch_untouched()


def test_the_example_broker_conf_names_the_acl(tmp_path: Path) -> None:
    conf = (ROOT / "examples" / "mosquitto" / "broker.conf").read_text()
    assert "allow_anonymous false" in conf and "acl_file" in conf and "password_file" in conf
