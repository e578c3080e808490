"""PDUDaemon's own pduclient (from the pdudaemon package on PyPI) against pdumqtt's listener,
over TCP and over HTTP (``-H``), and the LAVA device dictionary's commands with it.

pduclient always connects to port 16421: the listener takes that port on a loopback address
of this run's own, so it never meets another listener.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any

import pytest
from support import ROOT

from integration.envs import installed
from pdumqtt.drivers.sim import device

PROGRAM = "pdudaemon"
pytestmark = pytest.mark.integration


def pduclient(daemon: Any, *args: str) -> subprocess.CompletedProcess[str]:
    host = daemon.listener.address[0]
    return subprocess.run([str(installed(PROGRAM) / "bin" / "pduclient"), "--daemon", host, *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("http", [False, True], ids=["tcp", "http"])
def test_on_off_reboot(listening_demo: Any, http: bool) -> None:
    flag = ["--http"] if http else []
    lab = device("lab-pdu1")
    for command, port, want in (("on", "2", True), ("off", "2", False), ("on", "05", True)):
        done = pduclient(listening_demo, *flag, "--hostname", "lab-pdu1", "--port", port, "--command", command)
        assert done.returncode == 0 and "Command sent successfully" in done.stdout, done.stdout
        assert lab.outlets[int(port)] is want
    switches = lab.switches
    done = pduclient(listening_demo, *flag, "--hostname", "lab-pdu1", "--port", "2", "--command", "reboot",
                     "--delay", "1")
    assert done.returncode == 0, done.stdout
    assert lab.switches == switches + 2 and lab.outlets[2] is True  # off, then on again


@pytest.mark.parametrize("http", [False, True], ids=["tcp", "http"])
def test_unknown_and_unreachable(listening_demo: Any, http: bool) -> None:
    flag = ["--http"] if http else []
    for pdu, port in (("nope", "1"), ("lab-pdu1", "99"), ("dead", "1")):
        done = pduclient(listening_demo, *flag, "--hostname", pdu, "--port", port, "--command", "on")
        assert done.returncode == 127 and "Error sending command" in done.stdout, (pdu, done.stdout)
    if http:  # requests' Response says the status: 404 for what is not configured, 502 for a dead PDU
        assert "404" in pduclient(listening_demo, *flag, "--hostname", "nope", "--port", "1",
                                  "--command", "on").stdout
        assert "502" in pduclient(listening_demo, *flag, "--hostname", "dead", "--port", "1",
                                  "--command", "off").stdout


def test_lava_device_dictionary_commands(listening_demo: Any) -> None:
    """The shipped LAVA dictionary's commands, as LAVA's dispatcher would run them."""
    text = (ROOT / "examples" / "lava" / "device-dictionary.jinja2").read_text()
    commands = [shlex.split(c) for c in re.findall(r"set \w+_command = '(pduclient [^']*)'", text)
                if "--mqtt" not in c]
    assert len(commands) == 3
    lab = device("lab-pdu1")
    for argv in commands:
        assert argv[argv.index("--daemon") + 1] == "pdu-server.lab"
        args = argv[1:]
        del args[args.index("--daemon"):args.index("--daemon") + 2]
        if "--delay" in args:  # the board's 5 s off would only slow the test down
            args[args.index("--delay") + 1] = "1"
        done = pduclient(listening_demo, *args)
        assert done.returncode == 0, (argv, done.stdout)
        assert lab.outlets[3] is (args[args.index("--command") + 1] != "off")
