"""Port counts of migrated PDUs whose PDUDaemon name leaves the count open, and the probe's way
with ports the device lacks (:class:`pdumqtt.drivers.NoSuchOutlet`): the PDU stays online.

Drivers run against their simulators (Kasa over TCP, a fake ``uhubctl`` on PATH, the Conrad
pty simulator); the V-USB board is the USB mock (tests/usb_mock.py), USB being what cannot be
simulated here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fake_tools
import pytest
import voluptuous as vol
from support import wait_until
from usb_mock import MockBus, MockVusbRelay

from pdumqtt import registry
from pdumqtt.drivers import NoSuchOutlet
from pdumqtt.pdudaemon_conf import DEFAULT_PORTS, convert, to_yaml
from pdumqtt.simulators.conrad197720 import ConradSimulator
from pdumqtt.simulators.tplink import KasaSimulator


def converted(driver: str, **options: Any) -> tuple[dict[str, Any], list[str]]:
    result = convert({"daemon": {}, "pdus": {"p": {"driver": driver, **options}}})
    assert "p" in result.config["pdus"], result.skipped
    return result.config["pdus"]["p"], result.pdu_notes["p"]


def make(name: str, pdu: str = "x", **options: Any) -> Any:
    cls = registry.load(name)
    return cls(vol.Schema(cls.options)(options), pdu=pdu, timeout=2)


@pytest.mark.parametrize(("driver", "options", "ports", "says"), [
    ("tplink", {}, 6, "HS300"),
    ("uhubctl", {"location": "1-1.4"}, 7, "uhubctl --location"),
    ("vusbhid", {"serial": "R2D2X"}, 8, "USBRelay8"),
    ("conrad197720", {"device": "/dev/ttyUSB1"}, 8, "ports 0 to 7"),
    ("netiojson", {}, 4, "default number_of_outputs"),
    ("netiojson", {"number_of_outputs": 8}, 8, "its number_of_outputs"),
])
def test_names_without_a_fixed_count_get_their_drivers_count(driver: str, options: dict[str, Any], ports: int,
                                                            says: str) -> None:
    pdu, notes = converted(driver, **options)
    assert pdu == {"driver": driver, "ports": ports, **options}
    assert notes[0].startswith(f"ports: {ports}, ") and says in notes[0]
    assert ports != DEFAULT_PORTS


def test_the_comment_says_why_and_fits_a_line() -> None:
    result = convert({"daemon": {}, "pdus": {"strip": {"driver": "tplink"}}})
    text = to_yaml(result, "pdudaemon.conf")
    comments = [line for line in text.splitlines() if line.startswith("  #")]
    assert comments[0].startswith("  # ports: 6, as many as an HS300") and all(len(c) <= 100 for c in comments)


@pytest.mark.parametrize(("driver", "options"), [
    ("uhubctl", {"location": "1-1.4"}),
    ("tplink", {}),
    ("devantech_eth008", {"ip": "127.0.0.1"}),
    ("localcmdline", {"cmd_on": "on %s", "cmd_off": "off %s"}),
])
@pytest.mark.parametrize("count", [4, "4"])
def test_port_count_is_the_pdus_port_count_not_a_driver_option(driver: str, options: dict[str, Any],
                                                               count: Any) -> None:
    pdu, notes = converted(driver, port_count=count, **options)
    assert pdu["ports"] == 4 and "port_count" not in pdu and notes[0] == "ports: 4, from its port_count"
    assert not any("port_count" in note for note in notes[1:])


def test_tasmota_keeps_port_count_as_its_option() -> None:
    pdu, _ = converted("tasmota", ip="127.0.0.1", port_count=3)
    assert pdu["ports"] == 3 and pdu["port_count"] == 3


def test_aliases_still_raise_the_count() -> None:
    result = convert({"daemon": {}, "pdus": {"hub": {"driver": "uhubctl", "location": "1-1"}},
                      "aliases": {"far": {"hostname": "hub", "port": 9}}})
    assert result.config["pdus"]["hub"]["ports"] == 9


def test_a_bad_port_count_falls_back_to_the_drivers_count() -> None:
    pdu, notes = converted("uhubctl", location="1-1", port_count="many")
    assert pdu["ports"] == 7 and "port_count" not in pdu
    assert "port_count 'many' left out: expected a whole number from 1" in notes


# --- drivers say an outlet is missing ---------------------------------------------------------


def test_kasa_strip_lacks_outlet_4() -> None:
    with KasaSimulator({"children": 3}) as sim:
        with pytest.raises(NoSuchOutlet, match=r"outlet 4 does not exist: .* has 3"):
            make("tplink", host=sim.address).get(4)


def test_uhubctl_port_past_the_hub_is_missing_not_switched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # uhubctl itself prints the hub's header, no port line, switches nothing, and exits 0
    state = fake_tools.install(tmp_path / "bin", {"hubs": {"1-1.4": [True] * 4}, "boards": {}})
    for key, value in fake_tools.environment(tmp_path / "bin", state).items():
        monkeypatch.setenv(key, value)
    hub = make("uhubctl", location="1-1.4")
    with pytest.raises(NoSuchOutlet, match=r"port 7 does not exist: the hub at '1-1\.4' has 4 ports"):
        hub.get(7)
    with pytest.raises(NoSuchOutlet, match="port 5 does not exist"):
        hub.set(5, False)
    assert fake_tools.read(state)["hubs"]["1-1.4"] == [True] * 4
    hub.set(4, False)
    assert hub.get(4) is False


def test_vusb_board_lacks_relay_3(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = MockBus().install(monkeypatch)
    bus.add(MockVusbRelay(bus, "R2D2X", relays=2))
    board = make("vusbhid", serial="R2D2X")
    board.set(2, True)
    with pytest.raises(NoSuchOutlet, match="relay 3 does not exist: the board has relays 1 to 2"):
        board.get(3)


def test_conrad_chain_lacks_port_8() -> None:
    with ConradSimulator({"cards": 1}) as sim:
        relays = make("conrad197720", device=sim.address)
        try:
            assert relays.get(7) is False
            with pytest.raises(NoSuchOutlet, match=r"port 8 does not exist: 1 card on .* have ports 0 to 7"):
                relays.get(8)
        finally:
            relays.close()


# --- through the daemon: the migrated PDU stays online ----------------------------------------


def test_migrated_tplink_on_a_smaller_strip_stays_online(daemon: Any, probe: Any, unique: str) -> None:
    with KasaSimulator({"children": 3}) as strip:
        config = convert({"daemon": {}, "pdus": {unique: {"driver": "tplink", "host": strip.address}}}).config
        assert config["pdus"][unique]["ports"] == 6
        config["pdus"][unique]["poll_interval"] = 0.2  # probe again and again
        probe.subscribe(f"pdu/{unique}/#")
        daemon(config)
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online")
        probe.wait_for(f"pdu/{unique}/3/state")
        seen = len(strip.log)
        wait_until(lambda: len(strip.log) >= seen + 9, 10, "three more probes")
        ack = probe.request(f"pdu/{unique}/5/set", "ON")
        assert ack["status"] == "error" and "outlet 5 does not exist" in ack["error"]
        assert probe.request(f"pdu/{unique}/2/set", "ON")["state"] == "ON" and strip.relays[1] is True
        availability = [m.payload for m in probe.all(f"pdu/{unique}/availability")]
        assert availability == [b"online"], availability
        assert not probe.all(f"pdu/{unique}/4/state") and not probe.all(f"pdu/{unique}/6/state")


def test_migrated_uhubctl_on_a_4_port_hub_stays_online(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       daemon: Any, probe: Any, unique: str) -> None:
    state = fake_tools.install(tmp_path / "bin", {"hubs": {"1-1.4": [True, False, True, True]}, "boards": {}})
    for key, value in fake_tools.environment(tmp_path / "bin", state).items():
        monkeypatch.setenv(key, value)
    config = convert({"daemon": {}, "pdus": {unique: {"driver": "uhubctl", "location": "1-1.4"}}}).config
    assert config["pdus"][unique]["ports"] == 7
    config["pdus"][unique]["poll_interval"] = 0.2
    probe.subscribe(f"pdu/{unique}/#")
    daemon(config)
    probe.wait_for(f"pdu/{unique}/4/state", lambda m: m.payload == b"ON")

    def reads() -> int:
        return sum(1 for c in fake_tools.read(state)["calls"] if "--action" not in c)
    seen = reads()
    wait_until(lambda: reads() >= seen + 12, 10, "more probes")  # ports 1-4 each time: 5-7 are left out
    assert not any(c[-1] in ("5", "6", "7") for c in fake_tools.read(state)["calls"][-8:])
    assert probe.request(f"pdu/{unique}/2/set", "ON")["state"] == "ON"
    ack = probe.request(f"pdu/{unique}/6/set", "ON")
    assert ack["status"] == "error" and "has 4 ports" in ack["error"]
    assert [m.payload for m in probe.all(f"pdu/{unique}/availability")] == [b"online"]
