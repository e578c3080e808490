"""Every HTTP driver through the running daemon, by its PDUDaemon name and options.

One table, :data:`CASES`, holds a row per PDUDaemon name: its simulator and the options a
pdudaemon.conf would give it. Each row is run through the same checks: over MQTT (ack ok,
state read from the device, an error ack and ``offline`` on a device fault, ``online``
again by itself), converted by ``pdumqtt migrate``, and in one pdudaemon.conf run unchanged
by ``pdumqtt daemon`` and driven with PDUDaemon's own TCP request lines. Adding a driver
adds a row. labgrid's HTTP vendors have no PDUDaemon names: their rows, in
:data:`LABGRID_CASES`, run the MQTT checks by their pdumqtt names.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import accepts, free_port, wait_until

from pdumqtt import registry
from pdumqtt.simulators._http import HttpSimulator
from pdumqtt.simulators.anel import AnelSimulator
from pdumqtt.simulators.aten import AtenSimulator
from pdumqtt.simulators.aviosys import AviosysSimulator
from pdumqtt.simulators.dli import DliHttpSimulator, DliRestSimulator
from pdumqtt.simulators.energenie_lan import EnergenieSimulator
from pdumqtt.simulators.esphome import EsphomeSimulator
from pdumqtt.simulators.gude_http import GudeSimulator
from pdumqtt.simulators.homeassistant import HomeAssistantSimulator
from pdumqtt.simulators.intellinet import IntellinetSimulator
from pdumqtt.simulators.lindy_ipower import LindyIpowerSimulator
from pdumqtt.simulators.mfi_mpower import MfiMpowerSimulator
from pdumqtt.simulators.netio_cgi import NetioCgiSimulator
from pdumqtt.simulators.netio_json import NetioJsonSimulator
from pdumqtt.simulators.openwrt_poe import OpenwrtPoeSimulator
from pdumqtt.simulators.rest import RestSimulator, SimpleRestSimulator
from pdumqtt.simulators.sainsmart import SainsmartSimulator
from pdumqtt.simulators.servertech_pro2 import ServertechPro2Simulator
from pdumqtt.simulators.shelly_gen1 import ShellyGen1Simulator
from pdumqtt.simulators.shelly_rpc import ShellyRpcSimulator
from pdumqtt.simulators.tasmota import TasmotaSimulator
from pdumqtt.simulators.tinycontrol import TinycontrolSimulator, TinycontrolTcpduSimulator

SECRET = "Sup3r-s3cret"


@dataclass
class Case:
    driver: str  # PDUDaemon's name
    simulator_class: type[HttpSimulator]
    simulator_options: dict[str, Any]
    options: Callable[[HttpSimulator], dict[str, Any]]  # what pdudaemon.conf gives it
    port: int = 1  # the port PDUDaemon's requests name
    outlet: int = 1  # that outlet in the simulator's (the device's) numbering
    ports: int | dict[str, int] = 4  # ports of the pdumqtt PDU in the MQTT checks
    # PDUDaemon's driver reaches the device by the PDU's name: the MQTT checks give pdumqtt's
    # `hostname` instead; the pdudaemon.conf run names the PDU after a 127.x address on port 80
    by_name: bool = False

    def __str__(self) -> str:
        return self.driver

    def simulator(self, listen: str = "127.0.0.1:0") -> HttpSimulator:
        return self.simulator_class({**self.simulator_options, "listen": listen})


CASES = [
    Case("tasmota", TasmotaSimulator, {"relays": 2, "password": SECRET},
         lambda s: {"ip": s.address, "username": "admin", "password": SECRET, "port_count": 2}, 2, 2, 2),
    Case("sonoff_s20_tasmota", TasmotaSimulator, {}, lambda s: {"ip": s.address}, ports=1),
    Case("brennenstuhl_wspl01_tasmota", TasmotaSimulator, {"relays": 2, "password": SECRET},
         lambda s: {"ip": s.address, "username": "admin", "password": SECRET}, 2, 2, 2),
    Case("netiojson", NetioJsonSimulator, {"password": SECRET, "username": "netio"},
         lambda s: {"ip": "127.0.0.1", "port": int(s.address.split(":")[1]), "username": "netio", "password": SECRET,
                    "number_of_outputs": 4}, 3, 3),
    Case("ubus", OpenwrtPoeSimulator, {}, lambda s: {}, 4, 4, by_name=True),
    # a port named by its number is that object id, as PDUDaemon passes the port it is given
    Case("esphome-http", EsphomeSimulator, {"switches": ["1", "relay_2"], "password": SECRET},
         lambda s: {"port": int(s.address.split(":")[1]), "username": "admin", "password": SECRET}, 1, 1, 2,
         by_name=True),
    Case("home-assistant-http", HomeAssistantSimulator, {"entities": ["switch.1", "switch.2"], "token": SECRET},
         lambda s: {"port": int(s.address.split(":")[1]), "api_key": SECRET}, 2, 2, 2, by_name=True),
    Case("intellinet", IntellinetSimulator, {"password": SECRET},
         lambda s: {"port": int(s.address.split(":")[1]), "username": "admin", "password": SECRET}, 0, 0,
         2, by_name=True),
    Case("ip9850", AviosysSimulator, {"password": SECRET}, lambda s: {"username": "admin", "password": SECRET},
         3, 3, by_name=True),
    Case("LindyIPowerClassic8", LindyIpowerSimulator, {"username": "snmp", "password": SECRET},
         lambda s: {"port": int(s.address.split(":")[1]), "username": "snmp", "password": SECRET}, 6, 6, 8,
         by_name=True),
    Case("sainsmart", SainsmartSimulator, {}, lambda s: {"ip": s.address}, 7, 7, 8),
    Case("anel_netpwrctrlhome", AnelSimulator, {"outlets": 3, "password": SECRET},
         lambda s: {"password": SECRET}, 3, 3, 3, by_name=True),
    Case("anel_netpwrctrladv", AnelSimulator, {}, lambda s: {}, 8, 8, 8, by_name=True),
    Case("anel_netpwrctrlio", AnelSimulator, {}, lambda s: {"username": "admin"}, 1, 1, 8, by_name=True),
    Case("anel_netpwrctrlpro", AnelSimulator, {"username": "lab", "password": SECRET},
         lambda s: {"username": "lab", "password": SECRET}, 5, 5, 8, by_name=True),
    Case("servertechpro2", ServertechPro2Simulator, {"password": SECRET, "outlet_ids": ["1", "2"]},
         lambda s: {"ip": s.address, "protocol": "https", "insecure": True, "password": SECRET}, 2, 2, 2),
    Case("shelly_gen2", ShellyRpcSimulator, {"switches": 2}, lambda s: {}, 0, 0, 2, by_name=True),
]

# labgrid's HTTP vendors: no PDUDaemon names, so these run by their pdumqtt names, over MQTT only
LABGRID_CASES = [
    Case("shelly_gen1", ShellyGen1Simulator, {"relays": 2, "password": SECRET},
         lambda s: {"host": s.address, "password": SECRET}, 2, 1, 2),
    Case("rest", RestSimulator, {"password": SECRET},
         lambda s: {"url": f"http://admin:{SECRET}@{s.address}/outlet/{{index}}"}, 3, 3),
    Case("simple_rest", SimpleRestSimulator, {"password": SECRET},
         lambda s: {"url": f"http://{s.address}/relay/{{index}}/{{value}}", "password": SECRET}, 2, 2),
    Case("tinycontrol", TinycontrolSimulator, {"password": SECRET},
         lambda s: {"host": s.address, "password": SECRET}, 6, 5, 6),
    Case("tinycontrol_tcpdu", TinycontrolTcpduSimulator, {"password": SECRET},
         lambda s: {"host": s.address, "password": SECRET}, 7, 7, 7),
    Case("dli_http", DliHttpSimulator, {"password": SECRET, "cycle_delay": 0.1},
         lambda s: {"host": s.address, "password": SECRET}, 4, 4),
    Case("dli_rest", DliRestSimulator, {"password": SECRET, "cycle_delay": 0.1},
         lambda s: {"host": s.address, "password": SECRET}, 2, 1, 2),
    Case("gude_epc", GudeSimulator, {"model": "8031", "password": SECRET},
         lambda s: {"host": s.address, "password": SECRET, "read": "status.json"}, 5, 5, 8),
    Case("aten_pe", AtenSimulator, {"password": SECRET, "reboot_delay": 0.1},
         lambda s: {"host": s.address, "password": SECRET}, 16, 16, 16),
    Case("netio_cgi", NetioCgiSimulator, {"password": SECRET, "interrupt_delay": 0.1},
         lambda s: {"host": s.address, "password": SECRET}, 4, 4),
    Case("digipower", LindyIpowerSimulator, {"username": "snmp", "password": SECRET},
         lambda s: {"host": s.address, "password": SECRET}, 8, 8, 8),
    Case("energenie_lan", EnergenieSimulator, {"password": SECRET},
         lambda s: {"host": s.address, "password": SECRET}, 3, 3),
    Case("mfi_mpower", MfiMpowerSimulator, {"password": SECRET, "sensors": 3},
         lambda s: {"host": s.address, "password": SECRET}, 3, 3, 3),
]


def pdu(case: Case, sim: HttpSimulator, **extra: Any) -> dict[str, Any]:
    address = {"hostname": sim.address} if case.by_name else {}
    if case.by_name and "port" in case.options(sim):  # PDUDaemon's own port option
        address = {"hostname": sim.address.rsplit(":", 1)[0]}
    return {"driver": case.driver, "ports": case.ports, "retries": 0, "timeout": 1, "cycle_delay": 0.1,
            **address, **case.options(sim), **extra}


def ok(ack: dict[str, Any], state: str) -> bool:
    return ack["status"] == "ok" and ack["state"] == state and ack["error"] is None


@pytest.mark.parametrize("case", CASES + LABGRID_CASES, ids=str)
def test_over_mqtt_by_pdudaemon_name(case: Case, daemon: Any, probe: Any, unique: str,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cls = registry.load(case.driver)
    readable = cls.can_read or cls.has_ping()  # the runner probes the device without a command
    with case.simulator() as sim:
        probe.subscribe(f"pdu/{unique}/availability")
        probe.subscribe("pdu/bridge/info")
        daemon({"pdus": {unique: pdu(case, sim, **({"poll_interval": 0.2} if readable else {}))}})
        topic = f"pdu/{unique}/{case.port}"
        acks = [probe.request(f"{topic}/set", "ON")]
        assert ok(acks[-1], "ON"), acks[-1]
        assert sim.outlet(case.outlet) is True
        if cls.can_read:  # switched behind the daemon's back: get asks the device
            sim.outlets[case.outlet] = False
            acks.append(probe.request(f"{topic}/get"))
            assert ok(acks[-1], "OFF"), acks[-1]
        acks.append(probe.request(f"{topic}/set", "CYCLE"))
        assert ok(acks[-1], "ON")
        # a device's own reboot may switch back on after the ack: wait for it
        wait_until(lambda: sim.outlet(case.outlet), 5, "the outlet on again after the cycle")

        sim.set_failure("error")
        acks.append(probe.request(f"{topic}/set", "OFF"))
        assert acks[-1]["status"] == "error" and "HTTP 500" in acks[-1]["error"], acks[-1]
        assert sim.address in acks[-1]["error"]
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline")
        sim.set_failure("unauthorized")
        acks.append(probe.request(f"{topic}/set", "OFF"))
        assert acks[-1]["status"] == "error" and "401" in acks[-1]["error"], acks[-1]
        sim.set_failure(None)
        start = len(probe.messages)
        if readable:  # the runner's probe finds the device again, no command needed
            probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", start=start)
        acks.append(probe.request(f"{topic}/set", "OFF"))
        assert ok(acks[-1], "OFF") and sim.outlet(case.outlet) is False
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", start=start)
        info = probe.wait_for("pdu/bridge/info", lambda m: unique.encode() in m.payload).payload.decode()
        assert not sim.errors, sim.errors
    # no credential in an ack, bridge/info or any log line, at DEBUG
    assert SECRET not in json.dumps(acks) and SECRET not in info
    leaked = [r.getMessage() for r in caplog.records if SECRET in r.getMessage()]
    assert not leaked, leaked


def test_ports_named_after_device_entities(daemon: Any, probe: Any, unique: str) -> None:
    """The config's port names reach drivers that address outlets by name (ESPHome object ids)."""
    with EsphomeSimulator({"switches": ["relay_1", "relay_2"]}) as sim:
        daemon({"pdus": {unique: {"driver": "esphome", "host": sim.address, "ports": ["relay_1", "relay_2"],
                                  "retries": 0, "timeout": 1}}})
        assert ok(probe.request(f"pdu/{unique}/relay_2/set", "ON"), "ON")
        assert sim.switch("relay_2") is True and sim.requests[-1].path == "/switch/relay_2/turn_on"
        assert ok(probe.request(f"pdu/{unique}/1/get"), "OFF")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_migrate_keeps_the_name_and_options(case: Case) -> None:
    from pdumqtt.config import load_config_data
    from pdumqtt.pdudaemon_conf import convert

    with case.simulator() as sim:
        options = case.options(sim)
    name = "127.0.0.1" if case.by_name else "lab-plug"
    result = convert({"daemon": {"hostname": "127.0.0.1", "port": 16421},
                      "pdus": {name: {"driver": case.driver, **options}}})
    assert not result.skipped, result.skipped
    converted = result.config["pdus"][name]
    assert converted["driver"] == case.driver
    assert {k: v for k, v in converted.items() if k not in ("driver", "ports")} == options
    cls = registry.load(case.driver)
    fixed = cls.fixed_ports or options.get("port_count")
    if fixed:
        assert converted["ports"] == fixed
    pdus = load_config_data(result.config).pdus
    if cls.first_port == 0:  # PDUDaemon's port numbers, from 0: ports 0 to N-1
        assert pdus[name].resolve_port("0") == ("0", 0)


def _loopback_80(n: int) -> str | None:
    """A 127.x address on port 80 nobody uses, for drivers that reach the PDU by its name."""
    for i in range(50):
        host = f"127.{(os.getpid() >> 8) % 250 + 2}.{os.getpid() % 250 + 1}.{(n * 50 + i) % 250 + 2}"
        try:
            with socket.socket() as s:
                s.bind((host, 80))
            return host
        except PermissionError:
            return None
        except OSError:
            continue
    return None


@pytest.fixture
def fleet() -> Iterator[list[tuple[Case, HttpSimulator, str]]]:
    """Every case's simulator, and the PDU name a pdudaemon.conf gives it."""
    with ExitStack() as stack:
        out = []
        for n, case in enumerate(CASES):
            name = f"http-{n}-{case.driver.lower()}"
            if case.by_name:
                host = _loopback_80(n)
                if host is None:
                    continue  # binding port 80 needs root; the MQTT checks above still ran
                sim = stack.enter_context(case.simulator(f"{host}:80"))
                name = host
            else:
                sim = stack.enter_context(case.simulator())
            out.append((case, sim, name))
        yield out


def test_one_pdudaemon_conf_with_every_http_driver_runs_unchanged(fleet: Any, broker: Any, unique: str,
                                                                   tmp_path: Path) -> None:
    from test_pdudaemon import tcp

    if os.geteuid() == 0:  # as root (and in CI) every PDUDaemon name is in the run
        assert len(fleet) == len(CASES)
    port = free_port()
    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps({
        "daemon": {"hostname": "127.0.0.1", "port": port, "logging_level": "DEBUG", "listener": "tcp"},
        # retries 1: PDUDaemon counts every try; one, so that the fault is answered at once
        "pdus": {name: {"driver": case.driver, "retries": 1, **case.options(sim)} for case, sim, name in fleet},
    }, indent=4))
    proc = subprocess.Popen([sys.executable, "-m", "pdumqtt", "daemon", "-c", str(conf), "--broker", broker.address,
                             "--log-level", "debug"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PDUMQTT_CLIENT_ID": f"{unique}-daemon"})
    try:
        def listening() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            return accepts(port)

        wait_until(listening, 20, "the PDUDaemon listener")
        for case, sim, name in fleet:
            assert tcp(("127.0.0.1", port), f"{name} {case.port} on".encode()) == b"ack\n", case
            assert sim.outlet(case.outlet) is True, case
            assert tcp(("127.0.0.1", port), f"{name} {case.port} off".encode()) == b"ack\n", case
            assert sim.outlet(case.outlet) is False, case
            sim.set_failure("error")
            assert tcp(("127.0.0.1", port), f"{name} {case.port} on".encode()) == b"nack\n", case
            sim.set_failure(None)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, output
    assert SECRET not in output
    assert not [sim.errors for _, sim, _ in fleet if sim.errors]


def test_port_0_is_a_port_for_devices_that_count_from_0() -> None:
    from pdumqtt.config import ConfigError, load_config_data

    pdu = load_config_data({"pdus": {"shelly": {"driver": "shelly_gen2", "ports": 2}}}).pdus["shelly"]
    assert pdu.resolve_port("0") == ("0", 0)
    with pytest.raises(ConfigError, match="expected a number from 0"):
        load_config_data({"pdus": {"shelly": {"driver": "shelly_gen2", "ports": {"x": -1}}}})
    with pytest.raises(ConfigError, match="expected a number from 1"):  # the native driver counts from 1
        load_config_data({"pdus": {"shelly": {"driver": "shelly_rpc", "ports": {"0": 0}}}})
