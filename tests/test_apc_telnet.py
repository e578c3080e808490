"""The APC telnet driver against the telnet simulator (menu and CLI firmware), then through the daemon."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import voluptuous as vol
from conftest import free_port, wait_until
from support import assert_missing_outlet_spares_the_pdu, run_above_descriptor_1024

from pdumqtt.drivers import DriverError, NoSuchOutlet
from pdumqtt.drivers.apc_telnet import DO, ECHO, SGA, ApcTelnet
from pdumqtt.simulators.apc_telnet import ApcTelnetSimulator

FIRMWARES = ["menu", "cli"]


@pytest.fixture
def telnet_sim() -> Iterator[Callable[..., ApcTelnetSimulator]]:
    made: list[ApcTelnetSimulator] = []

    def make(**options: Any) -> ApcTelnetSimulator:
        sim = ApcTelnetSimulator(options)
        made.append(sim)
        sim.start()
        return sim

    yield make
    for sim in made:
        sim.stop()


def driver(timeout: float = 3.0, **options: Any) -> ApcTelnet:
    return ApcTelnet(vol.Schema(ApcTelnet.options)(options), pdu="test", timeout=timeout)


# --- driver against the simulator ---------------------------------------------------------------


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_switch_and_read_with_firmware_told_from_the_login(telnet_sim: Callable[..., ApcTelnetSimulator],
                                                           firmware: str) -> None:
    sim = telnet_sim(firmware=firmware)
    d = driver(host=sim.address)
    assert d.get(5) is False
    assert d.firmware == firmware
    d.set(5, True)
    assert sim.outlet(5) is True and d.get(5) is True
    d.set(5, False)
    assert sim.outlet(5) is False and d.get(5) is False
    # telnet negotiation answered, one session per call, each ended by a clean logout
    assert (DO, ECHO) in sim.negotiated and (DO, SGA) in sim.negotiated
    wait_until(lambda: sim.logouts == sim.logins == 5, 5, "every session to log out")


def test_a_session_on_a_descriptor_above_1023(telnet_sim: Callable[..., ApcTelnetSimulator]) -> None:
    """pexpect waited with select(), which cannot watch a descriptor above 1023 (a daemon with many
    PDUs has them): the session now waits with poll."""
    sim = telnet_sim(firmware="menu")
    said = run_above_descriptor_1024("""
        import voluptuous as vol
        from pdumqtt.drivers.apc_telnet import ApcTelnet
        driver = ApcTelnet(vol.Schema(ApcTelnet.options)({"host": sys.argv[1]}), pdu="test", timeout=5)
        driver.set(3, True)
        print(driver.get(3))
    """, sim.address)
    assert said.split() == ["True"] and sim.outlet(3) is True


@pytest.mark.parametrize("outlets", [8, 24])
def test_menu_outlet_list_pages(telnet_sim: Callable[..., ApcTelnetSimulator], outlets: int) -> None:
    sim = telnet_sim(firmware="menu", outlets=outlets, page_size=6)
    d = driver(host=sim.address, firmware="menu")
    d.set(outlets, True)
    assert sim.outlet(outlets) and d.get(outlets)
    assert not d.get(outlets - 1)
    with pytest.raises(NoSuchOutlet, match=f"lists no outlet {outlets + 1} \\(it has {outlets}\\)"):
        d.get(outlets + 1)
    with pytest.raises(NoSuchOutlet, match=f"lists no outlet {outlets + 1} \\(it has {outlets}\\)"):
        d.set(outlets + 1, True)


@pytest.mark.parametrize("outlets", [8, 24])
def test_ap92xx_menus_list_outlets_in_device_manager(telnet_sim: Callable[..., ApcTelnetSimulator],
                                                     outlets: int) -> None:
    sim = telnet_sim(firmware="menu", menu="ap92xx", outlets=outlets, page_size=5)
    d = driver(host=sim.address, keepalive=True)
    d.set(outlets, True)
    d.set(1, True)
    d.set(1, False)
    assert sim.outlet(outlets) and not sim.outlet(1)
    assert d.get(outlets) and not d.get(1)
    assert sim.logins == 1  # back at the main menu after each call, so one session serves them all


def test_cli_unknown_outlet_is_the_device_error(telnet_sim: Callable[..., ApcTelnetSimulator]) -> None:
    sim = telnet_sim(firmware="cli")
    # E102 to an outlet number is the AOS answer for an outlet out of range
    with pytest.raises(NoSuchOutlet, match="answered olOn with E102: Parameter Error: no outlet 9"):
        driver(host=sim.address).set(9, True)
    with pytest.raises(NoSuchOutlet, match="answered olStatus with E102: Parameter Error: no outlet 9"):
        driver(host=sim.address).get(9)


def test_configured_firmware_must_match(telnet_sim: Callable[..., ApcTelnetSimulator]) -> None:
    sim = telnet_sim(firmware="menu")
    with pytest.raises(DriverError, match="speaks the menu firmware dialogue, but firmware: cli"):
        driver(host=sim.address, firmware="cli").get(1)


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_wrong_password(telnet_sim: Callable[..., ApcTelnetSimulator], firmware: str) -> None:
    sim = telnet_sim(firmware=firmware, password="s3cret-pw")
    with pytest.raises(DriverError, match="refused the login: wrong username or password") as e:
        driver(host=sim.address, password="guess-pw").set(1, True)
    assert "guess-pw" not in str(e.value) and "s3cret-pw" not in str(e.value)
    assert not sim.outlet(1)
    driver(host=sim.address, password="s3cret-pw").set(1, True)
    assert sim.outlet(1)


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_dropped_mid_dialogue(telnet_sim: Callable[..., ApcTelnetSimulator], firmware: str) -> None:
    sim = telnet_sim(firmware=firmware, drop_after=2)  # hangs up at the first line after the login
    with pytest.raises(DriverError, match="closed the connection while we waited for"):
        driver(host=sim.address).set(1, True)


def test_silent_device_times_out(telnet_sim: Callable[..., ApcTelnetSimulator]) -> None:
    sim = telnet_sim(silent=True)
    with pytest.raises(DriverError, match=r"no answer from .* within 1 s while waiting for the User Name prompt"):
        driver(host=sim.address, timeout=1).get(1)


def test_slow_device_within_timeout(telnet_sim: Callable[..., ApcTelnetSimulator]) -> None:
    sim = telnet_sim(firmware="cli", delay=0.05)
    d = driver(host=sim.address, timeout=5)
    d.set(2, True)
    assert sim.outlet(2)


def test_nothing_listening(telnet_sim: Callable[..., ApcTelnetSimulator]) -> None:
    sim = telnet_sim()
    sim.stop()
    with pytest.raises(DriverError, match=r"cannot connect to .*refused"):
        driver(host=sim.address).get(1)


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_keepalive_reuses_one_session_and_reconnects(telnet_sim: Callable[..., ApcTelnetSimulator],
                                                      firmware: str) -> None:
    port_sim = telnet_sim(firmware=firmware)
    d = driver(host=port_sim.address, keepalive=True)
    d.set(1, True)
    d.set(2, True)
    assert d.get(1) and d.get(2)
    assert port_sim.logins == 1
    port_sim.stop()  # the device reboots: the kept session is dead
    port_sim.start()
    d.set(3, True)
    assert port_sim.outlet(3) and port_sim.logins == 2
    d.close()


# --- through the daemon over MQTT -------------------------------------------------------------------


def pdu_config(sim: ApcTelnetSimulator, **options: Any) -> dict[str, Any]:
    return {"driver": "apc_telnet", "host": sim.address, "ports": sim.config["outlets"], "retries": 1,
            "retry_delay": 0.1, "timeout": 3, "cycle_delay": 0.2, **options}


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_daemon_on_off_cycle_get(telnet_sim: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any,
                                 unique: str, firmware: str) -> None:
    sim = telnet_sim(firmware=firmware, page_size=5)
    pdu = f"{unique}-{firmware}"
    daemon({"pdus": {pdu: pdu_config(sim)}})
    ack = probe.request(f"pdu/{pdu}/7/set", "ON")
    assert (ack["status"], ack["state"], ack["error"]) == ("ok", "ON", None) and sim.outlet(7)
    ack = probe.request(f"pdu/{pdu}/7/set", "OFF")
    assert (ack["status"], ack["state"]) == ("ok", "OFF") and not sim.outlet(7)
    ack = probe.request(f"pdu/{pdu}/7/set", "CYCLE", timeout=15)
    assert (ack["status"], ack["state"]) == ("ok", "ON") and sim.outlet(7)
    ack = probe.request(f"pdu/{pdu}/7/get")
    assert (ack["status"], ack["state"]) == ("ok", "ON")


@pytest.mark.parametrize("outlets", [8, 24])
def test_daemon_outlet_layouts(telnet_sim: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any,
                               unique: str, outlets: int) -> None:
    sim = telnet_sim(firmware="menu", outlets=outlets, page_size=8)
    pdu = f"{unique}-m{outlets}"
    daemon({"pdus": {pdu: pdu_config(sim)}})
    ack = probe.request(f"pdu/{pdu}/{outlets}/set", "ON")
    assert ack["status"] == "ok" and sim.outlet(outlets)


@pytest.mark.parametrize("firmware", FIRMWARES)
def test_daemon_port_the_pdu_lacks_is_an_error_ack_and_the_pdu_stays_online(
        telnet_sim: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any, unique: str, firmware: str) -> None:
    sim = telnet_sim(firmware=firmware, outlets=8)
    pdu = f"{unique}-lacks-{firmware}"
    probe.subscribe(f"pdu/{pdu}/#")
    daemon({"pdus": {pdu: pdu_config(sim, ports=10, poll_interval=0.2)}})
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online")
    probe.wait_for(f"pdu/{pdu}/8/state")
    seen = sim.logins
    wait_until(lambda: sim.logins >= seen + 20, 20, "more probes")
    assert_missing_outlet_spares_the_pdu(probe, pdu, sim.outlet, 9, "no outlet 9")


def test_daemon_wrong_password_error_ack(telnet_sim: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any,
                                         unique: str) -> None:
    sim = telnet_sim(firmware="cli", password="right-one")
    pdu = f"{unique}-badpw"
    daemon({"pdus": {pdu: pdu_config(sim, password="wrong-one")}})
    ack = probe.request(f"pdu/{pdu}/1/set", "ON", timeout=15)
    assert ack["status"] == "error"
    assert "wrong username or password" in ack["error"] and "(after 2 tries)" in ack["error"]
    assert "wrong-one" not in ack["error"]


def test_daemon_dropped_session_error_ack(telnet_sim: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any,
                                          unique: str) -> None:
    sim = telnet_sim(firmware="menu", drop_after=3)
    pdu = f"{unique}-drop"
    daemon({"pdus": {pdu: pdu_config(sim)}})
    ack = probe.request(f"pdu/{pdu}/1/set", "ON", timeout=15)
    assert ack["status"] == "error" and "closed the connection" in ack["error"]
    sim.set_failure(drop_after=0)
    ack = probe.request(f"pdu/{pdu}/1/set", "ON")
    assert ack["status"] == "ok" and sim.outlet(1)


def test_daemon_offline_then_online_again(telnet_sim: Callable[..., ApcTelnetSimulator], daemon: Any,
                                          probe: Any, unique: str) -> None:
    sim = telnet_sim(firmware="cli")
    pdu = f"{unique}-gone"
    daemon({"pdus": {pdu: pdu_config(sim, timeout=1, poll_interval=0.3)}})
    probe.subscribe(f"pdu/{pdu}/availability")
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online")
    sim.stop()
    ack = probe.request(f"pdu/{pdu}/2/set", "ON", timeout=15)
    assert ack["status"] == "error" and "cannot connect" in ack["error"]
    mark = len(probe.messages)
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"offline")
    sim.start()
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online", timeout=15, start=mark)
    ack = probe.request(f"pdu/{pdu}/2/set", "ON")
    assert ack["status"] == "ok" and sim.outlet(2)


# --- PDUDaemon's driver names and options, unchanged --------------------------------------------------


@pytest.mark.parametrize(("name", "firmware", "menu"), [("apc7952", "menu", "ap79xx"), ("apc7921", "menu", "ap79xx"),
                                                        ("apc9218", "menu", "ap92xx"), ("ap9606", "menu", "ap92xx"),
                                                        ("apc8959", "cli", "ap79xx")])
def test_daemon_pdudaemon_apc_names(telnet_sim: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any,
                                    unique: str, name: str, firmware: str, menu: str) -> None:
    sim = telnet_sim(firmware=firmware, menu=menu, username="apc", password="lab-pw")
    port = int(sim.address.rsplit(":", 1)[1])
    pdu = f"{unique}-{name}"
    daemon({"pdus": {pdu: {"driver": name, "hostname": "127.0.0.1", "telnetport": port, "username": "apc",
                           "password": "lab-pw", "ports": 8, "retries": 1, "retry_delay": 0.1, "timeout": 3,
                           "cycle_delay": 0.2}}})
    ack = probe.request(f"pdu/{pdu}/4/set", "ON")
    assert (ack["status"], ack["state"], ack["error"]) == ("ok", "ON", None) and sim.outlet(4)
    ack = probe.request(f"pdu/{pdu}/4/set", "OFF")
    assert (ack["status"], ack["state"]) == ("ok", "OFF") and not sim.outlet(4)
    ack = probe.request(f"pdu/{pdu}/4/get")
    assert (ack["status"], ack["state"]) == ("ok", "OFF")


@pytest.mark.parametrize(("name", "firmware"), [("apc7952", "menu"), ("apc8959", "cli")])
def test_daemon_runs_an_unchanged_pdudaemon_conf_entry(telnet_sim: Callable[..., ApcTelnetSimulator], daemon: Any,
                                                       probe: Any, name: str, firmware: str) -> None:
    # PDUDaemon names the PDU after its host (so this name cannot be made unique per test:
    # the test reads acks only, never the retained state); only its telnet port is an option
    sim = telnet_sim(firmware=firmware, outlets=24)
    port = int(sim.address.rsplit(":", 1)[1])
    daemon({"daemon": {"hostname": "127.0.0.1", "port": free_port(), "listener": "http"},
            "pdus": {"127.0.0.1": {"driver": name, "telnetport": port, "retries": 2}}})
    ack = probe.request("pdu/127.0.0.1/24/set", "ON")
    assert (ack["status"], ack["state"]) == ("ok", "ON") and sim.outlet(24)
