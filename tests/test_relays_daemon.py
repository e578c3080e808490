"""The relay drivers through the running daemon over MQTT, each against its simulator.

On, off, cycle and get per driver; a bad password; an unknown host key refused;
a TCP device gone and back; a serial device unplugged (pty closed) and plugged in again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncssh
from support import wait_until

from pdumqtt.simulators.acme import AcmeSimulator
from pdumqtt.simulators.devantech_ds import DevantechDsSimulator
from pdumqtt.simulators.devantech_eth import DevantechEthSimulator
from pdumqtt.simulators.devantech_usb import DevantechUsbSimulator
from pdumqtt.simulators.lcus_usb import LcusUsbSimulator
from pdumqtt.simulators.modbus_tcp import ModbusTcpSimulator
from pdumqtt.simulators.numato_usb import NumatoUsbSimulator


def pdu(driver: str, ports: int = 4, **options: Any) -> dict[str, Any]:
    return {"driver": driver, "ports": ports, "retries": 0, "timeout": 2, "cycle_delay": 0.2, **options}


def ok(ack: dict[str, Any], state: str) -> bool:
    return ack["status"] == "ok" and ack["state"] == state and ack["error"] is None


def on_off_cycle_get(probe: Any, name: str, port: int) -> None:
    base = f"pdu/{name}/{port}"
    assert ok(probe.request(f"{base}/set", "ON"), "ON")
    assert ok(probe.request(f"{base}/get"), "ON")
    assert ok(probe.request(f"{base}/set", "OFF"), "OFF")
    assert ok(probe.request(f"{base}/get"), "OFF")
    assert ok(probe.request(f"{base}/set", "CYCLE"), "ON")
    assert ok(probe.request(f"{base}/get"), "ON")


# --- Devantech ETH ---------------------------------------------------------------------


def test_eth_with_password(daemon, probe, unique):
    with DevantechEthSimulator({"board": "eth8020", "password": "pw"}) as sim:
        daemon({"pdus": {unique: pdu("devantech_eth", 20, host=sim.address, board="eth8020", password="pw")}})
        on_off_cycle_get(probe, unique, 17)
        assert sim.relays[16] is True
        assert sim.logouts >= sim.logins > 0


def test_eth_bad_password_gets_an_error_ack(daemon, probe, unique):
    with DevantechEthSimulator({"password": "right"}) as sim:
        daemon({"pdus": {unique: pdu("devantech_eth", host=sim.address, password="wrong")}})
        ack = probe.request(f"pdu/{unique}/1/set", "ON")
        assert ack["status"] == "error" and "refused the password" in ack["error"]
        assert "wrong" not in ack["error"] and sim.relays[0] is False
        probe.subscribe(f"pdu/{unique}/availability")
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"offline")


def test_eth_nc_board(daemon, probe, unique):
    with DevantechEthSimulator({"board": "eth002", "logic": "NC"}) as sim:
        daemon({"pdus": {unique: pdu("devantech_eth", 2, host=sim.address, board="eth002", logic="NC")}})
        assert ok(probe.request(f"pdu/{unique}/2/set", "OFF"), "OFF")
        assert sim.relays[1] is True and sim.outlet(2) is False
        assert ok(probe.request(f"pdu/{unique}/2/set", "ON"), "ON")
        assert sim.outlet(2) is True


def test_eth_gone_and_back(daemon, probe, unique):
    sim = DevantechEthSimulator({})
    sim.start()
    port = sim.address.rsplit(":", 1)[1]
    daemon({"pdus": {unique: pdu("devantech_eth", host=sim.address)}})
    assert ok(probe.request(f"pdu/{unique}/1/set", "ON"), "ON")
    sim.stop()
    ack = probe.request(f"pdu/{unique}/1/set", "OFF")
    assert ack["status"] == "error" and "cannot connect" in ack["error"]
    with DevantechEthSimulator({"listen": f"127.0.0.1:{port}"}) as again:
        assert ok(probe.request(f"pdu/{unique}/1/set", "ON"), "ON")
        assert again.relays[0] is True


def test_eth_pdudaemon_name_and_options(daemon, probe, unique):
    with DevantechEthSimulator({}) as sim:
        ip, port = sim.address.rsplit(":", 1)
        daemon({"pdus": {unique: pdu("devantech_eth008", 8, ip=ip, port=int(port))}})
        assert ok(probe.request(f"pdu/{unique}/8/set", "ON"), "ON")
        assert sim.relays[7] is True


# --- serial relays -------------------------------------------------------------------


def test_usbrly_on_off_cycle_get(daemon, probe, unique):
    with DevantechUsbSimulator({"module": "usb-rly02"}) as sim:
        daemon({"pdus": {unique: pdu("devantech_USB-RLY02", 2, device=sim.address)}})
        on_off_cycle_get(probe, unique, 2)
        assert sim.relays == [False, True]


def test_numato_on_off_cycle_get(daemon, probe, unique):
    with NumatoUsbSimulator({"relays": 16}) as sim:
        daemon({"pdus": {unique: pdu("numato_usb", 16, device=sim.address, relays=16)}})
        on_off_cycle_get(probe, unique, 11)
        assert sim.relays[10] is True


def test_lcus_on_off_cycle(daemon, probe, unique):
    with LcusUsbSimulator({"relays": 2}) as sim:
        daemon({"pdus": {unique: pdu("lcus_usb", 2, device=sim.address, relays=2)}})
        # The board cannot be read: get answers the state the daemon last confirmed.
        on_off_cycle_get(probe, unique, 2)
        wait_until(lambda: sim.relays[1], 5, "relay 2 on")


def test_serial_unplugged_and_plugged_in_again(daemon, probe, unique):
    with DevantechUsbSimulator({}) as rly, NumatoUsbSimulator({}) as numato:
        daemon({"pdus": {
            f"{unique}r": pdu("devantech_usb", 8, device=rly.address),
            f"{unique}n": pdu("NumatoUSB8", 8, device=numato.address),
        }})
        for name, sim in ((f"{unique}r", rly), (f"{unique}n", numato)):
            assert ok(probe.request(f"pdu/{name}/1/set", "ON"), "ON")
            sim.unplug()
            for payload in ("OFF", "OFF"):  # the open port fails, then the device is missing
                ack = probe.request(f"pdu/{name}/1/set", payload)
                assert ack["status"] == "error" and sim.address in ack["error"], ack
            sim.plug()
            assert ok(probe.request(f"pdu/{name}/1/set", "OFF"), "OFF")
            assert ok(probe.request(f"pdu/{name}/1/get"), "OFF")


# --- ACME ------------------------------------------------------------------------------


def known_hosts(tmp_path: Path, sim: AcmeSimulator) -> str:
    path = tmp_path / "known_hosts"
    path.write_text(sim.known_hosts_line())
    return str(path)


def test_acme_on_off_cycle_get(daemon, probe, unique, tmp_path):
    with AcmeSimulator({"password": "acme"}) as sim:
        daemon({"pdus": {unique: pdu("acme_ssh", 8, host=sim.address, password="acme",
                                     known_hosts=known_hosts(tmp_path, sim))}})
        on_off_cycle_get(probe, unique, 5)
        assert sim.log == ["dut-switch-on 5", "dut-switch-off 5", "dut-hard-reset 5"]
        assert sim.probes[4] is True


def test_acme_cycle_by_the_daemon_when_native_cycle_is_off(daemon, probe, unique, tmp_path):
    with AcmeSimulator({"password": "acme"}) as sim:
        daemon({"pdus": {unique: pdu("acme_ssh", 8, host=sim.address, password="acme", native_cycle=False,
                                     known_hosts=known_hosts(tmp_path, sim))}})
        assert ok(probe.request(f"pdu/{unique}/2/set", "CYCLE"), "ON")
        assert sim.log == ["dut-switch-off 2", "dut-switch-on 2"]


def test_acme_unknown_host_key_refused(daemon, probe, unique, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:22 {asyncssh.generate_private_key('ssh-ed25519').export_public_key().decode()}")
    with AcmeSimulator({"password": "acme"}) as sim:
        daemon({"pdus": {
            unique: pdu("acme_ssh", 8, host=sim.address, password="acme", known_hosts=str(other)),
            f"{unique}ok": pdu("acme", 8, host=sim.address, password="acme", known_hosts=str(other),
                               accept_unknown_host_key=True),
        }})
        ack = probe.request(f"pdu/{unique}/1/set", "ON")
        assert ack["status"] == "error" and "host key" in ack["error"]
        assert sim.log == []
        assert ok(probe.request(f"pdu/{unique}ok/1/set", "ON"), "ON")
        assert sim.log == ["dut-switch-on 1"]


def test_acme_bad_password(daemon, probe, unique, tmp_path):
    with AcmeSimulator({"password": "acme"}) as sim:
        daemon({"pdus": {unique: pdu("acme_ssh", 8, host=sim.address, password="nope",
                                     known_hosts=known_hosts(tmp_path, sim))}})
        ack = probe.request(f"pdu/{unique}/1/set", "ON")
        assert ack["status"] == "error" and "refused the login" in ack["error"] and "nope" not in ack["error"]


# --- Modbus TCP ------------------------------------------------------------------------


def test_modbus_on_off_cycle_get_and_gone_and_back(daemon, probe, unique):
    sim = ModbusTcpSimulator({"device_id": 7})
    sim.start()
    port = sim.address.rsplit(":", 1)[1]
    try:
        daemon({"pdus": {unique: pdu("modbus_tcp", 8, host=sim.address, device_id=7, coil_base=1)}})
        on_off_cycle_get(probe, unique, 3)
        assert sim.coils[3] is True
        sim.stop()
        ack = probe.request(f"pdu/{unique}/3/set", "OFF")
        assert ack["status"] == "error"
        sim = ModbusTcpSimulator({"device_id": 7, "listen": f"127.0.0.1:{port}"})
        sim.start()
        assert ok(probe.request(f"pdu/{unique}/3/set", "OFF"), "OFF")
        assert sim.coils[3] is False
    finally:
        sim.stop()


def test_modbustcp_pdudaemon_options(daemon, probe, unique):
    with ModbusTcpSimulator({"device_id": 2}) as sim:
        host, port = sim.address.rsplit(":", 1)
        daemon({"pdus": {unique: pdu("modbustcp", 4, host=host, port=int(port), unit=2)}})
        assert ok(probe.request(f"pdu/{unique}/4/set", "ON"), "ON")
        assert sim.coils[4] is True


# --- Devantech dS ----------------------------------------------------------------------


def test_ds_on_off_cycle_get_and_pdudaemon_name(daemon, probe, unique):
    with DevantechDsSimulator({"board": "ds378"}) as sim:
        ip, port = sim.address.rsplit(":", 1)
        daemon({"pdus": {
            unique: pdu("devantech_ds", 8, host=sim.address, board="ds378"),
            f"{unique}p": pdu("devantech_ds378", 8, ip=ip, port=int(port)),
        }})
        on_off_cycle_get(probe, unique, 6)
        assert ok(probe.request(f"pdu/{unique}p/7/set", "ON"), "ON")
        assert sim.relays[5] is True and sim.relays[6] is True
