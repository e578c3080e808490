"""Gude, NETIO (KSHELL) and Synaccess telnet drivers against their simulators, then through the daemon.

Direct tests cover each dialogue and each fault (nothing listening, refused login, wrong
prompt, silence past the timeout, dropped connection); the daemon tests use PDUDaemon's
names and options, a pdudaemon.conf converted by ``migrate``, and watch the PDU go
offline and come back online by itself.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
import yaml
from support import free_port

from pdumqtt import registry
from pdumqtt.drivers import DriverError
from pdumqtt.pdudaemon_conf import convert
from pdumqtt.simulators._aio import StreamSimulator

#: native driver, PDUDaemon name, simulator kind, PDUDaemon's telnetport default
KINDS = {
    "gude": ("gude_telnet", "gude1202", "gude_telnet"),
    "netio": ("netio_kshell", "netio4", "netio_kshell"),
    "synaccess": ("synaccess_telnet", "synnetbooter", "synaccess_telnet"),
}


@pytest.fixture
def sims() -> Iterator[Callable[..., Any]]:
    made: list[StreamSimulator] = []

    def make(kind: str, **options: Any) -> Any:
        sim = registry.load(KINDS[kind][2], registry.SIMULATOR_GROUP)(options)
        made.append(sim)
        sim.start()
        return sim

    yield make
    for sim in made:
        sim.stop()


def driver(name: str, options: dict[str, Any], timeout: float = 2.0, pdu: str = "lab") -> Any:
    cls = registry.load(name)
    return cls(vol.Schema(cls.options)(options), pdu=pdu, timeout=timeout)


def port_of(sim: Any) -> int:
    return int(sim.address.rsplit(":", 1)[1])


# --- each dialogue ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_native_driver_switches(sims: Callable[..., Any], kind: str) -> None:
    sim = sims(kind, outlets=4)
    d = driver(KINDS[kind][0], {"host": sim.address})
    d.set(3, True)
    assert sim.outlet(3) and not sim.outlet(2)
    d.set(3, False)
    assert not sim.outlet(3)
    d.ping()
    assert sim.logouts == sim.connections == 3  # a session per call, each ended with the device's logout


def test_netio_reads_the_output_state(sims: Callable[..., Any]) -> None:
    sim = sims("netio", initial="on")
    d = driver("netio_kshell", {"host": sim.address})
    assert d.get(2) is True
    d.set(2, False)
    assert d.get(2) is False and d.get(1) is True
    assert "login admin admin" in sim.lines and "port 2 0" in sim.lines and "port 2" in sim.lines


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("address", ["hostname+telnetport", "hostname", "host", "pdu name"])
def test_pdudaemon_names_and_addresses(sims: Callable[..., Any], kind: str, address: str) -> None:
    sim = sims(kind, username="lab", password="lab-pw") if kind != "gude" else sims(kind)
    login = {"username": "lab", "password": "lab-pw"} if kind != "gude" else {}
    options, pdu = {
        "hostname+telnetport": ({"hostname": "127.0.0.1", "telnetport": port_of(sim)}, "lab"),
        "hostname": ({"hostname": sim.address}, "lab"),
        "host": ({"host": sim.address}, "lab"),
        "pdu name": ({"telnetport": port_of(sim)}, "127.0.0.1"),
    }[address]
    d = driver(KINDS[kind][1], {**options, **login}, pdu=pdu)
    d.set(1, True)
    assert sim.outlet(1)


@pytest.mark.parametrize(("name", "port"), [("gude1202", 23), ("netio4", 1234), ("synnetbooter", 23)])
def test_pdudaemon_default_ports(name: str, port: int) -> None:
    assert driver(name, {"hostname": "pdu.lab"}).session.where == f"pdu.lab:{port}"
    assert driver(name, {}, pdu="pdu.lab").session.where == f"pdu.lab:{port}"


def test_device_refusals_are_quoted(sims: Callable[..., Any]) -> None:
    netio = sims("netio")
    with pytest.raises(DriverError, match="answered port 9 1 with '501 INVALID PARAMETR'"):
        driver("netio_kshell", {"host": netio.address}).set(9, True)
    syn = sims("synaccess")
    with pytest.raises(DriverError, match="answered pset 12 1 with 'Invalid command'"):
        driver("synaccess_telnet", {"host": syn.address}).set(12, True)
    gude = sims("gude")
    with pytest.raises(DriverError, match="answered port 7 state set 1 with 'Error: unknown command"):
        driver("gude_telnet", {"host": gude.address}).set(7, True)


# --- faults -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "why"), [
    ("netio", r"refused the login \('503 INVALID LOGIN'\): wrong username or password"),
    ("synaccess", r"refused the login \('Invalid User ID or Password'\): wrong username or password"),
    ("gude", r"asks for a login on its console; the gude1202 dialogue has none"),
])
def test_refused_login(sims: Callable[..., Any], kind: str, why: str) -> None:
    sim = sims(kind, password="s3cret-pw")
    guess = {"password": "guess-pw"} if kind != "gude" else {}
    with pytest.raises(DriverError, match=why) as e:
        driver(KINDS[kind][0], {"host": sim.address, **guess}).set(1, True)
    assert "guess-pw" not in str(e.value) and "s3cret-pw" not in str(e.value)
    assert not sim.outlet(1)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_wrong_prompt_times_out_saying_what_came(sims: Callable[..., Any], kind: str) -> None:
    sim = sims(kind, failure="garbage")
    with pytest.raises(DriverError, match=r"no answer from .* within 1 s while waiting for .*\(it sent 'BusyBox"):
        driver(KINDS[kind][0], {"host": sim.address}, timeout=1).set(1, True)
    assert not sim.outlet(1)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_silent_device_times_out(sims: Callable[..., Any], kind: str) -> None:
    sim = sims(kind, failure="silent")
    with pytest.raises(DriverError, match=r"no answer from .* within 1 s while waiting for .*\(it sent nothing\)"):
        driver(KINDS[kind][0], {"host": sim.address}, timeout=1).set(1, True)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_dropped_connection(sims: Callable[..., Any], kind: str) -> None:
    sim = sims(kind, failure="drop")
    with pytest.raises(DriverError, match="closed the connection while we waited for"):
        driver(KINDS[kind][0], {"host": sim.address}).set(1, True)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_nothing_listening(kind: str) -> None:
    with pytest.raises(DriverError, match=r"cannot connect to 127\.0\.0\.1:\d+: .*refused"):
        driver(KINDS[kind][0], {"host": f"127.0.0.1:{free_port()}"}).set(1, True)


# --- through the daemon, with PDUDaemon's names --------------------------------------------------------


def pdudaemon_entry(kind: str, sim: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"driver": KINDS[kind][1], "hostname": "127.0.0.1", "telnetport": port_of(sim)}
    if kind != "gude":
        entry.update(username="lab", password="lab-pw")
    return entry


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_daemon_faults_offline_and_back_online(sims: Callable[..., Any], daemon: Any, probe: Any, unique: str,
                                               kind: str) -> None:
    sim = sims(kind, outlets=4, **({"username": "lab", "password": "lab-pw"} if kind != "gude" else {}))
    pdu = f"{unique}-{kind}"
    daemon({"pdus": {pdu: {**pdudaemon_entry(kind, sim), "ports": 4, "retries": 0, "timeout": 1,
                           "poll_interval": 0.3, "cycle_delay": 0.2}}})
    probe.subscribe(f"pdu/{pdu}/availability")
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online")
    ack = probe.request(f"pdu/{pdu}/2/set", "ON")
    assert (ack["status"], ack["state"], ack["error"]) == ("ok", "ON", None) and sim.outlet(2)
    ack = probe.request(f"pdu/{pdu}/2/set", "CYCLE", timeout=10)
    assert (ack["status"], ack["state"]) == ("ok", "ON") and sim.outlet(2)
    ack = probe.request(f"pdu/{pdu}/2/get")
    assert (ack["status"], ack["state"]) == ("ok", "ON")

    faults = [("silent", "no answer from"), ("garbage", "(it sent 'BusyBox"), ("drop", "closed the connection")]
    for failure, why in faults:
        mark = len(probe.messages)
        sim.failure = failure
        ack = probe.request(f"pdu/{pdu}/3/set", "ON", timeout=10)
        assert ack["status"] == "error" and why in ack["error"] and sim.address in ack["error"], ack
        probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"offline", start=mark)
        mark = len(probe.messages)
        sim.failure = None
        probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online", timeout=10, start=mark)
    assert not sim.outlet(3)

    mark = len(probe.messages)
    sim.stop()  # unplugged
    ack = probe.request(f"pdu/{pdu}/1/set", "ON", timeout=10)
    assert ack["status"] == "error" and "cannot connect" in ack["error"]
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"offline", start=mark)
    mark = len(probe.messages)
    sim.start()
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online", timeout=10, start=mark)
    ack = probe.request(f"pdu/{pdu}/1/set", "ON")
    assert ack["status"] == "ok" and sim.outlet(1)


@pytest.mark.parametrize("kind", ["netio", "synaccess"])
def test_daemon_refused_login_is_an_error_ack(sims: Callable[..., Any], daemon: Any, probe: Any, unique: str,
                                              kind: str) -> None:
    sim = sims(kind, username="lab", password="right-pw")
    pdu = f"{unique}-{kind}"
    daemon({"pdus": {pdu: {**pdudaemon_entry(kind, sim), "password": "wrong-pw", "ports": 4, "retries": 0,
                           "timeout": 2}}})
    ack = probe.request(f"pdu/{pdu}/1/set", "ON")
    assert ack["status"] == "error" and "refused the login" in ack["error"] and "wrong-pw" not in ack["error"]
    probe.subscribe(f"pdu/{pdu}/availability")
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"offline")


def test_migrate_converts_and_the_converted_config_runs(sims: Callable[..., Any], daemon: Any, probe: Any,
                                                        unique: str) -> None:
    running = {kind: sims(kind, outlets=4, **({"username": "lab", "password": "lab-pw"} if kind != "gude" else {}))
               for kind in KINDS}
    conf = {"daemon": {"hostname": "127.0.0.1", "port": free_port(), "listener": "http"},
            "pdus": {f"{unique}-{kind}": {**pdudaemon_entry(kind, sim), "retries": 2}
                     for kind, sim in running.items()}}
    result = convert(conf)
    assert not result.skipped, result.skipped
    pdus = result.config["pdus"]
    assert pdus[f"{unique}-netio"]["driver"] == "netio4" and pdus[f"{unique}-netio"]["ports"] == 4
    assert pdus[f"{unique}-gude"]["driver"] == "gude1202" and pdus[f"{unique}-synaccess"]["driver"] == "synnetbooter"
    assert pdus[f"{unique}-synaccess"]["telnetport"] == port_of(running["synaccess"])
    assert pdus[f"{unique}-gude"]["retries"] == 1  # PDUDaemon counts the first try
    daemon(result.config)
    for kind, sim in running.items():
        ack = probe.request(f"pdu/{unique}-{kind}/4/set", "ON")
        assert (ack["status"], ack["state"]) == ("ok", "ON") and sim.outlet(4), (kind, ack)


def test_pdumqtt_sim_runs_them(tmp_path: Path) -> None:
    config = tmp_path / "sims.yaml"
    config.write_text(yaml.safe_dump({
        "gude": {"kind": "gude_telnet", "outlets": 2},
        "netio": {"kind": "netio_kshell", "password": "pw"},
        "syn": {"kind": "synaccess_telnet"},
        "ap9210": {"kind": "apc_telnet", "menu": "ap9210"},
    }))
    proc = subprocess.Popen([sys.executable, "-m", "pdumqtt", "sim", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    addresses: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # one line per simulator, then it serves until stopped
            name, _, rest = line.partition(":")
            if " at 127.0.0.1:" in rest:
                addresses[name.strip()] = rest.rsplit(" at ", 1)[1].strip()
            if len(addresses) == 4:
                break
        for name, driver_name, extra in [("gude", "gude_telnet", {}), ("netio", "netio_kshell", {"password": "pw"}),
                                         ("syn", "synaccess_telnet", {}), ("ap9210", "apc9210", {})]:
            driver(driver_name, {"host": addresses[name], **extra}, timeout=5).set(2, True)
        assert driver("netio_kshell", {"host": addresses["netio"], "password": "pw"}).get(2) is True
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


@pytest.mark.parametrize("kind", ["gude", "netio"])
def test_offline_pdu_is_probed_without_poll_interval(sims: Callable[..., Any], daemon: Any, probe: Any,
                                                     unique: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pdumqtt import runner

    monkeypatch.setattr(runner, "OFFLINE_PROBE_INTERVAL", 0.3)  # 30 s in service
    sim = sims(kind, outlets=4, **({"username": "lab", "password": "lab-pw"} if kind != "gude" else {}))
    pdu = f"{unique}-{kind}"
    daemon({"pdus": {pdu: {**pdudaemon_entry(kind, sim), "ports": 4, "retries": 0, "timeout": 1}}})
    probe.subscribe(f"pdu/{pdu}/availability")
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online")
    mark = len(probe.messages)
    sim.stop()
    assert probe.request(f"pdu/{pdu}/1/set", "ON")["status"] == "error"
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"offline", start=mark)
    mark = len(probe.messages)
    sim.start()
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online", timeout=10, start=mark)
