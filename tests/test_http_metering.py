"""Readings of the HTTP plugs against their simulators: Shelly PM (``apower``, ``voltage``,
``current``, ``aenergy.total``), Tasmota ``Status 8`` ENERGY, NETIO JSON ``Load``/``Current``/
``Energy``, and the PoE ports' ``consumption`` over ubus; through the daemon for one of them."""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import Driver
from pdumqtt.drivers.netio_json import NetioJson
from pdumqtt.drivers.openwrt_poe import OpenwrtPoe
from pdumqtt.drivers.shelly_rpc import ShellyRpc
from pdumqtt.drivers.tasmota import Tasmota
from pdumqtt.simulators.netio_json import NetioJsonSimulator
from pdumqtt.simulators.openwrt_poe import OpenwrtPoeSimulator
from pdumqtt.simulators.shelly_rpc import ShellyRpcSimulator
from pdumqtt.simulators.tasmota import TasmotaSimulator


def make(cls: type[Driver], **options: Any) -> Any:
    return cls(vol.Schema(cls.options)(options), pdu="plug", timeout=2.0)


def test_shelly_pm_reads_its_meter() -> None:
    with ShellyRpcSimulator({"switches": 2, "load": 60, "loads": {1: 8}}) as sim:
        d = make(ShellyRpc, host=sim.address)
        assert d.meter_outlet(1).values() == {"power": 0, "current": 0, "voltage": 230, "energy": 0}
        d.set(1, True)
        d.set(2, True)
        on = d.meter_outlet(1)
        assert on.power == 60 and on.current == pytest.approx(60 / 230, abs=1e-3) and on.voltage == 230
        assert d.meter_outlet(2).power == 8  # port 2 is switch id 1
        assert on.energy is not None and on.energy >= 0  # kWh, from aenergy.total in Wh
        assert sim.requests[-1].json()["method"] == "Switch.GetStatus"
    with ShellyRpcSimulator({"metered": False}) as sim:  # a Plus 1: no meter, the runner stops asking
        assert make(ShellyRpc, host=sim.address).meter_outlet(1) is None


def test_tasmota_status_8_energy() -> None:
    with TasmotaSimulator({"password": "webpw", "load": 40}) as sim:
        d = make(Tasmota, host=sim.address, password="webpw")
        d.set(1, True)
        outlet, total = d.meter_outlet(1), d.meter_pdu()
        assert outlet.power == 40 and outlet.voltage == 230 and outlet.current == pytest.approx(0.174, abs=1e-3)
        assert outlet.energy is not None and total.power == 40
        assert sim.requests[-1].query["cmnd"] == "Status 8" and sim.requests[-1].query["password"] == "webpw"
    with TasmotaSimulator({"relays": 2, "load": 40, "loads": {2: 10}}) as sim:  # per channel
        d = make(Tasmota, host=sim.address)
        d.set(1, True)
        d.set(2, True)
        assert d.meter_outlet(2).power == 10 and d.meter_outlet(1).power == 40
        assert d.meter_pdu().power == 50
    with TasmotaSimulator({"metered": False}) as sim:
        d = make(Tasmota, host=sim.address)
        assert d.meter_outlet(1) is None and d.meter_pdu() is None


def test_netio_outputs_and_global_measure_and_the_switch_answer() -> None:
    with NetioJsonSimulator({"outputs": 4, "load": 100, "loads": {3: 30}}) as sim:
        d = make(NetioJson, host=sim.address, username="admin", password="admin", auth="basic")
        answer = d.set(3, True)  # the POST's answer carries the output's meter: it goes into the ack
        assert answer is not None and answer.power == 30 and answer.voltage == 230
        d.set(1, True)
        outlet = d.meter_outlet(3)
        assert outlet.power == 30 and outlet.current == pytest.approx(0.13, abs=1e-3)  # mA on the wire
        total = d.meter_pdu()
        assert total.power == 130 and total.voltage == 230 and total.energy is not None
    with NetioJsonSimulator({"metered": False}) as sim:  # a NETIO 4: no Load
        d = make(NetioJson, host=sim.address, username="admin", password="admin", auth="basic")
        assert d.set(1, True) is None and d.meter_outlet(1) is None and d.meter_pdu() is None


def test_poe_port_consumption() -> None:
    with OpenwrtPoeSimulator({"ports": 4}) as sim:
        d = make(OpenwrtPoe, host=sim.address)
        assert d.meter_outlet(2).power == 0
        d.set(2, True)
        assert d.meter_outlet(2).power == pytest.approx(3.4)
        assert d.meter_pdu().power == pytest.approx(3.4)


def test_daemon_acks_the_netio_reading_and_publishes_it(daemon: Any, probe: Any, unique: str) -> None:
    with NetioJsonSimulator({"outputs": 2, "load": 75}) as sim:
        pdu = f"{unique}-netio"
        daemon({"pdus": {pdu: {"driver": "netio_json", "host": sim.address, "username": "admin",
                               "password": "admin", "auth": "basic", "ports": 2, "timeout": 2,
                               "meter_interval": 0.1}}})
        probe.subscribe(f"pdu/{pdu}/#")
        ack = probe.request(f"pdu/{pdu}/2/set", "ON")
        assert ack["status"] == "ok" and ack["readings"]["power"] == 75
        assert probe.wait_for(f"pdu/{pdu}/2/power", lambda m: m.payload == b"75")
        assert probe.wait_for(f"pdu/{pdu}/power", lambda m: m.payload == b"75")
        assert probe.wait_for(f"pdu/{pdu}/voltage").payload == b"230"


def test_kasa_emeter_per_socket_and_on_a_plug() -> None:
    from pdumqtt.drivers.tplink import Kasa
    from pdumqtt.simulators.tplink import KasaSimulator

    with KasaSimulator({"children": 3, "emeter": True, "load": 50}) as sim:  # an HS300
        d = make(Kasa, host=sim.address)
        d.set(2, True)
        assert d.meter_outlet(1).power == 0
        socket2 = d.meter_outlet(2)
        assert socket2.power == 50 and socket2.voltage == 230 and socket2.current == pytest.approx(0.217)
        assert socket2.energy is not None and socket2.energy >= 0
        assert sim.log[-1]["context"]["child_ids"] == [sim.child_id(1)]
    with KasaSimulator({"children": 0, "emeter": True, "load": 7}) as sim:  # an HS110
        d = make(Kasa, host=sim.address)
        d.set(1, True)
        assert d.meter_outlet(1).power == 7 and "context" not in sim.log[-1]
    with KasaSimulator({"children": 0}) as sim:  # an HS105: no meter, the runner stops asking
        assert make(Kasa, host=sim.address).meter_outlet(1) is None
