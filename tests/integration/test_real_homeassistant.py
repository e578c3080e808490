"""Home Assistant core, the release the oldest supported one, against pdumqtt's discovery.

Home Assistant is started on loopback with a config dir of its own, onboarded and given the
MQTT integration through its own HTTP APIs (as its frontend would), pointed at this module's
mosquitto. pdumqtt runs in this process with sim PDUs, so the test can take a PDU away.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support import ROOT, Broker, Probe, accepts, free_port, wait_until

from integration.envs import installed
from pdumqtt.drivers.sim import device

PROGRAM = "homeassistant"
pytestmark = pytest.mark.integration

RACK, BENCH = "it-rack", "it-bench"  # PDU names of this module's own: sim devices are per name
CONFIG = {
    "mqtt": {"base_topic": "pdu"},
    "defaults": {"cycle_delay": 0.3, "retries": 0},
    "homeassistant": {"discovery": True},
    "pdus": {
        RACK: {"driver": "sim", "ports": 2, "poll_interval": 0.5, "meter_interval": 0.5, "load": 40},
        BENCH: {"driver": "sim", "ports": {"dut1": 1, "fan": 2}, "poll_interval": 0.5},
    },
    "aliases": {"board": {"pdu": BENCH, "port": "dut1"}},
}
# entity id -> device class: Home Assistant names them after the device and the entity name
ENTITIES = {
    "switch.it_rack_outlet_1": "outlet", "switch.it_rack_outlet_2": "outlet",
    "button.it_rack_outlet_1_restart": "restart", "button.it_rack_outlet_2_restart": "restart",
    "switch.it_bench_board": "outlet", "switch.it_bench_fan": "outlet",
    "button.it_bench_board_restart": "restart", "button.it_bench_fan_restart": "restart",
}
# the rack meters: a sensor per reading of each outlet and of the whole PDU ("Total ...")
SENSORS = {f"sensor.it_rack_{target}_{kind}": (kind, unit, "total_increasing" if kind == "energy" else "measurement")
           for target in ("outlet_1", "outlet_2", "total")
           for kind, unit in (("power", "W"), ("current", "A"), ("voltage", "V"), ("energy", "kWh"))}
HA_CONFIG = """homeassistant:
  name: pdumqtt-it
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: DE
http:
  server_host: 127.0.0.1
  server_port: {port}
logger:
  default: info
"""


class HomeAssistant:
    """A running hass and an authorised session on its REST API."""

    def __init__(self, url: str, log: Path, process: subprocess.Popen[bytes]) -> None:
        self.url, self.log, self.process = url, log, process
        self.session = requests.Session()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.session.request(method, self.url + path, timeout=30, **kwargs)
        assert reply.ok, f"{method} {path}: {reply.status_code} {reply.text[:500]}"
        return reply.json()

    def onboard(self) -> None:
        client_id = self.url + "/"
        user = self.call("POST", "/api/onboarding/users", json={
            "client_id": client_id, "name": "Test", "username": "test", "password": "pdumqtt-it-1",
            "language": "en"})
        token = self.call("POST", "/auth/token", data={
            "grant_type": "authorization_code", "code": user["auth_code"], "client_id": client_id})
        self.session.headers["Authorization"] = f"Bearer {token['access_token']}"

    def add_mqtt(self, broker: Broker) -> None:
        flow = self.call("POST", "/api/config/config_entries/flow", json={"handler": "mqtt"})
        assert flow["step_id"] == "broker", flow
        done = self.call("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                         json={"broker": broker.host, "port": broker.port})
        assert done["type"] == "create_entry", done

    def state(self, entity: str) -> dict[str, Any] | None:
        reply = self.session.get(f"{self.url}/api/states/{entity}", timeout=30)
        return reply.json() if reply.status_code == 200 else None

    def wait_state(self, entity: str, want: str, timeout: float = 20) -> dict[str, Any]:
        """Wait for ``entity`` to be in state ``want`` ("available": anything but unavailable)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(entity)
            if state and (state["state"] == want or (want == "available" and state["state"] != "unavailable")):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{entity} is {state and state['state']!r}, not {want!r}, after {timeout} s")
            time.sleep(0.1)  # polling HA's API with a deadline: it announces nothing we could wait on

    def service(self, domain: str, name: str, entity: str) -> None:
        self.call("POST", f"/api/services/{domain}/{name}", json={"entity_id": entity})

    def template(self, text: str) -> str:
        reply = self.session.post(f"{self.url}/api/template", json={"template": text}, timeout=30)
        assert reply.ok, reply.text
        return reply.text

    def problems(self) -> list[str]:
        """Warnings and errors in Home Assistant's log that concern MQTT."""
        return [line for line in self.log.read_text().splitlines()
                if re.search(r" (WARNING|ERROR|CRITICAL) ", line) and "mqtt" in line.lower()]


@pytest.fixture(scope="module")
def hass(own_broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomeAssistant]:
    env = installed(PROGRAM)
    config_dir = tmp_path_factory.mktemp("hass")
    port = free_port()
    (config_dir / "configuration.yaml").write_text(HA_CONFIG.format(port=port))
    log = config_dir / "home-assistant.log"
    # --skip-pip: everything it needs was installed with it; nothing is fetched at run time
    process = subprocess.Popen([str(env / "bin" / "hass"), "-c", str(config_dir), "--skip-pip",
                                "--log-file", str(log)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        def listening() -> bool:
            assert process.poll() is None, f"hass exited {process.returncode}: {log.read_text()[-3000:]}"
            return accepts(port)

        wait_until(listening, 90, "Home Assistant to listen")
        ha = HomeAssistant(f"http://127.0.0.1:{port}", log, process)
        ha.onboard()
        ha.add_mqtt(own_broker)
        yield ha
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def pdumqtt_for_ha(hass: HomeAssistant, own_broker: Broker) -> Iterator[dict[str, Any]]:
    """pdumqtt announcing two PDUs to Home Assistant; ``start``/``stop`` it again at will."""
    from pdumqtt.config import load_config_data
    from pdumqtt.daemon import Daemon

    for name in (RACK, BENCH):
        device(name).outlets.clear()
        device(name).reachable = True
    holder: dict[str, Any] = {}

    def start() -> None:
        d = Daemon(load_config_data(CONFIG), broker=(own_broker.host, own_broker.port))
        d.start()
        wait_until(d.connected.is_set, 10, "pdumqtt to connect")
        holder["daemon"] = d

    holder["start"], holder["stop"] = start, lambda: holder["daemon"].stop()
    start()
    yield holder
    holder["daemon"].stop()


def test_entities_appear_with_their_ids_and_device_classes(hass: HomeAssistant, pdumqtt_for_ha: Any) -> None:
    for entity, device_class in ENTITIES.items():
        state = hass.wait_state(entity, "off" if entity.startswith("switch.") else "unknown")
        assert state["attributes"]["device_class"] == device_class, state
    # one device per PDU, named after it, holding its outlets' switches and buttons
    assert hass.template("{{ device_attr(device_id('switch.it_rack_outlet_1'), 'name') }}") == RACK
    assert hass.template("{{ device_attr(device_id('switch.it_bench_fan'), 'model') }}") == "simulated PDU"
    rack = hass.template("{{ device_entities(device_id('switch.it_rack_outlet_1')) | sort | join(' ') }}")
    assert rack.split() == sorted([*(e for e in ENTITIES if "it_rack" in e), *SENSORS])


def test_readings_are_sensors_with_their_classes_and_units(hass: HomeAssistant, pdumqtt_for_ha: Any) -> None:
    for entity, (device_class, unit, state_class) in SENSORS.items():
        state = hass.wait_state(entity, "available")
        attributes = state["attributes"]
        assert (attributes["device_class"], attributes["unit_of_measurement"], attributes["state_class"]) == \
            (device_class, unit, state_class), state
    def reads(entity: str, wanted: float) -> None:
        deadline = time.monotonic() + 20
        while True:
            state = hass.state(entity)
            try:
                if state and float(state["state"]) == wanted:
                    return
            except ValueError:  # unknown, unavailable
                pass
            assert time.monotonic() < deadline, state
            time.sleep(0.1)  # polling HA's API with a deadline: it announces nothing we could wait on

    hass.service("switch", "turn_on", "switch.it_rack_outlet_2")
    try:
        reads("sensor.it_rack_outlet_2_power", 40)  # from the switch's answer, at once
        reads("sensor.it_rack_outlet_2_voltage", 230)
        reads("sensor.it_rack_total_power", 40 * (1 + device(RACK).outlets.get(1, False)))  # the next round
    finally:
        hass.service("switch", "turn_off", "switch.it_rack_outlet_2")
        hass.wait_state("switch.it_rack_outlet_2", "off")
    reads("sensor.it_rack_outlet_2_power", 0)


def test_switch_and_button_move_the_outlet(hass: HomeAssistant, pdumqtt_for_ha: Any, own_broker: Broker) -> None:
    probe = Probe(own_broker)
    try:
        probe.subscribe("pdu/it-rack/+/#")
        hass.wait_state("switch.it_rack_outlet_2", "off")
        hass.service("switch", "turn_on", "switch.it_rack_outlet_2")
        hass.wait_state("switch.it_rack_outlet_2", "on")
        assert device(RACK).outlets[2] is True
        hass.service("switch", "turn_off", "switch.it_rack_outlet_2")
        hass.wait_state("switch.it_rack_outlet_2", "off")
        assert device(RACK).outlets[2] is False
        hass.service("switch", "turn_on", "switch.it_bench_board")  # an aliased outlet: bench's dut1
        hass.wait_state("switch.it_bench_board", "on")
        assert device(BENCH).outlets[1] is True

        seen = len(probe.messages)
        hass.service("button", "press", "button.it_rack_outlet_1_restart")
        ack = probe.wait_for("pdu/it-rack/1/ack", start=seen)
        assert b'"action": "cycle"' in ack.payload and b'"status": "ok"' in ack.payload, ack.payload
        states = [m.payload for m in probe.messages[seen:] if m.topic == "pdu/it-rack/1/state"]
        assert states[-2:] == [b"OFF", b"ON"], states  # one cycle: off, then on again
        hass.wait_state("switch.it_rack_outlet_1", "on")
        assert device(RACK).outlets[1] is True
    finally:
        probe.close()


def test_availability_follows_each_pdu_and_the_daemon(hass: HomeAssistant, pdumqtt_for_ha: Any) -> None:
    hass.wait_state("switch.it_bench_fan", "off")
    device(BENCH).reachable = False  # the next poll fails: that PDU goes offline, the other stays
    hass.wait_state("switch.it_bench_fan", "unavailable")
    hass.wait_state("button.it_bench_fan_restart", "unavailable")
    assert hass.state("switch.it_rack_outlet_2")["state"] == "off"
    device(BENCH).reachable = True  # it answers again: back by itself
    hass.wait_state("switch.it_bench_fan", "off")

    pdumqtt_for_ha["stop"]()  # pdumqtt goes: bridge/state offline, every entity unavailable
    for entity in ("switch.it_rack_outlet_2", "switch.it_bench_fan", "button.it_rack_outlet_1_restart",
                   "sensor.it_rack_outlet_1_power"):
        hass.wait_state(entity, "unavailable")
    pdumqtt_for_ha["start"]()
    hass.wait_state("switch.it_rack_outlet_2", "off")
    hass.wait_state("button.it_rack_outlet_1_restart", "available")


def test_the_shipped_example_config_and_stale_entities_leaving(hass: HomeAssistant, pdumqtt_for_ha: Any,
                                                               own_broker: Broker) -> None:
    """examples/homeassistant/pdumqtt.yaml in place of the config above, under the same base
    topic: its PDUs appear, and the ones that left the config leave Home Assistant."""
    from pdumqtt.config import load_config
    from pdumqtt.daemon import Daemon

    pdumqtt_for_ha["stop"]()
    config = load_config(ROOT / "examples" / "homeassistant" / "pdumqtt.yaml")
    config.mqtt["client_id"] = "it-ha-example"
    example = Daemon(config, broker=(own_broker.host, own_broker.port))  # its broker: this module's
    example.start()
    try:
        for port in range(1, 9):
            label = "rpi4_01" if port == 3 else f"outlet_{port}"  # outlet 3 is named after its alias
            assert hass.wait_state(f"switch.lab_pdu1_{label}", "available")["attributes"]["device_class"] == "outlet"
            hass.wait_state(f"button.lab_pdu1_{label}_restart", "available")
        for name in ("dut1", "dut2", "fan", "light"):
            hass.wait_state(f"switch.bench_relays_{name}", "available")
        deadline = time.monotonic() + 20
        while any(hass.state(entity) for entity in [*ENTITIES, *SENSORS]):  # their configs were cleared: gone
            assert time.monotonic() < deadline, [e for e in [*ENTITIES, *SENSORS] if hass.state(e)]
            time.sleep(0.1)
        hass.service("switch", "turn_on", "switch.lab_pdu1_rpi4_01")
        hass.wait_state("switch.lab_pdu1_rpi4_01", "on")
        assert device("lab-pdu1").outlets[3] is True
    finally:
        example.stop()
        pdumqtt_for_ha["start"]()  # back as it was, for the test after


def test_no_mqtt_warning_or_error_in_home_assistants_log(hass: HomeAssistant, pdumqtt_for_ha: Any) -> None:
    hass.wait_state("switch.it_rack_outlet_1", "on")  # everything was discovered and has run
    assert hass.problems() == []
