"""The localcmdline driver: real programs, no shell, exit status checked."""

from __future__ import annotations

import sys

import pytest
from support import wait_until

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


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not reaped by its parent, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


HANG = 'sleep 300 & echo $! > "$1"; wait'  # a shell whose child hangs; the child's pid in $1


def test_a_hung_shell_and_its_child_are_killed_at_the_timeout(tmp_path):
    pidfile = tmp_path / "child"
    hung = LocalCommandLine({"cmd_on": ["sh", "-c", HANG, "sh", str(pidfile)], "cmd_off": ["true"]},
                            pdu="p", timeout=0.5)
    with pytest.raises(DriverError, match=r"still running after 0\.5 s: killed it and its process group"):
        hung.set(1, True)
    child = int(pidfile.read_text())
    wait_until(lambda: not _alive(child), 5, f"the shell's child {child} to be killed")


def test_what_a_command_leaves_behind_in_its_group_is_killed(tmp_path):
    pidfile = tmp_path / "child"
    d = LocalCommandLine({"cmd_on": ["sh", "-c", 'sleep 300 >/dev/null 2>&1 & echo $! > "$1"', "sh", str(pidfile)],
                          "cmd_off": ["true"]}, pdu="p", timeout=5)
    d.set(1, True)
    child = int(pidfile.read_text())
    wait_until(lambda: not _alive(child), 5, f"the left-behind child {child} to be killed")


def test_a_daemon_stopping_during_a_hung_command_leaves_nothing_running(daemon_process, broker, probe, unique,
                                                                         tmp_path):
    pidfile = tmp_path / "child"
    proc = daemon_process({"mqtt": {"host": broker.host, "port": broker.port, "client_id": unique},
                           "pdus": {unique: {"driver": "localcmdline", "ports": 1, "retries": 0, "timeout": 60,
                                             "cmd_on": ["sh", "-c", HANG, "sh", str(pidfile)],
                                             "cmd_off": ["true"]}}})
    probe.subscribe("pdu/bridge/state")
    probe.wait_for("pdu/bridge/state", lambda m: m.payload == b"online", timeout=15)
    probe.publish(f"pdu/{unique}/1/set", "ON")
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "the command's child to start")
    child = int(pidfile.read_text())
    proc.process.terminate()
    proc.process.wait(15)
    wait_until(lambda: not _alive(child), 5, f"the hung command's child {child} to be killed at shutdown")
