"""mFi mPower driver against the asyncssh mPower simulator, direct and through the daemon.

Relay files written and read back, host keys, logins, failures; PDUDaemon's names and
options; a pdudaemon.conf converted and run unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
from support import free_port

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.mfi import MfiSsh, Ubiquity3Port
from pdumqtt.pdudaemon_conf import convert
from pdumqtt.simulators.mfi import MfiSimulator


@pytest.fixture
def mfi() -> Iterator[MfiSimulator]:
    with MfiSimulator({"outlets": 3}) as sim:
        yield sim


def known_hosts(tmp_path: Path, sim: MfiSimulator) -> str:
    path = tmp_path / "known_hosts"
    path.write_text(sim.known_hosts_line())
    return str(path)


def make(sim: MfiSimulator, tmp_path: Path, timeout: float = 5.0, **options: Any) -> MfiSsh:
    config = vol.Schema(MfiSsh.options)({"host": sim.address, "password": "ubnt", "outlets": 3,
                                         "known_hosts": known_hosts(tmp_path, sim), **options})
    return MfiSsh(config, pdu="mfi", timeout=timeout)


def test_write_and_read_back(mfi: MfiSimulator, tmp_path: Path) -> None:
    d = make(mfi, tmp_path)
    try:
        d.set(2, True)
        assert mfi.relays == [False, True, False] and d.get(2) is True
        d.set(2, False)
        assert d.get(2) is False and mfi.relays[1] is False
        # PDUDaemon's exact write, then our read-back
        assert mfi.log[:2] == ["sh -c 'echo 1 > /proc/power/relay2'", "cat /proc/power/relay2"]
        assert mfi.logins == 1  # one connection for every call
        with pytest.raises(DriverError, match="has 3"):
            d.set(4, True)
    finally:
        d.close()


def test_unknown_host_key_and_bad_password(mfi: MfiSimulator, tmp_path: Path) -> None:
    d = make(mfi, tmp_path, known_hosts=str(tmp_path / "missing"))
    with pytest.raises(DriverError, match="does not exist"):
        d.set(1, True)
    d = make(mfi, tmp_path, password="not-ubnt")
    try:
        with pytest.raises(DriverError, match="refused the login of 'ubnt'") as err:
            d.set(1, True)
        assert "not-ubnt" not in str(err.value)
    finally:
        d.close()
    assert mfi.relays[0] is False


@pytest.mark.parametrize("failure, message", [
    ("silent", r"no answer from 127\.0\.0\.1:"),
    ("garbage", r"reads 'BusyBox.*expected 0 or 1"),
    ("drop", r"closed the connection|lost the connection"),
])
def test_failures(mfi: MfiSimulator, tmp_path: Path, failure: str, message: str) -> None:
    d = make(mfi, tmp_path, timeout=1.0)
    try:
        d.set(1, True)
        mfi.failure = failure
        with pytest.raises(DriverError, match=message):
            d.set(1, False)
        mfi.failure = None
        d.set(1, False)
        assert mfi.relays[0] is False
    finally:
        d.close()


def test_unreachable(tmp_path: Path) -> None:
    config = vol.Schema(MfiSsh.options)({"host": f"127.0.0.1:{free_port()}", "accept_unknown_host_key": True})
    d = MfiSsh(config, pdu="mfi", timeout=2)
    with pytest.raises(DriverError, match=r"cannot connect to 127\.0\.0\.1:"):
        d.get(1)
    d.close()


def test_pdudaemon_options(mfi: MfiSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PDUDaemon's defaults: ubnt/ubnt, ~/.ssh/known_hosts, verify_hostkey true."""
    monkeypatch.setenv("HOME", str(tmp_path))
    port = int(mfi.address.rsplit(":", 1)[1])
    options = vol.Schema(Ubiquity3Port.options)({"sshport": port})
    d = Ubiquity3Port(options, pdu="127.0.0.1", timeout=3)
    with pytest.raises(DriverError, match=r"host key|does not exist"):
        d.set(3, True)
    d.close()
    unverified = Ubiquity3Port(vol.Schema(Ubiquity3Port.options)({"sshport": port, "verify_hostkey": False}),
                               pdu="127.0.0.1", timeout=3)
    try:
        unverified.set(3, True)
        assert mfi.relays[2] is True
    finally:
        unverified.close()
    (tmp_path / ".ssh").mkdir()
    known_hosts(tmp_path / ".ssh", mfi)
    d = Ubiquity3Port(options, pdu="127.0.0.1", timeout=3)
    try:
        assert d.get(3) is True
    finally:
        d.close()


# --- through the daemon ---------------------------------------------------------------


def pdu(sim: MfiSimulator, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"driver": "mfi_ssh", "ports": 3, "outlets": 3, "host": sim.address, "password": "ubnt",
            "known_hosts": known_hosts(tmp_path, sim), "retries": 0, "timeout": 2, "cycle_delay": 0.1, **extra}


def test_daemon_on_off_cycle_get(daemon: Any, probe: Any, unique: str, mfi: MfiSimulator, tmp_path: Path) -> None:
    daemon({"pdus": {unique: pdu(mfi, tmp_path)}})
    for payload, state in (("ON", "ON"), ("OFF", "OFF"), ("CYCLE", "ON")):
        ack = probe.request(f"pdu/{unique}/3/set", payload)
        assert (ack["status"], ack["state"]) == ("ok", state), ack
    assert probe.request(f"pdu/{unique}/3/get")["state"] == "ON" and mfi.relays[2] is True


def test_daemon_refused_login_then_offline_and_back(daemon: Any, probe: Any, unique: str, tmp_path: Path) -> None:
    sim = MfiSimulator({"outlets": 3, "password": "changed"})
    sim.start()
    try:
        daemon({"pdus": {unique: pdu(sim, tmp_path, poll_interval=0.3)}})
        probe.subscribe(f"pdu/{unique}/availability")
        ack = probe.request(f"pdu/{unique}/1/set", "ON")
        assert ack["status"] == "error" and "refused the login" in ack["error"] and "ubnt" in ack["error"]
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline")
        port = sim.address.rsplit(":", 1)[1]
        key = sim.host_key
        sim.stop()
        mark = len(probe.messages)
        sim = MfiSimulator({"outlets": 3, "listen": f"127.0.0.1:{port}"})
        sim.host_key = key  # the same device, its password put back
        sim.start()
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", timeout=15, start=mark)
        assert probe.request(f"pdu/{unique}/1/set", "ON")["status"] == "ok" and sim.relays[0] is True
    finally:
        sim.stop()


@pytest.mark.parametrize(("name", "outlets"), [("ubntmfi3port", 3), ("ubntmfi6port", 6), ("ubntmfi8port", 8)])
def test_converted_pdudaemon_conf(name: str, outlets: int) -> None:
    result = convert({"daemon": {"hostname": "127.0.0.1", "port": 16421},
                      "pdus": {"mfi-lab.example": {"driver": name, "sshport": 2222, "verify_hostkey": False}}})
    assert result.config["pdus"]["mfi-lab.example"] == {"driver": name, "ports": outlets, "sshport": 2222,
                                                        "verify_hostkey": False}


def test_daemon_runs_an_unchanged_pdudaemon_conf(daemon: Any, probe: Any, mfi: MfiSimulator, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # PDUDaemon names the PDU after its host: acks only, never the retained state
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    known_hosts(tmp_path / ".ssh", mfi)
    port = int(mfi.address.rsplit(":", 1)[1])
    daemon({"daemon": {"hostname": "127.0.0.1", "port": free_port(), "listener": "http"},
            "pdus": {"127.0.0.1": {"driver": "ubntmfi3port", "sshport": port, "username": "ubnt",
                                   "password": "ubnt", "retries": 2}}})
    ack = probe.request("pdu/127.0.0.1/3/set", "ON")
    assert (ack["status"], ack["state"]) == ("ok", "ON") and mfi.relays[2] is True
    ack = probe.request("pdu/127.0.0.1/4/set", "ON")
    assert ack["status"] == "error" and "unknown port" in ack["error"]
