"""The PDUDaemon listener under abuse: slow clients are cut off at the request deadline,
open connections are capped, and a flood of connections in a process short of file
descriptors never reaches the MQTT side. Figures are printed (run with -s to see them).
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from support import free_port, tcp_exchange, wait_until, write_config


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the other side has closed (EOF or reset); never blocks."""
    try:
        return sock.recv(4096, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slowloris_connections_are_cut_at_the_deadline_and_others_are_served(daemon: Any, unique: str) -> None:
    timeout, cap, slow = 1.0, 20, 50
    d = daemon({"pdudaemon": {"listen": f"127.0.0.1:{free_port()}", "request_timeout": timeout,
                              "max_connections": cap},
                "pdus": {unique: {"driver": "sim", "ports": 2}}})
    address = d.listener.address
    started = time.monotonic()
    silent = [socket.create_connection(address, timeout=5) for _ in range(slow - 10)]
    for sock in silent:
        sock.sendall(b"GET /power/control/on?hostname=")  # and never the rest
    trickling = [socket.create_connection(address, timeout=5) for _ in range(10)]
    stop = threading.Event()

    def trickle() -> None:  # a byte every 0.2 s: every read succeeds, the request never ends
        while not stop.is_set():
            for sock in trickling:
                try:
                    sock.send(b"x")
                except OSError:
                    pass
            stop.wait(0.2)

    pacer = threading.Thread(target=trickle, daemon=True)
    pacer.start()
    try:
        asked = time.monotonic()
        assert tcp_exchange(address, f"{unique} 1 on".encode(), timeout=30) == b"ack\n"  # waits for a slot
        served_after = time.monotonic() - asked
        everyone = silent + trickling
        closed_at: dict[int, float] = {}

        def all_closed() -> bool:
            for n, sock in enumerate(everyone):
                if n not in closed_at and closed_by_peer(sock):
                    closed_at[n] = time.monotonic() - started
            return len(closed_at) == len(everyone)

        wait_until(all_closed, slow / cap * timeout + 10, "the listener to close every slow connection")
    finally:
        stop.set()
        pacer.join(5)
        for sock in silent + trickling:
            sock.close()
    held = max(closed_at.values())
    print(f"\nslowloris: {slow} slow connections ({len(trickling)} trickling a byte every 0.2 s), "
          f"cap {cap}, request_timeout {timeout:g} s: all closed by the listener within {held:.1f} s; "
          f"a good request waiting behind them was answered after {served_after:.1f} s; "
          f"faults counted {d.listener.faults.counts}")
    assert held < slow / cap * timeout + 5
    assert d.listener.faults.counts.get("slow", 0) >= slow
    assert tcp_exchange(address, f"{unique} 1 off".encode()) == b"ack\n"


def _limit_descriptors(limit: int) -> Any:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply


def test_a_connection_flood_in_a_process_short_of_descriptors_never_reaches_mqtt(
        broker: Any, probe: Any, tmp_path: Path, unique: str) -> None:
    limit, flood = 128, 300
    listen = free_port()
    path = write_config(tmp_path, {
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"fd-{uuid.uuid4().hex[:8]}"},
        "pdudaemon": {"listen": f"127.0.0.1:{listen}", "request_timeout": 3},
        "defaults": {"retries": 0, "timeout": 5},
        # a driver that needs new descriptors (pipes, a child process) for every command
        "pdus": {unique: {"driver": "localcmdline", "ports": 2, "cmd_on": ["true"], "cmd_off": ["true"]}},
    })
    proc = subprocess.Popen([sys.executable, "-m", "pdumqtt", "daemon", "-c", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_limit_descriptors(limit))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    flooders: list[socket.socket] = []
    try:
        probe.subscribe("pdu/bridge/state")
        probe.subscribe(f"pdu/{unique}/availability")
        wait_until(lambda: any("pdumqtt serving" in line for line in lines), 20, "the daemon to start")
        # the PDU's availability comes after the daemon's SUBSCRIBE: from then on a /set reaches it
        probe.wait_for(f"pdu/{unique}/availability", lambda m: m.payload == b"online", timeout=20)
        assert probe.request(f"pdu/{unique}/1/set", "ON", timeout=20)["status"] == "ok"
        opened_at = time.monotonic()
        for _ in range(flood):  # the kernel's backlog takes what the listener does not accept
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.connect(("127.0.0.1", listen))
            except BlockingIOError:
                pass
            flooders.append(sock)
        round_trips = []

        def mqtt_commands() -> None:
            for n in range(10):
                asked = time.monotonic()
                ack = probe.request(f"pdu/{unique}/{n % 2 + 1}/set", "ON" if n % 2 else "OFF", timeout=20)
                round_trips.append(time.monotonic() - asked)
                assert ack["status"] == "ok", ack

        mqtt_commands()  # while the flood is held
        closed: set[int] = set()

        def listener_cut_a_round() -> bool:  # accepted, held to request_timeout, closed: the cap's worth
            closed.update(n for n, sock in enumerate(flooders) if n not in closed and closed_by_peer(sock))
            return len(closed) >= 64

        wait_until(listener_cut_a_round, 30, "the listener to close a round of idle connections")
        mqtt_commands()  # and after the listener went through them
        for sock in flooders:
            sock.close()
        flooders.clear()
        assert tcp_exchange(("127.0.0.1", listen), f"{unique} 2 on".encode(), timeout=30) == b"ack\n"
        flood_for = time.monotonic() - opened_at
    finally:
        for sock in flooders:
            sock.close()
        proc.terminate()
        proc.wait(20)
        reader.join(10)
    text = "".join(lines)
    fd_lines = [line for line in lines if "Too many open files" in line]
    print(f"\ndescriptor pressure: RLIMIT_NOFILE {limit}, {flood} connections opened and held for "
          f"{flood_for:.1f} s, {len(closed)} of them cut by the listener at its deadline; "
          f"{len(round_trips)} MQTT commands meanwhile, slowest {max(round_trips) * 1000:.0f} ms; "
          f"log: {len(lines)} lines, {text.count('Traceback')} tracebacks, {len(fd_lines)} 'Too many open files'")
    assert "Traceback" not in text and not fd_lines
    assert "max_connections 64 lowered to 64" not in text  # 64 is half of 128: kept
    assert len(lines) < 100, text[-3000:]


def test_max_connections_is_lowered_to_half_the_descriptor_limit(broker: Any, tmp_path: Path, unique: str) -> None:
    listen = free_port()
    path = write_config(tmp_path, {
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"fd-{uuid.uuid4().hex[:8]}"},
        "pdudaemon": {"listen": f"127.0.0.1:{listen}", "max_connections": 1000},
        "pdus": {unique: {"driver": "sim", "ports": 1}}})
    proc = subprocess.Popen([sys.executable, "-m", "pdumqtt", "daemon", "-c", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_limit_descriptors(100))
    seen: list[str] = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if "pdumqtt serving" in line:
                break
        assert any("pdudaemon.max_connections 1000 lowered to 50" in line for line in seen), seen
        assert tcp_exchange(("127.0.0.1", listen), f"{unique} 1 on".encode(), timeout=30) == b"ack\n"
    finally:
        proc.terminate()
        proc.wait(20)
