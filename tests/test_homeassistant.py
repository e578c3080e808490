"""Home Assistant MQTT discovery against the real broker: payloads, refresh, stale removal.

Each test uses its own discovery prefix, so retained configs never leak between tests.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from support import Probe

NODE = "pdumqtt_pdu"
# The keys of a per-entity switch config that Home Assistant 2024.3, the oldest release
# supported, accepts (tests/integration runs that release against these very configs)
HA_2024_3_KEYS = {"availability", "availability_mode", "command_topic", "device", "device_class", "name",
                  "optimistic", "origin", "payload_available", "payload_not_available", "payload_off",
                  "payload_on", "qos", "retain", "state_off", "state_on", "state_topic", "unique_id"}


def retained(broker: Any, pattern: str) -> dict[str, Any]:
    """The retained messages under ``pattern`` now, read with a fresh subscription."""
    reader = Probe(broker)
    try:
        reader.subscribe(pattern)
        marker = f"test/{uuid.uuid4().hex}/marker"
        reader.subscribe(marker)
        reader.publish(marker, b"x")
        reader.wait_for(marker)  # the broker sends the retained messages before this
        return {m.topic: json.loads(m.payload) for m in reader.all(pattern) if m.retain and m.payload}
    finally:
        reader.close()


def start(daemon: Any, unique: str, ports: Any = 2, device_based: bool = False, prefix: str | None = None) -> Any:
    d = daemon({
        "homeassistant": {"discovery": True, "prefix": prefix or f"{unique}-ha", "device_based": device_based},
        "pdus": {f"{unique}-pdu": {"driver": "sim", "ports": ports}},
        "aliases": {f"{unique}-board": {"pdu": f"{unique}-pdu", "port": "1"}},
    })
    assert d.discovery.synced.wait(10), "discovery never synced"
    return d


def test_switch_and_button_carry_the_documented_fields(daemon: Any, broker: Any, probe: Any, unique: str) -> None:
    start(daemon, unique)
    configs = retained(broker, f"{unique}-ha/#")
    pdu = f"{unique}-pdu"
    assert sorted(configs) == sorted(
        f"{unique}-ha/{kind}/{NODE}/{pdu}_{port}/config" for kind in ("switch", "button") for port in (1, 2))
    switch = configs[f"{unique}-ha/switch/{NODE}/{pdu}_2/config"]
    assert switch["device_class"] == "outlet"
    assert switch["command_topic"] == f"pdu/{pdu}/2/set" and switch["state_topic"] == f"pdu/{pdu}/2/state"
    assert (switch["payload_on"], switch["payload_off"]) == ("ON", "OFF")
    assert switch["name"] == "Outlet 2" and switch["unique_id"] == f"{NODE}_{pdu}_2_switch"
    assert switch["availability"] == [{"topic": "pdu/bridge/state"}, {"topic": f"pdu/{pdu}/availability"}]
    assert switch["availability_mode"] == "all"
    assert switch["device"]["identifiers"] == [f"{NODE}_{pdu}"] and switch["device"]["name"] == pdu
    assert switch["device"]["model"] == "simulated PDU"
    # Home Assistant before 2024.8 refuses a config with a key it does not know, so none of those
    assert set(switch["device"]) == {"identifiers", "name", "model"}
    assert set(switch) <= HA_2024_3_KEYS, set(switch) - HA_2024_3_KEYS
    assert switch["origin"]["name"] == "pdumqtt" and "sw_version" in switch["origin"]
    assert "object_id" not in switch and "platform" not in switch
    button = configs[f"{unique}-ha/button/{NODE}/{pdu}_1/config"]
    assert button["payload_press"] == "CYCLE" and button["device_class"] == "restart"
    assert button["name"] == f"{unique}-board restart"  # an aliased outlet is named after its alias
    assert button["device"] == switch["device"] and button["availability"] == switch["availability"]
    # the topics Home Assistant will use are ours: the switch switches, the button cycles
    assert probe.request(switch["command_topic"], switch["payload_on"])["state"] == "ON"
    ack = probe.request(button["command_topic"], button["payload_press"], timeout=20)
    assert ack["status"] == "ok" and ack["action"] == "cycle"


def test_sent_again_when_home_assistant_comes_online(daemon: Any, probe: Any, unique: str) -> None:
    start(daemon, unique)
    topic = f"{unique}-ha/switch/{NODE}/{unique}-pdu_1/config"
    probe.subscribe(topic)
    first = probe.wait_for(topic)
    seen = len(probe.messages)
    probe.publish(f"{unique}-ha/status", "online")
    again = probe.wait_for(topic, start=seen)
    assert json.loads(again.payload) == json.loads(first.payload)


def test_stale_outlets_and_pdus_are_removed(daemon: Any, broker: Any, unique: str) -> None:
    prefix = f"{unique}-ha"
    # left by someone else: another pdumqtt node and a hand-made entity, both must stay
    other = Probe(broker)
    other.publish(f"{prefix}/switch/pdumqtt_other/x_1/config", '{"name": "x"}', retain=True)
    other.publish(f"{prefix}/switch/handmade/config", '{"name": "y"}', retain=True)
    # an earlier run of ours had a PDU that has gone since
    other.publish(f"{prefix}/switch/{NODE}/{unique}-gone_1/config", '{"name": "gone"}', retain=True)
    other.close()

    first = start(daemon, unique, ports=3)
    assert f"{prefix}/button/{NODE}/{unique}-pdu_3/config" in retained(broker, f"{prefix}/#")
    first.stop()
    start(daemon, unique, ports=2)
    configs = retained(broker, f"{prefix}/#")
    assert f"{prefix}/switch/{NODE}/{unique}-pdu_3/config" not in configs
    assert f"{prefix}/button/{NODE}/{unique}-pdu_3/config" not in configs
    assert f"{prefix}/switch/{NODE}/{unique}-gone_1/config" not in configs
    assert f"{prefix}/switch/{NODE}/{unique}-pdu_2/config" in configs
    assert f"{prefix}/switch/pdumqtt_other/x_1/config" in configs
    assert f"{prefix}/switch/handmade/config" in configs


def test_device_based_discovery(daemon: Any, broker: Any, unique: str) -> None:
    prefix = f"{unique}-ha"
    pdu = f"{unique}-pdu"
    per_entity = start(daemon, unique, ports=3)
    per_entity.stop()
    start(daemon, unique, ports=3, device_based=True).stop()
    configs = retained(broker, f"{prefix}/#")
    topic = f"{prefix}/device/{NODE}/{pdu}/config"
    assert list(configs) == [topic]  # the per-entity configs of the first run are gone
    config = configs[topic]
    assert config["device"]["identifiers"] == [f"{NODE}_{pdu}"] and config["origin"]["name"] == "pdumqtt"
    assert config["device"]["model_id"] == "sim"  # device discovery needs 2024.11, which knows model_id
    assert config["availability_mode"] == "all" and len(config["availability"]) == 2
    components = config["components"]
    assert sorted(components) == sorted(f"{p}_{k}" for p in (1, 2, 3) for k in ("switch", "restart"))
    assert components["3_switch"]["platform"] == "switch" and components["3_switch"]["device_class"] == "outlet"
    assert components["3_restart"]["platform"] == "button" and components["3_restart"]["payload_press"] == "CYCLE"
    assert len({c["unique_id"] for c in components.values()}) == 6

    # outlet 3 leaves: its components are sent with only their platform, which removes them
    start(daemon, unique, ports=2, device_based=True).stop()
    components = retained(broker, topic)[topic]["components"]
    assert components["3_switch"] == {"platform": "switch"} and components["3_restart"] == {"platform": "button"}
    assert components["2_switch"]["device_class"] == "outlet"
    # and are left out the time after
    start(daemon, unique, ports=2, device_based=True)
    assert sorted(retained(broker, topic)[topic]["components"]) == ["1_restart", "1_switch", "2_restart", "2_switch"]


def test_names_outside_home_assistants_id_characters() -> None:
    from pdumqtt.config import load_config_data
    from pdumqtt.homeassistant import Discovery, safe_id

    assert safe_id("apc_1-a") == "apc_1-a"
    assert safe_id("lab.pdu") != safe_id("lab_pdu") and safe_id("lab.pdu").startswith("lab_pdu_")
    config = load_config_data({"homeassistant": {"discovery": True},
                               "pdus": {"lab.pdu": {"driver": "sim", "ports": {"a.b": 1, "a_b": 2}}}})

    class Client:
        def message_callback_add(self, *args: Any) -> None:
            pass

    topics = list(dict(Discovery(config, Client()).messages()))  # type: ignore[arg-type]
    assert len(topics) == len(set(topics)) == 4
    import re

    for topic in topics:
        assert re.fullmatch(r"homeassistant/(switch|button)/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config", topic), topic

    # "a_b" port "c" and "a" port "b_c" both read a_b_c: they must still differ
    config = load_config_data({"homeassistant": {"discovery": True},
                               "pdus": {"a_b": {"driver": "sim", "ports": ["c"]},
                                        "a": {"driver": "sim", "ports": ["b_c"]}}})
    messages = dict(Discovery(config, Client()).messages())  # type: ignore[arg-type]
    assert len(messages) == 4
    assert len({json.loads(m)["unique_id"] for m in messages.values()}) == 4


@pytest.mark.parametrize("payload", [b"offline", b""])
def test_other_status_payloads_are_ignored(daemon: Any, probe: Any, unique: str, payload: bytes) -> None:
    d = start(daemon, unique)
    probe.publish(f"{unique}-ha/status", payload)
    # the daemon still serves commands, and did not start a new scan
    assert probe.request(f"pdu/{unique}-pdu/1/set", "ON")["status"] == "ok"
    assert d.discovery.synced.is_set()


def test_discovery_over_mqtt_3_1_1(daemon: Any, broker: Any, unique: str) -> None:
    d = daemon({"mqtt": {"protocol": "3.1.1"},
                "homeassistant": {"discovery": True, "prefix": f"{unique}-ha"},
                "pdus": {f"{unique}-pdu": {"driver": "sim", "ports": 1}}})
    assert d.discovery.synced.wait(10)
    assert len(retained(broker, f"{unique}-ha/#")) == 2
