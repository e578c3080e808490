"""The localcmdline driver: real programs, no shell, exit status checked."""

from __future__ import annotations

import sys

import pytest

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.localcmdline import LocalCommandLine

WRITE = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(' '.join(sys.argv[2:]))"


def driver(**options) -> LocalCommandLine:
    schema = __import__("voluptuous").Schema(LocalCommandLine.options)
    return LocalCommandLine(schema(options), pdu="rack", timeout=5)


def test_placeholders_become_single_arguments(tmp_path):
    out = tmp_path / "out"
    d = driver(cmd_on=[sys.executable, "-c", WRITE, str(out), "on", "{pdu}", "port={port}"],
               cmd_off=[sys.executable, "-c", WRITE, str(out), "off", "{port}"])
    d.set(3, True)
    assert out.read_text() == "on rack port=3"
    d.set(12, False)
    assert out.read_text() == "off 12"


def test_a_string_command_is_split_once_and_never_run_by_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    d = driver(cmd_on=f"echo {{port}}; touch {marker}", cmd_off="true")
    d.set(1, True)  # echo gets "1;" "touch" "<path>" as arguments
    assert not marker.exists()


def test_a_non_zero_exit_is_an_error_with_the_stderr_tail():
    d = driver(cmd_on=[sys.executable, "-c", "import sys; sys.stderr.write('relay jammed\\n'); sys.exit(4)"],
               cmd_off=["true"])
    with pytest.raises(DriverError, match=r"cmd_on: .* exited with status 4: relay jammed"):
        d.set(1, True)


def test_a_missing_program_and_a_slow_program_are_errors():
    with pytest.raises(DriverError, match="program not found"):
        driver(cmd_on=["/nonexistent/relayctl"], cmd_off=["true"]).set(1, True)
    slow = LocalCommandLine({"cmd_on": ["sleep", "5"], "cmd_off": ["true"]}, pdu="p", timeout=0.2)
    with pytest.raises(DriverError, match=r"still running after 0\.2 s"):
        slow.set(1, True)


def test_cmd_get_reads_on_and_off():
    d = driver(cmd_on=["true"], cmd_off=["true"], cmd_get=[sys.executable, "-c", "import sys; print(sys.argv[1])",
                                                          "{port}"])
    assert d.can_read
    with pytest.raises(DriverError, match="expected on or off"):
        d.get(7)
    on = driver(cmd_on=["true"], cmd_off=["true"], cmd_get=["echo", "ON"])
    assert on.get(1) is True
    assert driver(cmd_on=["true"], cmd_off=["true"], cmd_get=["echo", "0"]).get(1) is False
    assert not driver(cmd_on=["true"], cmd_off=["true"]).can_read


def test_through_the_daemon_a_failing_command_is_an_error_ack(daemon, probe, unique, tmp_path):
    out = tmp_path / "state"
    daemon({"pdus": {unique: {
        "driver": "localcmdline", "ports": 2, "retries": 0,
        "cmd_on": [sys.executable, "-c", WRITE, str(out), "on", "{port}"],
        "cmd_off": [sys.executable, "-c", "import sys; sys.stderr.write('no relay 2'); sys.exit(1)"]}}})
    assert probe.request(f"pdu/{unique}/2/set", "ON")["state"] == "ON"
    assert out.read_text() == "on 2"
    ack = probe.request(f"pdu/{unique}/2/set", "OFF")
    assert ack["status"] == "error" and ack["error"].endswith("exited with status 1: no relay 2")
    assert ack["state"] == "ON"  # what the outlet last confirmed
