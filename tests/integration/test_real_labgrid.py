"""labgrid's own PDUDaemonDriver (labgrid from PyPI) against pdumqtt's listener, through the
shipped labgrid environment (examples/labgrid/pdumqtt-env.yaml) with its host pointed here."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT

from integration.envs import installed
from pdumqtt.drivers.sim import device

PROGRAM = "labgrid"
pytestmark = pytest.mark.integration

# run inside labgrid's environment: the actions given, through labgrid's PowerProtocol driver
SCRIPT = """
import sys
from labgrid import Environment
power = Environment(sys.argv[1]).get_target("main").get_driver("PowerProtocol")
for action in sys.argv[2:]:
    getattr(power, action)()
    print(action, "ok", flush=True)
"""


def labgrid(tmp_path: Path, daemon: Any, *actions: str, **port: Any) -> subprocess.CompletedProcess[str]:
    env = yaml.safe_load((ROOT / "examples" / "labgrid" / "pdumqtt-env.yaml").read_text())
    resource = env["targets"]["main"]["resources"]["PDUDaemonPort"]
    host, listen_port = daemon.listener.address
    resource.update({"host": f"{host}:{listen_port}", **port})
    env["targets"]["main"]["drivers"]["PDUDaemonDriver"]["delay"] = 0.5
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(env))
    return subprocess.run([str(installed(PROGRAM) / "bin" / "python"), "-c", SCRIPT, str(path), *actions],
                          capture_output=True, text=True, timeout=60)


def test_on_off_cycle_through_the_shipped_environment(tmp_path: Path, listening_demo: Any) -> None:
    lab = device("lab-pdu1")
    done = labgrid(tmp_path, listening_demo, "on")  # the example's own PDU and index
    assert done.returncode == 0, done.stderr
    assert lab.outlets[3] is True
    assert labgrid(tmp_path, listening_demo, "off").returncode == 0 and lab.outlets[3] is False
    switches = lab.switches
    done = labgrid(tmp_path, listening_demo, "cycle")
    assert done.returncode == 0, done.stderr
    assert lab.switches == switches + 2 and lab.outlets[3] is True
    # a named port is reached by its number: labgrid passes index through int()
    bench = device("bench-relays")
    done = labgrid(tmp_path, listening_demo, "on", "off", "on", pdu="bench-relays", index=2)
    assert done.stdout.split() == ["on", "ok", "off", "ok", "on", "ok"], done.stderr
    assert bench.outlets[2] is True


def test_unknown_and_unreachable_pdus_fail_loudly(tmp_path: Path, listening_demo: Any) -> None:
    done = labgrid(tmp_path, listening_demo, "on", pdu="nope")
    assert done.returncode != 0 and "404" in done.stderr, done.stderr
    done = labgrid(tmp_path, listening_demo, "on", index=99)
    assert done.returncode != 0 and "404" in done.stderr, done.stderr
    done = labgrid(tmp_path, listening_demo, "cycle", pdu="dead", index=1)
    assert done.returncode != 0 and "502" in done.stderr, done.stderr
