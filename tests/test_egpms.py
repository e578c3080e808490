"""EG-PMS-LAN driver against the EG-PMS-LAN simulator, direct and through the daemon.

The challenge/response and state encoding (checked against numbers from PDUDaemon's
encoding), a wrong password, failures; PDUDaemon's ``egpms``; a pdudaemon.conf converted and run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
from support import free_port

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.egpms import EgPMS, EgPmsLan, auth_response, decode, encode, password_bytes
from pdumqtt.pdudaemon_conf import convert
from pdumqtt.simulators.egpms import EgPmsSimulator


@pytest.fixture
def egpms() -> Iterator[EgPmsSimulator]:
    with EgPmsSimulator({"password": "secret"}) as sim:
        yield sim


def make(address: str, password: str = "secret", timeout: float = 3.0) -> EgPmsLan:
    return EgPmsLan(vol.Schema(EgPmsLan.options)({"host": address, "password": password}), pdu="eg", timeout=timeout)


def test_encoding_matches_pdudaemons() -> None:
    # computed once with PDUDaemon's egpms.py for challenge 12 ab 7f 03 and password "secret"
    key, challenge = password_bytes("secret"), bytes.fromhex("12ab7f03")
    assert key == b"secret  " and password_bytes("longer than 8") == b"longer t"
    assert auth_response(challenge, key).hex() == "9c57be21"
    assert [encode(v, challenge, key) for v in (1, 2, 4)] == [0x57, 0x58, 0x72]
    assert all(decode(encode(v, challenge, key), challenge, key) == v for v in range(256))


def test_switch_and_read(egpms: EgPmsSimulator) -> None:
    d = make(egpms.address)
    d.set(3, True)
    assert egpms.sockets == [False, False, True, False]
    assert egpms.commands == [[4, 4, 1, 4]]  # only socket 3 is told to switch
    assert d.get(3) is True and d.get(1) is False
    d.set(3, False)
    assert egpms.sockets[2] is False and egpms.logins == 4
    with pytest.raises(DriverError, match="has 4"):
        d.set(5, True)


def test_wrong_password(egpms: EgPmsSimulator) -> None:
    with pytest.raises(DriverError, match="closed the connection during the login: wrong password") as err:
        make(egpms.address, password="guess").set(1, True)
    assert "guess" not in str(err.value) and egpms.refused == 1 and egpms.sockets[0] is False
    with pytest.raises(vol.Invalid, match="8 bytes"):
        vol.Schema(EgPmsLan.options)({"host": "h", "password": "nine char"})


@pytest.mark.parametrize("failure, message", [
    ("silent", r"no answer from 127\.0\.0\.1:\d+ to the session start \(its challenge\) within 1 s"),
    ("garbage", "sent the state 0x55, expected"),
    ("drop", "closed the connection during the session start"),
])
def test_failures(egpms: EgPmsSimulator, failure: str, message: str) -> None:
    d = make(egpms.address, timeout=1.0)
    d.set(1, True)
    egpms.failure = failure
    with pytest.raises(DriverError, match=message):
        d.set(1, False)
    egpms.failure = None
    d.set(1, False)
    assert egpms.sockets[0] is False


def test_unreachable() -> None:
    with pytest.raises(DriverError, match=r"cannot connect to 127\.0\.0\.1:\d+: Connection refused"):
        make(f"127.0.0.1:{free_port()}").get(1)


# --- through the daemon ---------------------------------------------------------------


def test_daemon_on_off_cycle_get(daemon: Any, probe: Any, unique: str, egpms: EgPmsSimulator) -> None:
    daemon({"pdus": {unique: {"driver": "egpms_lan", "host": egpms.address, "password": "secret", "ports": 4,
                              "retries": 0, "timeout": 2, "cycle_delay": 0.1}}})
    for payload, state in (("ON", "ON"), ("OFF", "OFF"), ("CYCLE", "ON")):
        ack = probe.request(f"pdu/{unique}/4/set", payload)
        assert (ack["status"], ack["state"]) == ("ok", state), ack
    assert probe.request(f"pdu/{unique}/4/get")["state"] == "ON" and egpms.sockets[3] is True


def test_daemon_offline_and_back(daemon: Any, probe: Any, unique: str) -> None:
    sim = EgPmsSimulator({"password": "secret"})
    sim.start()
    port = sim.address.rsplit(":", 1)[1]
    try:
        daemon({"pdus": {unique: {"driver": "egpms_lan", "host": sim.address, "password": "secret", "ports": 4,
                                  "retries": 0, "timeout": 1, "poll_interval": 0.3}}})
        probe.subscribe(f"pdu/{unique}/availability")
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
        sim.failure = "garbage"
        ack = probe.request(f"pdu/{unique}/2/set", "ON")
        assert ack["status"] == "error" and "expected 0x1_ (on) or 0x2_ (off)" in ack["error"], ack
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline")
        sim.stop()
        assert "cannot connect" in probe.request(f"pdu/{unique}/2/set", "ON")["error"]
        mark = len(probe.messages)
        sim = EgPmsSimulator({"password": "secret", "listen": f"127.0.0.1:{port}"})
        sim.start()
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", timeout=15, start=mark)
        assert probe.request(f"pdu/{unique}/2/set", "ON")["status"] == "ok" and sim.sockets[1] is True
    finally:
        sim.stop()


def test_converted_pdudaemon_conf() -> None:
    result = convert({"daemon": {"hostname": "127.0.0.1", "port": 16421},
                      "pdus": {"eg-pms-lan": {"driver": "egpms", "ip": "192.0.2.7", "password": "1"}}})
    assert result.config["pdus"]["eg-pms-lan"] == {"driver": "egpms", "ports": 4, "ip": "192.0.2.7", "password": "1"}


def test_daemon_runs_an_unchanged_pdudaemon_conf(daemon: Any, probe: Any, unique: str,
                                                 egpms: EgPmsSimulator) -> None:
    daemon({"daemon": {"hostname": "127.0.0.1", "port": free_port(), "listener": "http"},
            "pdus": {unique: {"driver": "egpms", "ip": egpms.address, "password": "secret", "retries": 2}}})
    ack = probe.request(f"pdu/{unique}/2/set", "ON")
    assert (ack["status"], ack["state"]) == ("ok", "ON") and egpms.sockets[1] is True
    ack = probe.request(f"pdu/{unique}/2/get")
    assert (ack["status"], ack["state"]) == ("ok", "ON")


def test_pdudaemon_options_need_ip_and_password() -> None:
    with pytest.raises(vol.MultipleInvalid, match="required key not provided @ data\\['ip'\\]"):
        vol.Schema(EgPMS.options)({"password": "1"})
