"""Each PDUDaemon APC name walks its own model's menus; a wrong layout fails clearly; ports in hostname win.

The simulator offers every menu layout PDUDaemon encodes (``menu: ap7952`` ...); each
name is run against its own layout, and against a layout of another model, where it
must stop with what the screen showed and switch nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt import registry
from pdumqtt.drivers import DriverError
from pdumqtt.drivers.apc_telnet import ApcTelnet
from pdumqtt.drivers.telnet import pdudaemon_address
from pdumqtt.simulators.apc_telnet import ApcTelnetSimulator

#: every PDUDaemon menu name and the layout its walk was written for
NAMES = {"apc7952": "ap7952", "apc7921": "ap7952", "apc7900": "ap7900", "apc7920": "ap7900",
         "apc7932": "ap7932", "apc9210": "ap9210", "apc9218": "ap9218", "ap9218": "ap9218",
         "ap9606": "ap9218", "apc9606": "ap9218"}


@pytest.fixture
def apc() -> Iterator[Callable[..., ApcTelnetSimulator]]:
    made: list[ApcTelnetSimulator] = []

    def make(**options: Any) -> ApcTelnetSimulator:
        sim = ApcTelnetSimulator(options)
        made.append(sim)
        sim.start()
        return sim

    yield make
    for sim in made:
        sim.stop()


def named(name: str, options: dict[str, Any], timeout: float = 3.0) -> Any:
    cls = registry.load(name)
    return cls(vol.Schema(cls.options)(options), pdu="lab-apc", timeout=timeout)


def port_of(sim: ApcTelnetSimulator) -> int:
    return int(sim.address.rsplit(":", 1)[1])


@pytest.mark.parametrize(("name", "layout"), sorted(NAMES.items()))
def test_each_name_walks_its_own_layout(apc: Callable[..., ApcTelnetSimulator], name: str, layout: str) -> None:
    sim = apc(menu=layout, page_size=5)
    d = named(name, {"hostname": "127.0.0.1", "telnetport": port_of(sim)})
    d.set(6, True)
    assert sim.outlet(6) and d.get(6)
    d.set(6, False)
    assert not sim.outlet(6) and not d.get(6)
    assert d.found_layout == layout
    assert sim.logouts == sim.logins


def test_the_ap9218_names_take_the_outlet_control_configuration_variant(
        apc: Callable[..., ApcTelnetSimulator]) -> None:
    sim = apc(menu="ap9218-occ")
    d = named("apc9218", {"host": sim.address})
    d.set(2, True)
    assert sim.outlet(2)


@pytest.mark.parametrize("layout", ["ap7952", "ap7900", "ap7932", "ap9210", "ap9218", "ap9218-occ"])
def test_native_driver_finds_its_way_through_every_layout(apc: Callable[..., ApcTelnetSimulator],
                                                          layout: str) -> None:
    sim = apc(menu=layout, outlets=16, page_size=6)
    d = ApcTelnet(vol.Schema(ApcTelnet.options)({"host": sim.address, "keepalive": True}), pdu="x", timeout=3)
    d.set(16, True)
    d.set(3, True)
    d.set(3, False)
    assert sim.outlet(16) and not sim.outlet(3)
    assert d.get(16) and not d.get(3)
    assert sim.logins == 1  # back at the main menu after each call: one kept session serves them all
    d.close()


@pytest.mark.parametrize(("name", "layout", "why"), [
    ("apc7952", "ap7932", "outlet 1's screen has no 1- Control Outlet entry"),
    ("apc7932", "ap7952", "outlet 1's screen has no Immediate On entry"),
    ("apc7900", "ap7952", "the Device Manager menu has 1- Phase Management, 2- Outlet Management"),
    ("apc7952", "ap7900", "the Device Manager menu has 1- Phase Monitor/Configuration"),
    ("apc9210", "ap9218", "the main menu has no 1- Outlet Manager"),
    ("apc9218", "ap9210", "the main menu has 1- Outlet Manager"),
    ("apc9218", "ap7952", "the Device Manager menu has 1- Phase Management"),
    ("apc7920", "ap9218", "the Device Manager menu lists the outlets itself"),
    ("apc7932", "ap7900", "the Device Manager menu has 1- Phase Monitor/Configuration"),
    ("apc9210", "ap7952", "the main menu has no 1- Outlet Manager (1- Device Manager, 2- Network"),
])
def test_a_wrong_walk_fails_clearly_and_switches_nothing(apc: Callable[..., ApcTelnetSimulator], name: str,
                                                         layout: str, why: str) -> None:
    sim = apc(menu=layout)
    with pytest.raises(DriverError) as e:
        named(name, {"host": sim.address}).set(1, True)
    message = str(e.value)
    assert why in message, message
    assert f"{name} walks " in message and "menu: auto finds its way" in message
    assert not sim.outlet(1)


# --- addresses: a port written in the host wins ---------------------------------------------------------


@pytest.mark.parametrize("name", [*sorted(NAMES), "apc8959"])
@pytest.mark.parametrize("key", ["host", "hostname"])
def test_port_in_host_wins_over_the_telnetport_default(apc: Callable[..., ApcTelnetSimulator], name: str,
                                                       key: str) -> None:
    sim = apc(firmware="cli" if name == "apc8959" else "menu", menu=NAMES.get(name, "ap7952"))
    d = named(name, {key: f"127.0.0.1:{port_of(sim)}"})
    assert d.session.where == sim.address
    d.set(3, True)
    assert sim.outlet(3)


def test_pdu_name_as_host_with_telnetport(apc: Callable[..., ApcTelnetSimulator]) -> None:
    sim = apc()
    cls = registry.load("apc7952")
    d = cls(vol.Schema(cls.options)({"telnetport": port_of(sim)}), pdu="127.0.0.1", timeout=3)
    d.set(1, True)
    assert sim.outlet(1)


def test_pdudaemon_address_forms() -> None:
    assert pdudaemon_address({}, "pdu.lab", 23) == "pdu.lab:23"
    assert pdudaemon_address({"telnetport": 2323}, "pdu.lab", 23) == "pdu.lab:2323"
    assert pdudaemon_address({"hostname": "10.0.0.5:2323"}, "x", 23) == "10.0.0.5:2323"
    assert pdudaemon_address({"hostname": "10.0.0.5:2323", "telnetport": 2323}, "x", 23) == "10.0.0.5:2323"
    assert pdudaemon_address({"host": "fd00::5"}, "x", 1234) == "[fd00::5]:1234"
    assert pdudaemon_address({"host": "[fd00::5]:99"}, "x", 23) == "[fd00::5]:99"
    assert pdudaemon_address({"hostname": "10.0.0.5:2323", "telnetport": 23}, "x", 23) == "10.0.0.5:2323"
    with pytest.raises(DriverError, match=r"hostname '10\.0\.0\.5:2323' gives port 2323 but telnetport is 2424"):
        pdudaemon_address({"hostname": "10.0.0.5:2323", "telnetport": 2424}, "x", 23)
    with pytest.raises(DriverError, match="bad port"):
        pdudaemon_address({"host": "10.0.0.5:http"}, "x", 23)
    with pytest.raises(DriverError, match="no address"):
        pdudaemon_address({}, "", 23)


# --- through the daemon over MQTT, with PDUDaemon's names ----------------------------------------------


@pytest.mark.parametrize(("name", "layout"), [("apc7900", "ap7900"), ("apc9210", "ap9210"), ("apc7932", "ap7932"),
                                              ("apc9218", "ap9218-occ")])
def test_daemon_drives_each_walk(apc: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any, unique: str,
                                 name: str, layout: str) -> None:
    sim = apc(menu=layout, password="lab-pw", page_size=4)
    pdu = f"{unique}-{name}"
    daemon({"pdus": {pdu: {"driver": name, "hostname": sim.address, "password": "lab-pw", "ports": 8,
                           "retries": 0, "timeout": 3, "cycle_delay": 0.2}}})
    ack = probe.request(f"pdu/{pdu}/5/set", "ON")
    assert (ack["status"], ack["state"], ack["error"]) == ("ok", "ON", None) and sim.outlet(5)
    ack = probe.request(f"pdu/{pdu}/5/set", "CYCLE", timeout=15)
    assert (ack["status"], ack["state"]) == ("ok", "ON") and sim.outlet(5)
    ack = probe.request(f"pdu/{pdu}/5/set", "OFF")
    assert (ack["status"], ack["state"]) == ("ok", "OFF") and not sim.outlet(5)
    ack = probe.request(f"pdu/{pdu}/5/get")
    assert (ack["status"], ack["state"]) == ("ok", "OFF")


def test_daemon_wrong_walk_is_an_error_ack(apc: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any,
                                           unique: str) -> None:
    sim = apc(menu="ap7952")
    pdu = f"{unique}-wrong"
    daemon({"pdus": {pdu: {"driver": "apc9210", "host": sim.address, "ports": 8, "retries": 0, "timeout": 3}}})
    ack = probe.request(f"pdu/{pdu}/1/set", "ON")
    assert ack["status"] == "error" and "apc9210 walks 1- Outlet Manager" in ack["error"] and not sim.outlet(1)


def test_daemon_faults_offline_and_back_online(apc: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any,
                                               unique: str) -> None:
    sim = apc(menu="ap7900", password="lab-pw")
    pdu = f"{unique}-apc7920"
    daemon({"pdus": {pdu: {"driver": "apc7920", "hostname": "127.0.0.1", "telnetport": port_of(sim),
                           "password": "lab-pw", "ports": 2, "retries": 0, "timeout": 1.5, "poll_interval": 0.3}}})
    probe.subscribe(f"pdu/{pdu}/availability")
    probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online")

    def fault(break_it: Callable[[], None], mend: Callable[[], None], why: str) -> None:
        mark = len(probe.messages)
        break_it()
        ack = probe.request(f"pdu/{pdu}/1/set", "ON", timeout=10)
        assert ack["status"] == "error" and why in ack["error"], ack
        assert "lab-pw" not in ack["error"]
        probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"offline", start=mark)
        mark = len(probe.messages)
        mend()
        probe.wait_for(f"pdu/{pdu}/availability", lambda m: m.payload == b"online", timeout=10, start=mark)

    fault(lambda: sim.config.update(password="changed-pw"), lambda: sim.config.update(password="lab-pw"),
          "refused the login: wrong username or password")
    fault(lambda: sim.set_failure(wrong_prompt=True), lambda: sim.set_failure(wrong_prompt=False),
          "while waiting for the User Name prompt (it sent 'login:")
    fault(lambda: sim.set_failure(silent=True), lambda: sim.set_failure(silent=False), "no answer from")
    fault(sim.stop, sim.start, f"cannot connect to {sim.address}")
    assert not sim.outlet(1)
    ack = probe.request(f"pdu/{pdu}/1/set", "ON")
    assert ack["status"] == "ok" and sim.outlet(1)


# --- pdudaemon.conf: converted by migrate, then run --------------------------------------------------------


def test_migrate_converts_every_apc_name() -> None:
    from pdumqtt.pdudaemon_conf import convert

    names = [*NAMES, "apc8959"]
    result = convert({"daemon": {"hostname": "127.0.0.1", "port": 16421},
                      "pdus": {f"pdu-{n}.lab": {"driver": n, "telnetport": 2323, "username": "u", "password": "p",
                                                "retries": 3} for n in names}})
    assert not result.skipped
    pdus = result.config["pdus"]
    for n in names:
        pdu = pdus[f"pdu-{n}.lab"]
        assert (pdu["driver"], pdu["telnetport"], pdu["retries"]) == (n, 2323, 2)
        cls = registry.load(n)
        assert pdu["ports"] == (cls.fixed_ports or 48)
        d = cls(vol.Schema(cls.options)({k: v for k, v in pdu.items() if k in ("telnetport", "username", "password")}),
                pdu=f"pdu-{n}.lab")
        assert d.session.where == f"pdu-{n}.lab:2323"
        assert d.layout == NAMES.get(n)
    assert pdus["pdu-apc7900.lab"]["ports"] == 8 and pdus["pdu-apc7952.lab"]["ports"] == 24


def test_converted_pdudaemon_conf_runs(apc: Callable[..., ApcTelnetSimulator], daemon: Any, probe: Any,
                                       unique: str) -> None:
    from pdumqtt.pdudaemon_conf import convert

    walks = {"apc7952": "ap7952", "apc7900": "ap7900", "apc7932": "ap7932", "apc9210": "ap9210",
             "apc9218": "ap9218", "apc8959": "cli"}
    sims = {n: apc(outlets=48, **({"firmware": "cli"} if m == "cli" else {"menu": m})) for n, m in walks.items()}
    result = convert({"daemon": {"hostname": "127.0.0.1", "port": 16421, "listener": "http"},
                      "pdus": {f"{unique}-{n}": {"driver": n, "hostname": "127.0.0.1", "telnetport": port_of(s)}
                               for n, s in sims.items()}})
    assert not result.skipped
    result.config.pop("pdudaemon", None)  # no listener needed: the commands come over MQTT
    daemon(result.config)
    for n, sim in sims.items():
        ack = probe.request(f"pdu/{unique}-{n}/8/set", "ON")
        assert (ack["status"], ack["state"]) == ("ok", "ON") and sim.outlet(8), (n, ack)
