"""uhubctl and bcu through fake executables on PATH (tests/fake_tools.py): the real subprocess path, argv checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fake_tools
import pytest
import voluptuous as vol
from support import accepts, free_port, run_cli, wait_until
from test_pdudaemon import tcp

from pdumqtt import registry
from pdumqtt.drivers import DriverError


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    state = fake_tools.install(folder, {
        "hubs": {"1-1.4": [True, True, True, True], "2-3": [False, False]},
        "boards": {"3-7.1": {"plugged": True, "gpio": {}}, "default": {"plugged": True, "gpio": {}}},
    })
    for key, value in fake_tools.environment(folder, state).items():
        monkeypatch.setenv(key, value)
    return state


def driver(name: str, **options: Any) -> Any:
    cls = registry.load(name)
    return cls(vol.Schema(cls.options)(options), pdu="x", timeout=10)


def calls(state: Path) -> list[list[str]]:
    return fake_tools.read(state)["calls"]


def test_uhubctl_argv_and_state(tools: Path) -> None:
    hub = driver("uhubctl", location="1-1.4")
    hub.set(3, False)
    assert calls(tools) == [["uhubctl", "--location", "1-1.4", "--port", "3", "--action", "off"]]
    assert fake_tools.read(tools)["hubs"]["1-1.4"] == [True, True, False, True]
    assert hub.get(3) is False and hub.get(2) is True
    assert calls(tools)[-1] == ["uhubctl", "--location", "1-1.4", "--port", "2"]
    driver("usb_hub", location="2-3").set(2, True)
    assert fake_tools.read(tools)["hubs"]["2-3"] == [False, True]
    assert registry.load("uhubctl").native_driver == "usb_hub"


def test_uhubctl_absent_hub_names_the_locations_seen(tools: Path) -> None:
    with pytest.raises(DriverError) as e:
        driver("uhubctl", location="9-9").set(1, True)
    assert "'9-9'" in str(e.value) and "uhubctl sees hubs at 1-1.4, 2-3" in str(e.value)
    fake_tools.change(tools, lambda s: s["unplugged"].append("1-1.4"))
    with pytest.raises(DriverError, match=r"location '1-1\.4'; uhubctl sees hubs at 2-3"):
        driver("uhubctl", location="1-1.4").get(1)
    fake_tools.change(tools, lambda s: s.update(denied=True))
    with pytest.raises(DriverError, match=r"permission denied.*uhubctl's README"):
        driver("uhubctl", location="2-3").get(1)


def test_program_missing_and_no_shell(tools: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DriverError, match="uhubctl not found on PATH, nor in /sbin"):
        driver("uhubctl", location="1-1.4").set(1, True)
    with pytest.raises(vol.Invalid, match="without spaces"):
        driver("uhubctl", location="1-1; rm -rf /")
    with pytest.raises(vol.Invalid, match="not starting with '-'"):
        driver("bcu", board="--help")


def test_bcu_argv(tools: Path) -> None:
    board = driver("bcu", id="3-7.1", board="imx8mpevk", bootmode="sd")
    board.set(1, True)
    board.set(1, False)
    assert calls(tools) == [
        ["bcu", "init", "sd", "-id=3-7.1", "-board=imx8mpevk"],
        ["bcu", "set_gpio", "reset", "1", "-id=3-7.1", "-board=imx8mpevk"],
        ["bcu", "init", "sd", "-id=3-7.1", "-board=imx8mpevk"],
        ["bcu", "set_gpio", "reset", "0", "-id=3-7.1", "-board=imx8mpevk"],
    ]
    high = driver("bcu", reset_gpio="boot_mode_sel", reset_gpio_active_low="0")
    high.set(1, True)
    assert calls(tools)[-2:] == [["bcu", "init"], ["bcu", "set_gpio", "boot_mode_sel", "0"]]
    native = driver("nxp_bcu", id="3-7.1", active_low=False)
    native.set(1, False)
    assert fake_tools.read(tools)["boards"]["3-7.1"]["gpio"] == {"reset": "1"}
    assert registry.load("bcu").fixed_ports == 1 and registry.load("bcu").native_driver == "nxp_bcu"


def test_bcu_board_unplugged(tools: Path) -> None:
    fake_tools.change(tools, lambda s: s["boards"]["3-7.1"].update(plugged=False))
    with pytest.raises(DriverError, match=r"bcu init failed for id '3-7\.1' \(status 1\): open ftdi device failed"):
        driver("bcu", id="3-7.1").set(1, True)


# --- through the daemon -----------------------------------------------------------------------


def test_daemon_uhubctl_and_bcu(daemon, probe, unique, tools) -> None:
    daemon({"pdus": {
        f"{unique}h": {"driver": "usb_hub", "location": "1-1.4", "ports": 4, "retries": 0, "cycle_delay": 0.1,
                       "poll_interval": 0.3},
        f"{unique}b": {"driver": "bcu", "id": "3-7.1", "ports": 1, "retries": 0, "cycle_delay": 0.1},
    }})
    probe.subscribe(f"pdu/{unique}h/#")
    probe.wait_for(f"pdu/{unique}h/4/state", lambda m: m.payload == b"ON")
    assert probe.request(f"pdu/{unique}h/2/set", "OFF")["state"] == "OFF"
    assert probe.request(f"pdu/{unique}h/2/get")["state"] == "OFF"
    assert fake_tools.read(tools)["hubs"]["1-1.4"][1] is False
    ack = probe.request(f"pdu/{unique}b/1/set", "CYCLE")
    assert ack["status"] == "ok" and ack["state"] == "ON"
    bcu_calls = [c for c in calls(tools) if c[0] == "bcu"]
    assert [c[1:4] for c in bcu_calls if c[1] == "set_gpio"] == [["set_gpio", "reset", "0"], ["set_gpio", "reset", "1"]]
    start = len(probe.messages)
    fake_tools.change(tools, lambda s: s["unplugged"].append("1-1.4"))
    probe.wait_for(f"pdu/{unique}h/availability", lambda m: m.payload == b"offline", start=start)
    ack = probe.request(f"pdu/{unique}h/1/set", "OFF")
    assert ack["status"] == "error" and "'1-1.4'" in ack["error"]
    start = len(probe.messages)
    fake_tools.change(tools, lambda s: s["unplugged"].clear())
    probe.wait_for(f"pdu/{unique}h/availability", lambda m: m.payload == b"online", start=start)


def pdudaemon_conf(port: int) -> dict[str, Any]:
    return {"daemon": {"hostname": "127.0.0.1", "port": port},
            "pdus": {"hub": {"driver": "uhubctl", "location": "1-1.4"},
                     "imx": {"driver": "bcu", "id": "3-7.1", "board": "imx8mpevk", "reset_gpio_active_low": "1"}}}


def test_pdudaemon_conf_converts(tmp_path: Path) -> None:
    import yaml

    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(pdudaemon_conf(16421)))
    done = run_cli("migrate", str(conf))
    assert done.returncode == 0, done.stderr
    pdus = yaml.safe_load(done.stdout)["pdus"]
    assert pdus["hub"] == {"driver": "uhubctl", "ports": 7, "location": "1-1.4"}
    assert pdus["imx"] == {"driver": "bcu", "ports": 1, "id": "3-7.1", "board": "imx8mpevk",
                           "reset_gpio_active_low": "1"}


def test_pdudaemon_conf_runs(daemon, tools) -> None:
    port = free_port()
    daemon(pdudaemon_conf(port))
    wait_until(lambda: accepts(port), 10, "the PDUDaemon listener")
    assert tcp(("127.0.0.1", port), b"hub 1 off") == b"ack\n"
    assert tcp(("127.0.0.1", port), b"imx 1 on") == b"ack\n"
    state = fake_tools.read(tools)
    assert state["hubs"]["1-1.4"][0] is False and state["boards"]["3-7.1"]["gpio"] == {"reset": "1"}
    assert ["uhubctl", "--location", "1-1.4", "--port", "1", "--action", "off"] in state["calls"]
