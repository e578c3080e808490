"""The PDUDaemon drop-in: its HTTP and TCP requests byte for byte, pduclient, pdudaemon.conf.

The requests are written out as PDUDaemon's pduclient and labgrid's PDUDaemonDriver put
them on the wire (pduclient: one TCP line without a newline; python-requests: the GET with
its default headers). The outlets are the ``sim`` driver's; the shell tests run real
programs through ``localcmdline``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support import accepts, free_port, wait_until

from pdumqtt.drivers.sim import device

PDUCLIENT = [sys.executable, "-c", "from pdumqtt.pduclient import run; run()"]


def tcp(address: tuple[str, int], data: bytes, timeout: float = 20) -> bytes:
    """Send ``data`` in one write and read the answer until the listener closes."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(16384):
            reply += chunk
    return reply


def requests_get(address: tuple[str, int], target: str) -> bytes:
    """The bytes python-requests 2.x sends for ``requests.get(url)`` (labgrid, pduclient -H)."""
    host, port = address
    return (f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: python-requests/2.31.0\r\n"
            "Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n").encode()


def http(address: tuple[str, int], raw: bytes) -> tuple[int, str]:
    reply = tcp(address, raw)
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    assert b"Connection: close" in head
    return status, body.decode()


@pytest.fixture
def listener(daemon: Any, probe: Any, unique: str) -> Any:
    """A daemon with two sim PDUs, an alias and the listener on a free port."""

    class Setup:
        pdu = f"{unique}-pdu"
        other = f"{unique}-bad"
        d = daemon({
            "pdudaemon": {"listen": f"127.0.0.1:{free_port()}"},
            "defaults": {"retries": 0, "timeout": 2, "cycle_delay": 0.2},
            "pdus": {f"{unique}-pdu": {"driver": "sim", "ports": {"1": 1, "2": 2, "dut": 3}},
                     f"{unique}-bad": {"driver": "sim", "ports": 2, "fail_ports": [2]}},
            "aliases": {f"{unique}-board": {"pdu": f"{unique}-pdu", "port": "dut"}},
        })
        address = d.listener.address

    probe.subscribe(f"pdu/{Setup.pdu}/#")
    probe.subscribe(f"pdu/alias/{unique}-board/#")
    return Setup


def mqtt_ack(probe: Any, topic: str) -> dict[str, Any]:
    return json.loads(probe.wait_for(topic).payload)


# --- TCP, as pduclient sends it ------------------------------------------------------------


def test_tcp_line_without_newline_switches_and_acks(listener: Any, probe: Any) -> None:
    assert tcp(listener.address, f"{listener.pdu} 1 on".encode()) == b"ack\n"
    assert device(listener.pdu).outlets[1] is True
    ack = mqtt_ack(probe, f"pdu/{listener.pdu}/1/ack")
    assert ack["status"] == "ok" and ack["action"] == "on" and ack["state"] == "ON"
    probe.wait_for(f"pdu/{listener.pdu}/1/state", lambda m: m.payload == b"ON")

    assert tcp(listener.address, f"{listener.pdu} 1 off".encode()) == b"ack\n"
    assert device(listener.pdu).outlets[1] is False


def test_tcp_reboot_with_delay_is_a_cycle(listener: Any, probe: Any) -> None:
    started = time.monotonic()
    assert tcp(listener.address, f"{listener.pdu} 2 reboot 1".encode()) == b"ack\n"
    assert time.monotonic() - started >= 1.0  # answered once the outlet is back on
    assert device(listener.pdu).outlets[2] is True
    ack = mqtt_ack(probe, f"pdu/{listener.pdu}/2/ack")
    assert ack["action"] == "cycle" and ack["status"] == "ok" and ack["took_ms"] >= 1000


def test_tcp_port_with_leading_zero_and_port_name(listener: Any) -> None:
    assert tcp(listener.address, f"{listener.pdu} 01 on\n".encode()) == b"ack\n"
    assert tcp(listener.address, f"{listener.pdu} dut on".encode()) == b"ack\n"
    assert device(listener.pdu).outlets[1] is True and device(listener.pdu).outlets[3] is True


@pytest.mark.parametrize("line", [
    "{pdu} 9 on", "nosuchpdu 1 on", "{pdu} 1 dance", "{pdu} 1", "{pdu} 1 on 5 extra", "{pdu} 1 reboot soon",
    "{pdu} 1 reboot -3", "{pdu} 1;reboot on", "\n", "\xff\xfe",
])
def test_tcp_refusals_answer_nack(listener: Any, line: str) -> None:
    assert tcp(listener.address, line.format(pdu=listener.pdu).encode("utf-8", "surrogateescape")) == b"nack\n"
    assert device(listener.pdu).calls >= 0  # the listener survives: the next request works
    assert tcp(listener.address, f"{listener.pdu} 1 on".encode()) == b"ack\n"


def test_tcp_device_failure_is_nack(listener: Any) -> None:
    assert tcp(listener.address, f"{listener.other} 2 on".encode()) == b"nack\n"
    assert tcp(listener.address, f"{listener.other} 1 on".encode()) == b"ack\n"


# --- HTTP, as labgrid and pduclient -H send it ---------------------------------------------


def test_http_requests_bytes_switch(listener: Any, probe: Any) -> None:
    status, body = http(listener.address, requests_get(
        listener.address, f"/power/control/on?hostname={listener.pdu}&port=2"))
    assert (status, body) == (200, "OK - accepted request\n")
    assert device(listener.pdu).outlets[2] is True
    assert mqtt_ack(probe, f"pdu/{listener.pdu}/2/ack")["status"] == "ok"


def test_http_labgrid_reboot_with_delay(listener: Any) -> None:
    started = time.monotonic()
    status, _ = http(listener.address, requests_get(
        listener.address, f"/power/control/reboot?hostname={listener.pdu}&port=1&delay=1"))
    assert status == 200 and time.monotonic() - started >= 1.0
    assert device(listener.pdu).outlets[1] is True


def test_http_alias(listener: Any, probe: Any, unique: str) -> None:
    status, _ = http(listener.address, requests_get(listener.address, f"/power/control/on?alias={unique}-board"))
    assert status == 200 and device(listener.pdu).outlets[3] is True
    ack = mqtt_ack(probe, f"pdu/alias/{unique}-board/ack")
    assert ack["alias"] == f"{unique}-board" and ack["port"] == "dut"


def test_http_on_with_delay_waits_before_switching(listener: Any) -> None:
    device(listener.pdu).outlets[1] = False
    started = time.monotonic()
    status, _ = http(listener.address, requests_get(
        listener.address, f"/power/control/on?hostname={listener.pdu}&port=1&delay=1"))
    assert status == 200 and time.monotonic() - started >= 1.0 and device(listener.pdu).outlets[1] is True


@pytest.mark.parametrize(("target", "status"), [
    ("/power/control/on?hostname={pdu}&port=7", 404),
    ("/power/control/on?hostname=nosuch&port=1", 404),
    ("/power/control/on?alias=nosuch", 404),
    ("/power/control/dance?hostname={pdu}&port=1", 404),
    ("/power/status?hostname={pdu}&port=1", 404),
    ("/power/control/on?hostname={pdu}", 400),
    ("/power/control/on?port=1", 400),
    ("/power/control/on?alias=x&hostname={pdu}&port=1", 400),
    ("/power/control/reboot?hostname={pdu}&port=1&delay=soon", 400),
    ("/power/control/reboot?hostname={pdu}&port=1&delay=-1", 400),
    ("/power/control/reboot?hostname={pdu}&port=1&delay=1e9", 400),
    ("/power/control/on?hostname={pdu}&port=1%3Btouch%20x", 404),
])
def test_http_refusals(listener: Any, target: str, status: int) -> None:
    got, body = http(listener.address, requests_get(listener.address, target.format(pdu=listener.pdu)))
    assert got == status, body
    assert body.strip()  # a plain reason


def test_http_failed_device_is_502_and_other_methods_405(listener: Any) -> None:
    status, body = http(listener.address, requests_get(
        listener.address, f"/power/control/on?hostname={listener.other}&port=2"))
    assert status == 502 and "simulated failure" in body
    reply = tcp(listener.address, b"POST /power/control/on HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 405 ") and b"Allow: GET" in reply


def test_http_request_in_pieces(listener: Any) -> None:
    raw = requests_get(listener.address, f"/power/control/on?hostname={listener.pdu}&port=1")
    with socket.create_connection(listener.address, timeout=10) as sock:
        for piece in (raw[:2], raw[2:30], raw[30:]):
            sock.sendall(piece)
            time.sleep(0.05)  # pacing the writes, not synchronising: the answer is awaited below
        reply = sock.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 200 ")


# --- request data never reaches a shell --------------------------------------------------


SHELL_PORTS = ["1;touch {mark}", "1 && touch {mark}", "$(touch {mark})", "`touch {mark}`", "1|touch {mark}",
               "../1", "1\ttouch"]


def test_shell_metacharacters_in_a_port_never_run(daemon: Any, unique: str, tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    done = tmp_path / "on-1"
    d = daemon({
        "pdudaemon": {"listen": f"127.0.0.1:{free_port()}"},
        "pdus": {unique: {"driver": "localcmdline", "ports": 4, "retries": 0,
                          "cmd_on": ["touch", f"{tmp_path}/on-{{port}}"], "cmd_off": ["true"]}},
    })
    from urllib.parse import quote

    for port in SHELL_PORTS:
        port = port.format(mark=mark)
        assert tcp(d.listener.address, f"{unique} {port} on".encode()) == b"nack\n"
        status, _ = http(d.listener.address, requests_get(
            d.listener.address, f"/power/control/on?hostname={unique}&port={quote(port)}"))
        assert status == 404
    assert tcp(d.listener.address, f"{unique} 1 on".encode()) == b"ack\n"
    assert done.exists()  # the program does run for a real port...
    assert not mark.exists()  # ...and nothing in a refused port ever ran
    assert sorted(p.name for p in tmp_path.iterdir()) == ["on-1"]


# --- pduclient against the listener and the broker ---------------------------------------


def pduclient(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PDUCLIENT, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("http_flag", [[], ["-H"]])
def test_pduclient_against_the_listener(listener: Any, http_flag: list[str]) -> None:
    daemon_address = f"127.0.0.1:{listener.address[1]}"
    done = pduclient(*http_flag, "--daemon", daemon_address, "--hostname", listener.pdu, "--port", "2",
                     "--command", "on")
    assert done.returncode == 0 and done.stdout == "Command sent successfully.\n"
    assert device(listener.pdu).outlets[2] is True
    done = pduclient(*http_flag, "--daemon", daemon_address, "--hostname", listener.pdu, "--port", "02",
                     "--command", "reboot", "--delay", "1")
    assert done.returncode == 0
    refused = pduclient(*http_flag, "--daemon", daemon_address, "--hostname", "nosuch", "--port", "2",
                        "--command", "off")
    assert refused.returncode == 127 and refused.stdout.startswith("Error sending command! ")


def test_pduclient_exit_codes_without_a_daemon() -> None:
    nobody = f"127.0.0.1:{free_port()}"
    done = pduclient("--daemon", nobody, "--hostname", "p", "--port", "1", "--command", "on")
    assert done.returncode == 1 and "wrong daemon hostname" in done.stdout
    done = pduclient("-H", "--daemon", nobody, "--hostname", "p", "--port", "1", "--command", "on")
    assert done.returncode == 1
    assert pduclient("--daemon", nobody, "--hostname", "p", "--port", "1").returncode == 1  # missing --command
    done = pduclient("--daemon", nobody, "--hostname", "p", "--port", "1", "--command", "dance")
    assert done.returncode == 1 and "Unknown pdu command: dance" in done.stdout
    assert pduclient("--help").returncode == 0


def test_pduclient_mqtt(listener: Any, broker: Any) -> None:
    args = ["--mqtt", "--daemon", broker.address, "--hostname", listener.pdu]
    done = pduclient(*args, "--port", "dut", "--command", "on")
    assert done.returncode == 0, done.stdout + done.stderr
    assert device(listener.pdu).outlets[3] is True
    done = pduclient(*args, "--port", "9", "--command", "on")
    assert done.returncode == 127 and "unknown port" in done.stdout
    nobody = f"127.0.0.1:{free_port()}"
    done = pduclient("--mqtt", "--broker", nobody, "--hostname", "x", "--port", "1", "--command", "on")
    assert done.returncode == 1


def test_pduclient_console_script_is_installed() -> None:
    exe = shutil.which("pduclient", path=os.path.dirname(sys.executable)) or shutil.which("pduclient")
    assert exe, "pduclient console script missing: pip install -e ."
    done = subprocess.run([exe, "--hostname", "x"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout == "Missing option, try -h for help\n"


def test_listener_port_taken_is_a_clear_error(broker: Any, unique: str) -> None:
    from pdumqtt.config import load_config_data
    from pdumqtt.daemon import Daemon
    from pdumqtt.pdudaemon import ListenerError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = load_config_data({"pdudaemon": {"listen": f"127.0.0.1:{port}"},
                                   "pdus": {unique: {"driver": "sim", "ports": 1}}})
        d = Daemon(config, broker=(broker.host, broker.port))
        with pytest.raises(ListenerError, match=f"cannot listen on 127.0.0.1:{port}"):
            d.start()
        assert not d.bridge.connected.is_set()


# --- an unchanged pdudaemon.conf ----------------------------------------------------------


def pdudaemon_conf(prefix: str, out: Path, port: int, devantech: str = "127.0.0.1:1",
                   network: bool = True) -> dict[str, Any]:
    """A config shaped like PDUDaemon's shipped share/pdudaemon.conf, writing to ``out``.

    Without ``network`` it leaves out the PDUs that PDUDaemon reaches by their name as a
    host (acme, apc, snmp): a daemon run must never reach past 127.0.0.1, and whether those
    convert depends on the drivers installed.
    """
    def local(label: str) -> dict[str, str]:
        return {"driver": "localcmdline", "cmd_on": f"echo '{label}%s on' >> {out}",
                "cmd_off": f"echo '{label}%s off' >> {out}"}

    ip, _, tcp_port = devantech.partition(":")
    pdus: dict[str, Any] = {
        f"{prefix}-test": local(""),
        f"{prefix}-drivealias": local("drivealias "),
        f"{prefix}-httpalias": local("httpalias "),
        f"{prefix}-plain": {"driver": "localcmdline", "cmd_on": f"touch {out.parent}/plain-%s-on",
                            "cmd_off": f"touch {out.parent}/plain-%s-off", "retries": 2, "retrydelay": 1},
        f"{prefix}-nothing": {"driver": "localcmdline"},
        "energenie": {"driver": "EG-PMS", "device": "aa:bb:cc:xx:yy", "retries": 1},
        "cleware-usb-switch-4": {"driver": "ClewareUsbSwitch4", "serial": 12345},
        f"{prefix}-Devantech": {"driver": "devantech_eth008", "ip": ip, "port": tcp_port, "password": "s3cr3t-board",
                                "logic": "NO"},
    }
    if network:
        pdus.update({
            "baylibre-acme.local": {"driver": "acme"},
            "apc7952-retries": {"driver": "apc7952", "telnetport": 23, "retries": 2},
            "apc-snmpv1-private": {"driver": "snmpv1", "community": "s3cr3t-community", "mib": "PowerNet-MIB",
                                   "controlpoint": "sPDUOutletCtl", "onsetting": "1", "offsetting": 2},
        })
    return {
        "daemon": {"hostname": "127.0.0.1", "port": port, "logging_level": "DEBUG", "listener": "http"},
        "pdus": pdus,
        "aliases": {
            f"{prefix}-aliastesthttp01": {"hostname": f"{prefix}-httpalias", "port": 1},
            f"{prefix}-aliastestdrive02": {"hostname": f"{prefix}-drivealias", "port": 2},
        },
    }


def test_unchanged_pdudaemon_conf_runs(broker: Any, probe: Any, unique: str, tmp_path: Path) -> None:
    from pdumqtt import registry

    out = tmp_path / "pdu"
    board = None
    if "devantech_eth008" in registry.names():  # a driver registered under PDUDaemon's name
        board = registry.load("devantech_eth", registry.SIMULATOR_GROUP)(
            {"listen": "127.0.0.1:0", "board": "eth008", "password": "s3cr3t-board"})
        board.start()
    # only now: the board's own port 0 could otherwise be given the number we picked, and the
    # test would then talk to the board instead of our listener
    port = free_port()
    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(pdudaemon_conf(unique, out, port, board.address if board else "127.0.0.1:1",
                                              network=False), indent=4))
    probe.subscribe(f"pdu/{unique}-test/#")
    # a session of its own: the default client id is shared by every daemon on this host under pdu/
    proc = subprocess.Popen([sys.executable, "-m", "pdumqtt", "daemon", "-c", str(conf), "--broker", broker.address],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PDUMQTT_CLIENT_ID": f"{unique}-daemon"})
    try:
        def listening() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            return accepts(port)

        wait_until(listening, 20, "the PDUDaemon listener")
        assert tcp(("127.0.0.1", port), f"{unique}-test 3 on".encode()) == b"ack\n"
        status, _ = http(("127.0.0.1", port), requests_get(
            ("127.0.0.1", port), f"/power/control/reboot?alias={unique}-aliastesthttp01&delay=0"))
        assert status == 200
        assert tcp(("127.0.0.1", port), f"{unique}-plain 04 on".encode()) == b"ack\n"
        assert tcp(("127.0.0.1", port), f"{unique}-nothing 1 off".encode()) == b"ack\n"
        # left out where no driver has the name; else not plugged in here
        assert tcp(("127.0.0.1", port), b"energenie 1 on") == b"nack\n"
        assert out.read_text().splitlines() == ["3 on", "httpalias 1 off", "httpalias 1 on"]
        assert (tmp_path / "plain-4-on").exists()
        try:
            ack = json.loads(probe.wait_for(f"pdu/{unique}-test/3/ack").payload)
        except AssertionError:
            proc.terminate()
            raise AssertionError("DAEMON OUTPUT:\n" + proc.communicate(timeout=20)[0]) from None
        assert ack["status"] == "ok" and ack["state"] == "ON"
        if board is not None:
            assert tcp(("127.0.0.1", port), f"{unique}-Devantech 5 on".encode()) == b"ack\n"
            assert board.outlet(5) and not board.outlet(4)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
        if board is not None:
            board.stop()
    assert proc.returncode == 0, output
    if "EG-PMS" not in registry.names():
        assert "PDUDaemon PDU 'energenie' left out" in output
    assert "s3cr3t" not in output  # the board's password is a secret


def test_migrate_prints_yaml_with_comments(unique: str, tmp_path: Path) -> None:
    import yaml
    from support import run_cli

    from pdumqtt import registry

    data = pdudaemon_conf(unique, tmp_path / "pdu", 16421)
    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps(data))
    done = run_cli("migrate", str(conf))
    assert done.returncode == 0, done.stderr
    converted = yaml.safe_load(done.stdout)
    assert converted["pdudaemon"] == {"listen": "127.0.0.1:16421"}
    assert converted["aliases"][f"{unique}-aliastestdrive02"] == {"pdu": f"{unique}-drivealias", "port": "2"}
    plain = converted["pdus"][f"{unique}-plain"]
    assert plain["cmd_on"] == ["touch", f"{tmp_path}/plain-{{port}}-on"]
    assert plain["retries"] == 1 and plain["retry_delay"] == 1 and plain["ports"] == 48
    assert converted["pdus"][f"{unique}-test"]["cmd_on"][:2] == ["sh", "-c"]
    assert converted["pdus"][f"{unique}-nothing"]["cmd_on"] == ["true"]
    assert "# daemon.logging_level 'DEBUG'" in done.stdout
    for name, pdu in data["pdus"].items():
        # migrate matches PDUDaemon's names in any case, as PDUDaemon does for most
        if pdu["driver"].lower() not in {n.lower() for n in registry.names()} and pdu["driver"] != "localcmdline":
            assert name not in (converted["pdus"] or {})
            assert f"# NOT CONVERTED: no pdumqtt driver for PDUDaemon's {pdu['driver']!r}" in done.stdout
    if "devantech_eth008" in registry.names():  # PDUDaemon's name and options, unchanged, and its 8 relays
        devantech = converted["pdus"][f"{unique}-Devantech"]
        assert devantech["driver"] == "devantech_eth008" and devantech["ports"] == 8
        assert devantech["ip"] == "127.0.0.1" and devantech["password"] == "s3cr3t-board"
    if "snmpv1" not in registry.names():  # left out, shown as a comment with its secret masked
        assert '"community": "<secret' in done.stdout and "s3cr3t-community" not in done.stdout
    # the output is a config the daemon takes as it is
    path = tmp_path / "migrated.yaml"
    path.write_text(done.stdout)
    assert run_cli("check", "-c", str(path)).returncode == 0
    assert run_cli("migrate", str(path)).returncode == 2  # a pdumqtt config is not PDUDaemon's


@pytest.mark.parametrize(("command", "argv"), [
    ("relay-ctl --port %s on", ["relay-ctl", "--port", "{port}", "on"]),
    ("/usr/bin/switch '%s' 'on now'", ["/usr/bin/switch", "{port}", "on now"]),
    ("echo port%s 100%%", ["echo", "port{port}", "100%"]),
    ("echo %d", ["echo", "{port}"]),
])
def test_localcmdline_strings_without_shell_syntax_become_argument_lists(command: str, argv: list[str]) -> None:
    from pdumqtt.pdudaemon_conf import shell_command

    assert shell_command(command) == argv


@pytest.mark.parametrize(("command", "expected"), [
    ("echo '%s on' >> {out}", "{port} on"),
    ("echo \"port %s on\" >> {out}", "port {port} on"),
    ("echo %s >> {out}", "{port}"),
    ("printf '%%s\\n' %s0 >> {out}", "{port}0"),
    ("echo 'it''s' %s | tr a-z A-Z >> {out}", "ITS {port}"),
])
def test_localcmdline_shell_strings_get_the_port_as_an_argument(command: str, expected: str, tmp_path: Path) -> None:
    """Even a hostile port (never let through by the listener) would be text, not code."""
    from pdumqtt.pdudaemon_conf import shell_command

    out = tmp_path / "out"
    mark = tmp_path / "pwned"
    argv = shell_command(command.format(out=out))
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", "{port}"]
    for port in ["3", f"3; touch {mark}", f"$(touch {mark})", f"'`touch {mark}`'"]:
        out.unlink(missing_ok=True)
        subprocess.run([a.replace("{port}", port) for a in argv], check=True, timeout=10)
        want = expected.format(port=port)
        assert out.read_text().strip() == (want.upper() if "tr a-z" in command else want)
    assert not mark.exists()


@pytest.mark.parametrize("command", ["echo %x", "echo 'unbalanced %s", "", "echo %"])
def test_localcmdline_strings_that_cannot_be_mapped(command: str) -> None:
    from pdumqtt.pdudaemon_conf import Unmappable, shell_command

    with pytest.raises(Unmappable):
        shell_command(command)


def test_pdudaemon_conf_detection() -> None:
    from pdumqtt.pdudaemon_conf import is_pdudaemon_conf

    assert is_pdudaemon_conf({"daemon": {"hostname": "0.0.0.0"}, "pdus": {"a": {"driver": "localcmdline"}}})
    assert not is_pdudaemon_conf({"pdus": {"a": {"driver": "sim", "ports": 2}}})
    assert not is_pdudaemon_conf({"daemon": {}, "pdus": {"a": "x"}})
    assert not is_pdudaemon_conf([1])


def test_requests_under_way_are_answered_when_the_daemon_stops(daemon: Any, unique: str) -> None:
    import threading

    d = daemon({"pdudaemon": {"listen": f"127.0.0.1:{free_port()}"},
                "pdus": {unique: {"driver": "sim", "ports": 2, "hang_ports": [2], "timeout": 30, "retries": 0}}})
    address = d.listener.address
    replies: dict[str, bytes] = {}

    def ask(name: str, data: bytes) -> None:
        replies[name] = tcp(address, data)

    threads = [
        threading.Thread(target=ask, args=("waiting", requests_get(
            address, f"/power/control/on?hostname={unique}&port=1&delay=600"))),  # sleeping before it runs
        threading.Thread(target=ask, args=("hanging", f"{unique} 2 on".encode())),  # stuck on the device
        threading.Thread(target=ask, args=("queued", f"{unique} 1 off".encode())),  # behind the stuck one
    ]
    threads[1].start()
    wait_until(lambda: device(unique).calls >= 2, 10, "the hanging call")  # the start probe, then port 2
    for t in (threads[0], threads[2]):
        t.start()
    wait_until(lambda: len(d.listener._handlers) == 3, 10, "three requests under way")
    try:
        d.stop()
    finally:
        device(unique).release.set()
    for t in threads:
        t.join(20)
    assert replies["waiting"].startswith(b"HTTP/1.1 503 ") and b"stopping" in replies["waiting"]
    assert replies["queued"] == b"nack\n"  # refused: not run, the daemon is stopping
    assert replies["hanging"] == b"nack\n"


def test_bad_listen_address_is_a_config_error() -> None:
    from pdumqtt.config import ConfigError, load_config_data

    with pytest.raises(ConfigError, match=r"pdudaemon\.listen"):
        load_config_data({"pdudaemon": {"listen": "127.0.0.1:99999"}, "pdus": {"a": {"driver": "sim", "ports": 1}}})


def test_python_requests_as_labgrid_calls_it(listener: Any) -> None:
    """labgrid's PDUDaemonDriver: requests.get(url) then raise_for_status(); reboot adds &delay."""
    import requests

    base = f"http://127.0.0.1:{listener.address[1]}/power/control"
    reply = requests.get(f"{base}/reboot?hostname={listener.pdu}&port=dut&delay=1", timeout=30)
    reply.raise_for_status()
    assert reply.text == "OK - accepted request\n" and device(listener.pdu).outlets[3] is True
    requests.get(f"{base}/off?hostname={listener.pdu}&port=3", timeout=30).raise_for_status()
    assert device(listener.pdu).outlets[3] is False
    refused = requests.get(f"{base}/on?hostname={listener.pdu}&port=33", timeout=30)
    assert not refused.ok and refused.status_code == 404 and "unknown port '33'" in refused.text


def test_conversion_edges() -> None:
    from pdumqtt.pdudaemon_conf import DEFAULT_PORTS, convert, to_yaml

    local = {"driver": "localcmdline", "cmd_on": "relay %s on", "cmd_off": "relay %s off"}
    result = convert({
        "daemon": {"hostname": "::1", "dbfile": "/var/lib/pdudaemon.db"},
        "pdus": {"my pdu": local, "bridge": local, "big": local, "bad": {**local, "cmd_on": "relay %x"},
                 "counted": {**local, "port_count": 4, "retries": 0}},
        "aliases": {"far": {"hostname": "big", "port": 60}, "lost": {"hostname": "my pdu", "port": 1},
                    "odd": {"hostname": "big"}},
        "extra": {},
    })
    assert result.config["pdudaemon"] == {"listen": "[::1]:16421"}
    assert set(result.config["pdus"]) == {"big", "counted"}
    assert result.config["pdus"]["big"]["ports"] == 60  # covers its alias
    assert result.config["pdus"]["counted"]["ports"] == 4 and "retries" not in result.config["pdus"]["counted"]
    assert DEFAULT_PORTS == 48
    assert "rename it" in result.skipped["my pdu"][0] and "reserved" in result.skipped["bridge"][0]
    assert "%x" in result.skipped["bad"][0]
    assert result.config["aliases"] == {"far": {"pdu": "big", "port": "60"}}
    assert set(result.skipped_aliases) == {"lost", "odd"}
    assert any("dbfile" in n for n in result.notes) and any("'extra'" in n for n in result.notes)
    text = to_yaml(result, "pdudaemon.conf")
    assert "# NOT CONVERTED: alias lost: its PDU 'my pdu' was not converted" in text
    assert "retries 0 left out" in text
