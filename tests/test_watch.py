"""pdumqtt watch: live outlet view as a table and as JSON lines, run as a user would."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

from support import run_cli


def _watch(broker, *args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "pdumqtt", "watch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PDUMQTT_BROKER": broker.address, "COLUMNS": "160"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    # watch says so on stderr once the broker has confirmed its subscription
    assert "watching" in proc.stderr.readline()
    return proc, lines


def _next_event(lines: queue.Queue[str], predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            event = json.loads(lines.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            raise AssertionError("watch printed no matching event in time") from None
        if predicate(event):
            return event


def test_json_lines_follow_states_availability_and_acks(daemon, broker, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": 2}, f"{unique}-other": {"driver": "sim", "ports": 1}}})
    proc, lines = _watch(broker, "--json", unique)
    try:
        _next_event(lines, lambda e: e == {"event": "availability", "pdu": unique, "availability": "online"})
        assert run_cli("on", unique, "2", env={"PDUMQTT_BROKER": broker.address}).returncode == 0
        seen: list[dict] = []
        _next_event(lines, lambda e: seen.append(e) or (
            any(x["event"] == "ack" for x in seen) and {"event": "state", "pdu": unique, "port": "2",
                                                        "state": "ON"} in seen))
        ack = next(x for x in seen if x["event"] == "ack")
        assert ack["pdu"] == unique and ack["port"] == "2" and ack["ack"]["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    assert f"{unique}-other" not in "".join(lines.queue), "watch PDU shows that PDU only"


def _strip_terminal_codes(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", text)


def test_table_shows_every_outlet_and_the_last_ack(daemon, broker, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": ["dut1", "dut2"]}}})
    assert run_cli("off", unique, "dut2", env={"PDUMQTT_BROKER": broker.address}).returncode == 0
    # on a terminal, as a user runs it, so the table redraws as messages arrive and the test can wait for it
    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "pdumqtt", "watch"], stdout=terminal, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PDUMQTT_BROKER": broker.address, "TERM": "xterm"})
    os.close(terminal)
    screen: list[str] = []
    drawn = threading.Condition()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once watch has exited and the terminal is closed
                chunk = b""
            with drawn:
                if not chunk:
                    screen.append("\0")
                    drawn.notify_all()
                    return
                screen.append(chunk.decode(errors="replace"))
                drawn.notify_all()

    def wait_for(predicate, timeout: float = 10.0) -> str:
        with drawn:
            drawn.wait_for(lambda: "\0" in screen or predicate(_strip_terminal_codes("".join(screen)).splitlines()),
                           timeout)
            text = _strip_terminal_codes("".join(screen))
        assert predicate(text.splitlines()), f"the table never showed it:\n{text[-3000:]}"
        return text

    threading.Thread(target=read_terminal, daemon=True).start()
    try:
        assert "watching" in proc.stderr.readline()
        assert run_cli("on", unique, "dut1", env={"PDUMQTT_BROKER": broker.address}).returncode == 0
        text = wait_for(lambda lines: any(unique in line and "dut1" in line and "ON" in line and "on ok" in line
                                          for line in lines))
        dut1 = next(line for line in text.splitlines()[::-1] if unique in line and "dut1" in line)
        assert "ON" in dut1 and "online" in dut1 and "on ok" in dut1
        assert any(unique in line and "dut2" in line and "OFF" in line for line in text.splitlines())
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        os.close(master)


def test_no_broker_exits_3(unique):
    done = run_cli("watch", "--broker", "127.0.0.1:9", "--json", timeout=30)
    assert done.returncode == 3 and "cannot reach the broker" in done.stderr
