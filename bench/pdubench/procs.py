"""The processes under test (mosquitto, pdumqtt, PDUDaemon) and what /proc says of them.

CPU time comes from ``/proc/<pid>/stat`` (utime+stime, plus the children's times that
the process has reaped, which is where the shell commands of workload (c) land), memory
and threads from ``/proc/<pid>/status``. Clock ticks are 10 ms, so CPU per command is
only meaningful over bursts of hundreds of commands.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> float:
    """Wait until 127.0.0.1:port accepts; return the monotonic time it did."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return time.monotonic()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g} s")
        time.sleep(0.01)


@dataclass(frozen=True)
class Cpu:
    own: float  # seconds of utime+stime
    children: float  # seconds of reaped children's utime+stime


def cpu(pid: int) -> Cpu:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of the man page); utime is field 14
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return Cpu((utime + stime) / TICK, (cutime + cstime) / TICK)


def memory(pid: int) -> dict[str, float]:
    """RSS and its peak so far in MB, and the thread count."""
    found: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                found["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                found["peak_rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                found["threads"] = int(line.split()[1])
    return found


def machine_busy() -> float:
    """CPU-seconds all cores spent busy since boot (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICK


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def machine() -> dict[str, Any]:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "kernel": os.uname().release, "load_at_start": loadavg()}


class Managed:
    """A child process with its log file; ``stop()`` ends it (terminate, then kill)."""

    name = "process"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def _spawn(self, argv: list[str], log: Path, **kwargs: Any) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         **kwargs)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> Cpu:
        return cpu(self.pid)

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.name} is not running (see {self.log}):\n{tail}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Mosquitto(Managed):
    """The broker every MQTT system uses.

    Tuned (the default, like the shipped ``mosquitto.conf``): no queue or in-flight limit,
    so no burst loses a message, and TCP_NODELAY on its sockets. ``stock=True``: mosquitto's
    own defaults, as most labs run it (Nagle on, 1,000 queued and 20 in-flight messages per
    client).
    """

    name = "mosquitto"

    def __init__(self, workdir: Path, stock: bool = False) -> None:
        super().__init__()
        self.stock = stock
        self.port = free_port()
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        kind = "stock" if stock else "tuned"
        conf = workdir / f"mosquitto-{kind}.conf"
        tuning = "" if stock else "max_queued_messages 0\nmax_inflight_messages 0\nset_tcp_nodelay true\n"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{tuning}persistence false\n"
                        "log_dest stderr\nlog_type error\nlog_type warning\n")
        self._spawn([exe, "-c", str(conf)], workdir / f"mosquitto-{kind}.log")
        wait_listening(self.port, self.proc, 10, "mosquitto")  # type: ignore[arg-type]


class Responder(Managed):
    """The request/reply floor: ``responder.py`` (a bare paho responder) as a child process."""

    name = "responder"

    def __init__(self, workdir: Path, tag: str, broker_port: int, topic_filter: str, delay: float = 0.0) -> None:
        super().__init__()
        script = Path(__file__).with_name("responder.py")
        self._spawn([sys.executable, str(script), str(broker_port), topic_filter, str(delay)],
                    workdir / f"responder-{tag}.log")


class PduMqtt(Managed):
    """``pdumqtt daemon -c generated.yaml --broker 127.0.0.1:PORT`` as a child process."""

    name = "pdumqtt"

    def __init__(self, exe: str, config: dict[str, Any], workdir: Path, tag: str, broker_port: int) -> None:
        super().__init__()
        self.config = config
        path = workdir / f"pdumqtt-{tag}.yaml"
        path.write_text(json.dumps(config, indent=1))  # JSON is YAML
        self._spawn([exe, "daemon", "-c", str(path), "--broker", f"127.0.0.1:{broker_port}"],
                    workdir / f"pdumqtt-{tag}.log")


class PduDaemon(Managed):
    """PDUDaemon 1.1.1 on its HTTP listener on 127.0.0.1, from the bench's own venv."""

    name = "PDUDaemon"

    def __init__(self, exe: str, pdus: dict[str, Any], workdir: Path, tag: str, loglevel: str) -> None:
        super().__init__()
        self.port = free_port()
        settings = {"daemon": {"hostname": "127.0.0.1", "port": self.port, "listener": "http",
                               "logging_level": loglevel}, "pdus": pdus}
        path = workdir / f"pdudaemon-{tag}.conf"
        path.write_text(json.dumps(settings, indent=1))
        self._spawn([exe, "--conf", str(path)], workdir / f"pdudaemon-{tag}.log")

    def wait_ready(self, timeout: float) -> float:
        return wait_listening(self.port, self.proc, timeout, "PDUDaemon")  # type: ignore[arg-type]
