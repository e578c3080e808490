"""The SNMP drivers against the snmpsim-based simulator: directly, then through the daemon over MQTT."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import voluptuous as vol
from conftest import wait_until
from support import assert_missing_outlet_spares_the_pdu

from pdumqtt import registry
from pdumqtt.drivers import Driver, DriverError, NoSuchOutlet
from pdumqtt.simulators.snmp import SnmpSimulator

V3 = {"v3_user": "labadmin", "v3_auth_key": "auth-secret-1", "v3_priv_key": "priv-secret-1"}

# simulated device -> (driver name, extra driver options)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "apc_spdu": ("apc_snmp", {}),
    "apc_msp": ("apc_snmp", {}),
    "apc_rpdu": ("apc_snmp", {}),
    "apc_rpdu2": ("apc_snmp", {}),
    "raritan": ("raritan_snmp", {}),
    "sentry3": ("servertech_snmp", {"generation": 3}),
    "sentry4": ("servertech_snmp", {"generation": 4}),
    "eaton": ("eaton_snmp", {}),
    "cyberpower": ("cyberpower_snmp", {}),
    "poe": ("poe_snmp", {}),
}


@pytest.fixture
def snmp_sim() -> Iterator[Callable[..., SnmpSimulator]]:
    made: list[SnmpSimulator] = []

    def make(**options: Any) -> SnmpSimulator:
        sim = SnmpSimulator({"reboot_time": 0.3, **options})
        made.append(sim)
        sim.start()
        return sim

    yield make
    for sim in made:
        sim.remove()


def driver(name: str, timeout: float = 2.0, **options: Any) -> Driver:
    cls = registry.load(name)
    return cls(vol.Schema(cls.options)(options), pdu="test", timeout=timeout)


# --- drivers against the simulator -----------------------------------------------------------------


@pytest.mark.parametrize("device", sorted(CASES))
def test_preset_switches_and_reads(snmp_sim: Callable[..., SnmpSimulator], device: str) -> None:
    sim = snmp_sim(device=device)
    name, extra = CASES[device]
    d = driver(name, host=sim.address, version="2c", **extra)
    try:
        assert d.get(3) is False
        d.set(3, True)
        assert sim.outlet(3) is True and d.get(3) is True
        assert sim.outlet(2) is False
        d.set(3, False)
        assert sim.outlet(3) is False and d.get(3) is False
    finally:
        d.close()


@pytest.mark.parametrize("family", ["apc_spdu", "apc_msp", "apc_rpdu", "apc_rpdu2"])
def test_apc_family_detected_from_sys_object_id_and_names_read(snmp_sim: Callable[..., SnmpSimulator],
                                                                family: str) -> None:
    sim = snmp_sim(device=family)
    d = driver("apc_snmp", host=sim.address)
    assert d.get(1) is False
    assert d.family == family.removeprefix("apc_")
    assert d.outlet_name(2) == "Outlet 2"


def test_apc_rpdu2_reversed_state_values(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2", initial="on")
    d = driver("apc_snmp", host=sim.address, family="rpdu2")
    assert d.get(5) is True  # the agent says 2, which is on in rPDU2's status column
    d.set(5, False)
    assert d.get(5) is False and sim.outlet(5) is False


def test_native_reboot_used_for_the_default_delay(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2", initial="on")
    d = driver("apc_snmp", host=sim.address, timeout=3)
    assert d.cycle(4, 5.0) is True
    assert sim.reboots(4) == 1
    assert d.get(4) is True
    assert d.cycle(4, 1.5) is False  # another delay: the runner does off, wait, on
    assert sim.reboots(4) == 1


def test_generic_driver_with_pdudaemon_star_template(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="cyberpower", outlets=4)
    d = driver("snmp", host=sim.address, version="1", control_oid="1.3.6.1.4.1.3808.1.1.3.3.3.1.1.4.*",
               state_oid=".1.3.6.1.4.1.3808.1.1.3.3.5.1.1.4.{outlet}", state_on=1, state_off=[2])
    assert d.can_read
    d.set(4, True)
    assert sim.outlet(4) and d.get(4)


def test_generic_driver_without_state_oid_cannot_read(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="poe")
    d = driver("snmp", host=sim.address, control_oid="1.3.6.1.2.1.105.1.1.1.3.1.{outlet}")
    assert not d.can_read
    d.set(1, True)
    assert sim.outlet(1)


def test_names_are_refused_as_oids() -> None:
    with pytest.raises(vol.Invalid, match="numeric OID"):
        driver("snmp", host="127.0.0.1", control_oid="PowerNet-MIB::sPDUOutletCtl.{outlet}")


@pytest.mark.parametrize("version", ["1", "2c"])
def test_missing_outlet_is_a_clear_error(snmp_sim: Callable[..., SnmpSimulator], version: str) -> None:
    # v1 answers noSuchName, v2c a NoSuchInstance value with no error: both must be caught
    sim = snmp_sim(device="apc_rpdu", outlets=8)
    d = driver("apc_snmp", host=sim.address, version=version)
    with pytest.raises(NoSuchOutlet, match=r"has no object .*\.9 \(no such outlet"):
        d.get(9)
    with pytest.raises(NoSuchOutlet, match="has no object"):
        d.set(9, True)


def test_refused_value_is_a_clear_error(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="cyberpower")
    d = driver("snmp", host=sim.address, version="2c", control_oid="1.3.6.1.4.1.3808.1.1.3.3.3.1.1.4.{outlet}",
               on_value=7)
    with pytest.raises(DriverError, match=r"refused value 7 .*wrongValue"):
        d.set(1, True)


def test_read_only_community_cannot_switch(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2", read_only_communities=["public"], communities=["private"])
    d = driver("apc_snmp", host=sim.address, version="2c", community="public")
    assert d.get(1) is False
    with pytest.raises(DriverError, match="read-only"):
        d.set(1, True)
    assert sim.outlet(1) is False


def test_read_community_used_for_reads(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2", read_only_communities=["public"], communities=["private"])
    d = driver("apc_snmp", host=sim.address, version="2c", community="private", read_community="public")
    d.set(2, True)
    assert d.get(2) is True


def test_wrong_community_times_out_with_a_hint(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2")
    d = driver("apc_snmp", host=sim.address, community="nope", timeout=1)
    started = time.monotonic()
    with pytest.raises(DriverError, match=r"no SNMP answer .*community"):
        d.get(1)
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize(("auth", "priv"), [("sha", "aes"), ("md5", "des"), ("sha256", "aes256"),
                                            ("sha512", "aes256-blumenthal"), ("sha", "aes192-blumenthal")])
def test_v3_auth_priv(snmp_sim: Callable[..., SnmpSimulator], auth: str, priv: str) -> None:
    agent_priv = priv.upper().replace("-BLUMENTHAL", "BLMT")  # snmpsim's name for the same protocol
    sim = snmp_sim(device="apc_rpdu2", **V3, v3_auth_protocol=auth.upper(), v3_priv_protocol=agent_priv)
    d = driver("apc_snmp", host=sim.address, version="3", user="labadmin", auth_key="auth-secret-1",
               priv_key="priv-secret-1", auth_protocol=auth, priv_protocol=priv)
    d.set(6, True)
    assert sim.outlet(6) and d.get(6)


def test_v3_failures_are_named(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2", **V3)
    base = {"host": sim.address, "version": "3", "priv_key": "priv-secret-1"}
    with pytest.raises(DriverError, match="authentication failed") as e:
        driver("apc_snmp", **base, user="labadmin", auth_key="wrong-secret").get(1)
    assert "wrong-secret" not in str(e.value)
    with pytest.raises(DriverError, match="does not know this user"):
        driver("apc_snmp", **base, user="intruder", auth_key="auth-secret-1").get(1)
    with pytest.raises(DriverError, match="needs 'user'"):
        driver("apc_snmp", host=sim.address, version="3").get(1)


def test_slow_agent_within_timeout(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2", delay=0.3)
    d = driver("apc_snmp", host=sim.address, timeout=3, snmp_retries=0)
    d.set(1, True)
    assert d.get(1) is True


def test_silent_agent_and_back(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2")
    d = driver("apc_snmp", host=sim.address, timeout=1)
    d.set(1, True)
    sim.set_failure(silent=True)
    with pytest.raises(DriverError, match="no SNMP answer") as silence:
        d.get(1)
    assert not isinstance(silence.value, NoSuchOutlet)  # silence says nothing about the outlet
    sim.set_failure(silent=False)
    d.timeout = 3  # room for a loaded test machine now that an answer is expected
    assert d.get(1) is True


def test_state_survives_an_agent_restart(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu")
    d = driver("apc_snmp", host=sim.address, timeout=1)
    d.set(7, True)
    sim.stop()
    with pytest.raises(DriverError):
        d.get(7)
    sim.start()
    d.timeout = 3
    assert d.get(7) is True


def test_drivers_used_from_many_threads_at_once(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    # one loop thread, one engine per driver: concurrent callers must not interfere
    sims = [snmp_sim(device="apc_rpdu2"), snmp_sim(device="raritan")]
    errors: list[BaseException] = []

    def work(sim: SnmpSimulator, name: str) -> None:
        d = driver(name, host=sim.address, timeout=3)
        try:
            for i in range(5):
                port = 1 + i % 4
                d.set(port, i % 2 == 0)
                assert d.get(port) is (i % 2 == 0)
            d.close()
            d.set(1, True)  # usable again after close
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(sim, name)) for sim, name in
               [(sims[0], "apc_snmp"), (sims[1], "raritan_snmp"), (sims[0], "apc_snmp")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


# --- through the daemon over MQTT --------------------------------------------------------------------


def pdu_config(sim: SnmpSimulator, driver_name: str, ports: int = 8, **options: Any) -> dict[str, Any]:
    return {"driver": driver_name, "host": sim.address, "ports": ports, "retries": 1, "retry_delay": 0.1,
            "timeout": 2, "cycle_delay": 0.3, **options}


@pytest.mark.parametrize("device", sorted(CASES))
def test_daemon_on_off_cycle_get(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any, unique: str,
                                 device: str) -> None:
    sim = snmp_sim(device=device)
    name, extra = CASES[device]
    pdu = f"{unique}-{device}"
    cfg = pdu_config(sim, name, **extra)
    if device != "poe":
        cfg["native_cycle_delay"] = 0.3  # the cycle_delay above: use the device's own reboot
    daemon({"pdus": {pdu: cfg}})
    ack = probe.request(f"pdu/{pdu}/2/set", "ON")
    assert (ack["status"], ack["state"], ack["error"]) == ("ok", "ON", None)
    assert sim.outlet(2)
    ack = probe.request(f"pdu/{pdu}/2/set", "OFF")
    assert (ack["status"], ack["state"]) == ("ok", "OFF") and not sim.outlet(2)
    ack = probe.request(f"pdu/{pdu}/2/get", "")
    assert (ack["status"], ack["state"]) == ("ok", "OFF")
    ack = probe.request(f"pdu/{pdu}/2/set", "CYCLE", timeout=15)
    assert (ack["status"], ack["state"], ack["error"]) == ("ok", "ON", None)
    assert sim.outlet(2)
    if device != "poe":  # PoE ports have no reboot: the runner does off, wait, on
        assert sim.reboots(2) == 1
    ack = probe.request(f"pdu/{pdu}/2/get", "")
    assert (ack["status"], ack["state"]) == ("ok", "ON")
    probe.subscribe(f"pdu/{pdu}/2/state")  # retained: the last confirmed state
    probe.wait_for(f"pdu/{pdu}/2/state", lambda m: m.payload == b"ON")


def test_daemon_cycle_with_another_delay_is_off_wait_on(snmp_sim: Callable[..., SnmpSimulator], daemon: Any,
                                                          probe: Any, unique: str) -> None:
    sim = snmp_sim(device="apc_rpdu2", initial="on")
    pdu = f"{unique}-apc"
    daemon({"pdus": {pdu: pdu_config(sim, "apc_snmp")}})
    probe.subscribe(f"pdu/{pdu}/3/state")
    ack = probe.request(f"pdu/{pdu}/3/set", json.dumps({"action": "cycle", "delay": 0.2}), timeout=15)
    assert (ack["status"], ack["state"]) == ("ok", "ON")
    assert sim.reboots(3) == 0
    states = [m.payload for m in probe.all(f"pdu/{pdu}/3/state")]
    assert b"OFF" in states and states[-1] == b"ON"


@pytest.mark.parametrize("ports", [8, 24])
def test_daemon_outlet_layouts(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any, unique: str,
                               ports: int) -> None:
    sim = snmp_sim(device="apc_rpdu2", outlets=ports)
    pdu = f"{unique}-apc{ports}"
    daemon({"pdus": {pdu: pdu_config(sim, "apc_snmp", ports=ports)}})
    ack = probe.request(f"pdu/{pdu}/{ports}/set", "ON")
    assert ack["status"] == "ok" and sim.outlet(ports)
    ack = probe.request(f"pdu/{pdu}/{ports + 1}/set", "ON")
    assert ack["status"] == "error"


@pytest.mark.parametrize("version", ["1", "2c", "3"])
def test_daemon_snmp_versions(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any, unique: str,
                              version: str) -> None:
    sim = snmp_sim(device="apc_rpdu", **V3)
    pdu = f"{unique}-v{version}"
    creds = ({"user": "labadmin", "auth_key": "auth-secret-1", "priv_key": "priv-secret-1"}
             if version == "3" else {"community": "private"})
    daemon({"pdus": {pdu: pdu_config(sim, "apc_snmp", version=version, **creds)}})
    ack = probe.request(f"pdu/{pdu}/1/set", "ON")
    assert (ack["status"], ack["state"]) == ("ok", "ON") and sim.outlet(1)


def test_daemon_wrong_community_gives_error_ack(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any,
                                                unique: str) -> None:
    sim = snmp_sim(device="apc_rpdu2")
    pdu = f"{unique}-badcomm"
    daemon({"pdus": {pdu: pdu_config(sim, "apc_snmp", community="wrong", timeout=1)}})
    ack = probe.request(f"pdu/{pdu}/1/set", "ON", timeout=15)
    assert ack["status"] == "error"
    assert "no SNMP answer" in ack["error"] and "community" in ack["error"] and "2 tries" in ack["error"]
    assert not sim.outlet(1)
    probe.subscribe(f"pdu/{pdu}/availability")
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"offline")


def test_daemon_wrong_v3_key_gives_error_ack(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any,
                                             unique: str) -> None:
    sim = snmp_sim(device="apc_rpdu2", **V3)
    pdu = f"{unique}-badkey"
    daemon({"pdus": {pdu: pdu_config(sim, "apc_snmp", version="3", user="labadmin", auth_key="not-the-key",
                                      priv_key="priv-secret-1")}})
    ack = probe.request(f"pdu/{pdu}/1/set", "ON", timeout=15)
    assert ack["status"] == "error" and "authentication failed" in ack["error"]
    assert "not-the-key" not in json.dumps(ack)


def test_daemon_offline_then_online_again(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any,
                                          unique: str) -> None:
    sim = snmp_sim(device="apc_rpdu2")
    pdu = f"{unique}-flaky"
    daemon({"pdus": {pdu: pdu_config(sim, "apc_snmp", timeout=1.5, poll_interval=0.5)}})
    probe.subscribe(f"pdu/{pdu}/availability")
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online")
    ack = probe.request(f"pdu/{pdu}/1/set", "ON")
    assert ack["status"] == "ok"
    sim.stop()
    ack = probe.request(f"pdu/{pdu}/1/set", "OFF", timeout=15)
    assert ack["status"] == "error" and "no SNMP answer" in ack["error"]
    mark = len(probe.messages)
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"offline")
    sim.start()
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online", timeout=15, start=mark)
    ack = probe.request(f"pdu/{pdu}/1/set", "OFF")
    assert (ack["status"], ack["state"]) == ("ok", "OFF")
    wait_until(lambda: not sim.outlet(1), 5, "the outlet to be off on the device")


@pytest.mark.parametrize("version", ["1", "2c"])
def test_daemon_port_the_agent_lacks_is_an_error_ack_and_the_pdu_stays_online(
        snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any, unique: str, version: str) -> None:
    sim = snmp_sim(device="apc_rpdu", outlets=8)
    pdu = f"{unique}-lacks-v{version}"
    probe.subscribe(f"pdu/{pdu}/#")
    daemon({"pdus": {pdu: pdu_config(sim, "apc_snmp", ports=10, version=version, poll_interval=0.3)}})
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online")
    probe.wait_for(f"pdu/{pdu}/8/state")
    # queued behind the probe that has read port 8, so it runs after the probe asked for 9 and 10
    assert_missing_outlet_spares_the_pdu(probe, pdu, sim.outlet, 9, "has no object")


def test_daemon_silent_agent_then_answers(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any,
                                         unique: str) -> None:
    sim = snmp_sim(device="eaton")
    pdu = f"{unique}-silent"
    daemon({"pdus": {pdu: pdu_config(sim, "eaton_snmp", timeout=1.5)}})
    sim.set_failure(silent=True)
    ack = probe.request(f"pdu/{pdu}/4/set", "ON", timeout=15)
    assert ack["status"] == "error" and "no SNMP answer" in ack["error"]
    sim.set_failure(silent=False)
    ack = probe.request(f"pdu/{pdu}/4/set", "ON")
    assert ack["status"] == "ok" and sim.outlet(4)


# --- PDUDaemon's driver names and options, unchanged --------------------------------------------------

RPDU2_BY_NAME = {"mib": "PowerNet-MIB", "controlpoint": "rPDU2OutletSwitchedControlCommand",
                 "onsetting": 1, "offsetting": 2}
PDUDAEMON_CASES = [
    ("snmpv1", "apc_rpdu2", {"community": "private", **RPDU2_BY_NAME}),
    ("snmpv1", "apc_spdu", {"community": "private", "oid": "1.3.6.1.4.1.318.1.1.4.4.2.1.3.*"}),
    ("snmpv3", "apc_rpdu", {"username": "labadmin", "authpassphrase": "auth-secret-1",
                            "privpassphrase": "priv-secret-1", "auth_protocol": "usmHMACSHAAuthProtocol",
                            "priv_protocol": "usmAesCfb128Protocol", "mib": "PowerNet-MIB",
                            "controlpoint": "rPDUOutletControlOutletCommand"}),
    ("snmpv1", "apc_msp", {"community": "private", "mib": "PowerNet-MIB", "inside_number": True,
                           "controlpoint": "sPDUOutletControlMSPOutletCommand.1.1.*", "onsetting": 1, "offsetting": 3}),
    ("snmpv3", "apc_rpdu", {"username": "labadmin", "authpassphrase": "auth-secret-1",
                            "privpassphrase": "priv-secret-1", "auth_protocol": "USM_AUTH_HMAC96_SHA",
                            "priv_protocol": "USM_PRIV_CFB128_AES", "oid": "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.*"}),
    ("cyberpower81001", "cyberpower", {}),
    ("cyberpower41001", "cyberpower", {"community": "private"}),
    ("ip9258", "ip9258", {}),
]


@pytest.mark.parametrize(("name", "device", "settings"), PDUDAEMON_CASES,
                         ids=[f"{n}-{d}-{i}" for i, (n, d, _) in enumerate(PDUDAEMON_CASES)])
def test_daemon_pdudaemon_snmp_names(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any, unique: str,
                                     name: str, device: str, settings: dict[str, Any]) -> None:
    extra = {**V3, "v3_auth_protocol": "SHA", "v3_priv_protocol": "AES"} if name == "snmpv3" else {}
    sim = snmp_sim(device=device, **extra)
    pdu = f"{unique}-{name}"
    daemon({"pdus": {pdu: {"driver": name, "hostname": sim.address, "ports": 8, "retries": 1, "retry_delay": 0.1,
                           "timeout": 2, "cycle_delay": 0.2, **settings}}})
    ack = probe.request(f"pdu/{pdu}/8/set", "ON")
    assert (ack["status"], ack["state"], ack["error"]) == ("ok", "ON", None) and sim.outlet(8)
    ack = probe.request(f"pdu/{pdu}/8/set", "OFF")
    assert (ack["status"], ack["state"]) == ("ok", "OFF") and not sim.outlet(8)
    ack = probe.request(f"pdu/{pdu}/8/set", "CYCLE", timeout=15)
    assert (ack["status"], ack["state"]) == ("ok", "ON") and sim.outlet(8)


def test_pdudaemon_snmp_unknown_mib_name_is_explained(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2")
    cls = registry.load("snmpv1")
    with pytest.raises(DriverError, match=r"not a MIB object we know by name .*numeric oid"):
        cls(vol.Schema(cls.options)({"hostname": sim.address, "mib": "FOO-MIB", "controlpoint": "fooCtl"}))


def test_daemon_shows_the_outlet_names_the_device_keeps(snmp_sim: Callable[..., SnmpSimulator], daemon: Any,
                                                         probe: Any, unique: str) -> None:
    sim = snmp_sim(device="apc_rpdu2")
    daemon({"pdus": {unique: pdu_config(sim, "apc_snmp", ports=3)}})
    probe.subscribe("pdu/bridge/info")
    message = probe.wait_for("pdu/bridge/info", lambda m: b"outlet_names" in m.payload and unique.encode() in m.payload,
                             timeout=20)
    info = json.loads(message.payload)["pdus"][unique]
    assert info["outlet_names"] == {"1": "Outlet 1", "2": "Outlet 2", "3": "Outlet 3"}


# --- fidelity to the devices' MIBs (drivers.md section 2, F2 to F6) -----------------------------------


def test_masterswitch_plus_needs_the_msp_table(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_msp")  # sysObjectID .318.1.3.4.4, only the MSP table
    d = driver("apc_snmp", host=sim.address)
    d.set(4, True)
    assert d.family == "msp" and sim.outlet(4) and d.get(4)
    d.set(4, False)  # immediateOffMSP is 3, not sPDU's 2
    assert not sim.outlet(4) and d.get(4) is False
    assert d.cycle(4, 5.0) is True and sim.reboots(4) == 1  # immediateRebootMSP(5)
    # what pdumqtt did before: the sPDU table for .4.4, which a MasterSwitch Plus has not
    with pytest.raises(DriverError, match=re.escape("has no object 1.3.6.1.4.1.318.1.1.4.4.2.1.3.4 ")):
        driver("apc_snmp", host=sim.address, family="spdu").set(4, True)
    with pytest.raises(DriverError, match=re.escape("has no object 1.3.6.1.4.1.318.1.1.6.5.1.1.5.2.1.4 ")):
        driver("apc_snmp", host=sim.address, unit=2).set(4, True)  # a second unit the chain lacks


def test_sentry3_outlets_spread_over_infeeds(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="sentry3", outlets=16)  # two infeeds of 8, as labgrid's CW-24VDD
    d = driver("servertech_snmp", host=sim.address, generation=3)
    d.set(9, True)
    assert sim.outlet(9) and d.get(9) and not sim.outlet(1)
    raw = driver("snmp", host=sim.address, control_oid="1.3.6.1.4.1.1718.3.2.3.1.11.{outlet}",
                 state_oid="1.3.6.1.4.1.1718.3.2.3.1.5.1.2.{outlet}", state_on=1, state_off=0)
    assert raw.get(1) is True  # outlet 9 is tower 1, infeed 2, outlet 1
    # what pdumqtt did before: tower 1, infeed 1, outlet 9, which does not exist
    with pytest.raises(DriverError, match=re.escape("has no object 1.3.6.1.4.1.1718.3.2.3.1.11.1.1.9 ")):
        driver("servertech_snmp", host=sim.address, generation=3, infeed=1).set(9, True)
    # infeed set: outlets count within it
    d2 = driver("servertech_snmp", host=sim.address, generation=3, infeed=2)
    d2.set(3, True)
    assert sim.outlet(11) and d2.get(3)


def test_sentry3_outlets_per_infeed_is_configurable(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="sentry3", outlets=12, outlets_per_infeed=4)
    d = driver("servertech_snmp", host=sim.address, generation=3, outlets_per_infeed=4)
    assert d.outlet_index(5) == "1.2.1" and d.outlet_index(12) == "1.3.4"
    d.set(12, True)
    assert sim.outlet(12) and d.get(12)


@pytest.mark.parametrize(("device", "name", "extra", "state_oid", "old_on", "old_off"), [
    ("eaton", "eaton_snmp", {}, "1.3.6.1.4.1.534.6.6.7.6.6.1.2.0.{outlet}", [1], [0]),
    ("sentry3", "servertech_snmp", {"generation": 3}, "1.3.6.1.4.1.1718.3.2.3.1.5.1.1.{outlet}",
     [1, 5, 9], [0, 4, 8]),
], ids=["eaton", "sentry3"])
def test_pending_states_read_as_where_they_head(snmp_sim: Callable[..., SnmpSimulator], device: str, name: str,
                                                extra: dict[str, Any], state_oid: str, old_on: list[int],
                                                old_off: list[int]) -> None:
    sim = snmp_sim(device=device, switch_delay=60)  # every switch waits a minute: no race with the test
    d = driver(name, host=sim.address, **extra)
    # the driver's state values before this change, on the same state column
    old = driver("snmp", host=sim.address, control_oid=state_oid, state_on=old_on, state_off=old_off)
    d.set(2, True)
    assert sim.pending(2) == "on" and not sim.outlet(2)  # pendingOn(3) / onWait(3)
    assert d.get(2) is True
    with pytest.raises(DriverError, match="reports state 3, which is neither on nor off"):
        old.get(2)
    sim.set_failure(switch_delay=0)
    d.set(5, True)
    assert sim.outlet(5) and d.get(5)
    sim.set_failure(switch_delay=60)
    d.set(5, False)
    assert sim.pending(5) == "off" and sim.outlet(5)  # pendingOff(2) / offWait(2)
    assert d.get(5) is False
    with pytest.raises(DriverError, match="reports state 2, which is neither on nor off"):
        old.get(5)


def test_daemon_reports_a_pending_switch_as_its_target(snmp_sim: Callable[..., SnmpSimulator], daemon: Any,
                                                       probe: Any, unique: str) -> None:
    sim = snmp_sim(device="eaton", switch_delay=60)
    daemon({"pdus": {unique: pdu_config(sim, "eaton_snmp")}})
    ack = probe.request(f"pdu/{unique}/6/set", "ON")
    assert (ack["status"], ack["state"], ack["error"]) == ("ok", "ON", None) and sim.pending(6) == "on"
    ack = probe.request(f"pdu/{unique}/6/get", "")
    assert (ack["status"], ack["state"]) == ("ok", "ON")


def test_daemon_sentry3_second_infeed(snmp_sim: Callable[..., SnmpSimulator], daemon: Any, probe: Any,
                                      unique: str) -> None:
    sim = snmp_sim(device="sentry3", outlets=16)
    daemon({"pdus": {unique: pdu_config(sim, "servertech_snmp", ports=16, generation=3)}})
    ack = probe.request(f"pdu/{unique}/14/set", "ON")
    assert (ack["status"], ack["state"], ack["error"]) == ("ok", "ON", None) and sim.outlet(14)
    ack = probe.request(f"pdu/{unique}/14/get", "")
    assert (ack["status"], ack["state"]) == ("ok", "ON")


def test_blumenthal_and_reeder_aes_are_different_protocols(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2", **V3, v3_auth_protocol="SHA", v3_priv_protocol="AES256BLMT")
    base = {"host": sim.address, "version": "3", "user": "labadmin", "auth_key": "auth-secret-1",
            "priv_key": "priv-secret-1", "family": "rpdu2"}
    assert driver("apc_snmp", **base, priv_protocol="aes256-blumenthal").get(1) is False
    with pytest.raises(DriverError, match=r"decryption failed|no SNMP answer"):
        driver("apc_snmp", timeout=1, **base, priv_protocol="aes256").get(1)


@pytest.mark.parametrize(("auth", "priv", "agent_auth", "agent_priv"), [
    ("USM_AUTH_HMAC96_SHA", "USM_PRIV_CFB128_AES", "SHA", "AES"),  # PDUDaemon's own test
    ("USM_AUTH_HMAC192_SHA256", "USM_PRIV_CFB256_AES_BLUMENTHAL", "SHA256", "AES256BLMT"),
    ("USM_AUTH_HMAC96_MD5", "USM_PRIV_CFB192_AES", "MD5", "AES192"),
    ("usmHMAC384SHA512AuthProtocol", "usmAesBlumenthalCfb192Protocol", "SHA512", "AES192BLMT"),
])
def test_pdudaemon_snmpv3_takes_pysnmp_protocol_names(snmp_sim: Callable[..., SnmpSimulator], auth: str, priv: str,
                                                      agent_auth: str, agent_priv: str) -> None:
    sim = snmp_sim(device="apc_rpdu", **V3, v3_auth_protocol=agent_auth, v3_priv_protocol=agent_priv)
    cls = registry.load("snmpv3")
    d = cls(vol.Schema(cls.options)({
        "hostname": sim.address, "username": "labadmin", "authpassphrase": "auth-secret-1",
        "privpassphrase": "priv-secret-1", "auth_protocol": auth, "priv_protocol": priv,
        "oid": "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.*"}), pdu="test", timeout=2)
    d.set(7, True)
    assert sim.outlet(7)


def test_pdudaemon_static_ending_only_with_inside_number() -> None:
    from pdumqtt.drivers.pdudaemon_names import _control_oid

    rpdu2 = {"mib": "PowerNet-MIB", "controlpoint": "rPDU2OutletSwitchedControlCommand", "static_ending": 0}
    # PDUDaemon: ObjectIdentity(mib, controlpoint, port): static_ending is not used here
    assert _control_oid(rpdu2) == "1.3.6.1.4.1.318.1.1.26.9.2.4.1.5.{outlet}"
    inside = {"mib": "PowerNet-MIB", "controlpoint": "sPDUOutletCtl.*", "inside_number": True, "static_ending": 7}
    assert _control_oid(inside) == "1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}.7"


def test_pdudaemon_static_ending_alone_switches_the_outlet(snmp_sim: Callable[..., SnmpSimulator]) -> None:
    sim = snmp_sim(device="apc_rpdu2")
    cls = registry.load("snmpv1")
    d = cls(vol.Schema(cls.options)({"hostname": sim.address, **RPDU2_BY_NAME, "static_ending": 0}),
            pdu="test", timeout=2)
    d.set(2, True)  # before: ...4.1.5.2.0, an object the agent has not
    assert sim.outlet(2)
