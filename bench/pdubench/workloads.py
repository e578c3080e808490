"""Workloads (a)-(e), each run on every system, alternating.

A system is pdumqtt, PDUDaemon, the reply floor (a bare paho responder answering on the
v5 Response Topic, in a process of its own) or the echo floor (the requester publishing to
a topic it subscribes to), behind one interface: ``sequential`` and ``burst`` take a list
of commands ``(pdu, port, on)`` and return a :class:`Round` with the answers, the CPU the
daemon and the broker spent, and what the driver journal says (calls run, overlaps within
a PDU).

Every figure runs ``Settings.rounds`` rounds, systems alternating; where the rounds of a
workload's key figure spread wide, more rounds follow, up to ``Settings.max_rounds``.
(a) and (b) also run on a stock mosquitto, beside the tuned one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdubench import procs
from pdubench.clients import MqttClient, Outcome, http_burst, http_sequential

Command = tuple[str, int, bool]

# every process of ours, so that the load of the rest of the machine can be told apart
LIVE: list[procs.Managed] = []


def _our_cpu() -> float:
    total = sum(os.times()[:4])
    for p in LIVE:
        if p.proc is not None and p.proc.poll() is None:
            c = p.cpu()
            total += c.own + c.children
    return total


@dataclass
class Round:
    system: str
    outcome: Outcome
    wall: float
    cpu: float | None = None  # the daemon's own CPU seconds
    cpu_children: float | None = None  # its reaped children's (shell commands)
    broker_cpu: float | None = None
    other_cores: float = 0.0  # cores the rest of the machine kept busy meanwhile
    driver_calls: int | None = None
    overlaps: int | None = None

    def figures(self) -> dict[str, Any]:
        n = len(self.outcome.sent)
        lat = self.outcome.latencies
        answered = n - self.outcome.lost
        calls_missing = 0 if self.driver_calls is None else max(0, answered - self.driver_calls)
        out: dict[str, Any] = {
            "system": self.system, "commands": n, "lost": self.outcome.lost + calls_missing,
            "errors": self.outcome.errors, "overlaps": self.overlaps,
            "span_s": self.outcome.span, "per_s": answered / self.outcome.span if answered else 0.0,
            "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
            "other_cores": round(self.other_cores, 2),
        }
        if self.cpu is not None:
            out["cpu_ms_per_cmd"] = self.cpu * 1000 / n
        if self.cpu_children:
            out["children_cpu_ms_per_cmd"] = self.cpu_children * 1000 / n
        if self.broker_cpu is not None:
            out["broker_cpu_ms_per_cmd"] = self.broker_cpu * 1000 / n
        return out


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] * 1000


class Journal:
    """Reads a driver journal incrementally: calls run and overlaps within a PDU."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def skip(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def check(self) -> tuple[int, int]:
        if not self.path.exists():
            return 0, 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        by_pdu: dict[str, list[tuple[float, float]]] = defaultdict(list)
        calls = 0
        for line in data[:end].splitlines():
            entry = json.loads(line)
            if entry["action"] in ("on", "off"):
                calls += 1
            by_pdu[entry["pdu"]].append((entry["start"], entry["end"]))
        overlaps = 0
        for spans in by_pdu.values():
            spans.sort()
            busy_until = float("-inf")
            for start, end in spans:
                if start < busy_until:
                    overlaps += 1
                busy_until = max(busy_until, end)
        return calls, overlaps


class System:
    name = "?"
    uses_broker = True
    daemon: procs.Managed | None = None
    journal: Journal | None = None

    def __init__(self, broker: procs.Mosquitto) -> None:
        self.broker = broker

    def _measure(self, run: Any, commands: list[Command], timeout: float) -> Round:
        if self.daemon is not None:
            self.daemon.check_alive()
        if self.journal is not None:
            self.journal.skip()
        before = self.daemon.cpu() if self.daemon else None
        broker_before = self.broker.cpu().own
        busy_before, ours_before, t0 = procs.machine_busy(), _our_cpu(), time.monotonic()
        outcome = run(commands, timeout)
        # let the daemon finish its publishing after the last answer, so it is counted
        time.sleep(0.05)
        wall = time.monotonic() - t0
        result = Round(self.name, outcome, wall)
        result.other_cores = max(0.0, (procs.machine_busy() - busy_before) - (_our_cpu() - ours_before)) / wall
        if self.uses_broker:
            result.broker_cpu = self.broker.cpu().own - broker_before
        if self.daemon is not None and before is not None:
            after = self.daemon.cpu()
            result.cpu, result.cpu_children = after.own - before.own, after.children - before.children
        if self.journal is not None:
            result.driver_calls, result.overlaps = self.journal.check()
        return result

    quiet: float | None = None  # stop waiting for a burst's answers after this long without one

    def sequential(self, commands: list[Command], timeout: float = 30) -> Round:
        return self._measure(self._sequential, commands, timeout)

    def burst(self, commands: list[Command], timeout: float = 120) -> Round:
        return self._measure(self._burst, commands, timeout)

    def _quiet_for(self, broker: procs.Mosquitto) -> float | None:
        # a stock mosquitto drops what overflows its queue: do not wait the timeout for it
        return 2.0 if broker.stock else None

    def _sequential(self, commands: list[Command], timeout: float) -> Outcome:
        raise NotImplementedError

    def _burst(self, commands: list[Command], timeout: float) -> Outcome:
        raise NotImplementedError

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            LIVE.remove(self.daemon)


_tags = iter(range(10**9))


class EchoFloor(System):
    """The bare broker: the requester publishing QoS 1 to a topic it subscribes to."""

    name = "echo floor"

    def __init__(self, broker: procs.Mosquitto, tag: str) -> None:
        super().__init__(broker)
        self.quiet = self._quiet_for(broker)
        self.topic = f"bench/floor/{tag}"
        self.client = MqttClient(broker.port, f"bench-floor-{tag}")
        self.client.subscribe(self.topic)

    def _requests(self, commands: list[Command]) -> list[tuple[str, bytes]]:
        return [(self.topic, b"ON" if on else b"OFF") for _, _, on in commands]

    def _sequential(self, commands: list[Command], timeout: float) -> Outcome:
        return self.client.sequential(self._requests(commands), None, f"f{next(_tags)}", lambda p: True, timeout)

    def _burst(self, commands: list[Command], timeout: float) -> Outcome:
        return self.client.burst(self._requests(commands), None, f"f{next(_tags)}", lambda p: True, timeout,
                                 self.quiet)

    def stop(self) -> None:
        self.client.close()


def _ack_ok(payload: bytes) -> bool:
    return json.loads(payload).get("status") == "ok"


class ReplyFloor(System):
    """The request/reply floor: the same requester as pdumqtt's, on the same broker, and a
    bare paho responder (``responder.py``, a process of its own) that answers each request
    on its Response Topic with its Correlation Data (``delay`` seconds after the request, for
    (d)). Its CPU is the responder's."""

    name = "reply floor"

    def __init__(self, broker: procs.Mosquitto, workdir: Path, tag: str, delay: float = 0.0) -> None:
        super().__init__(broker)
        self.quiet = self._quiet_for(broker)
        self.base = f"bench-rr-{tag}"
        self.reply = f"bench/reply/rr-{tag}"
        self.client = MqttClient(broker.port, f"bench-rr-{tag}")
        self.client.subscribe(self.reply)
        self.daemon = procs.Responder(workdir, tag, broker.port, f"{self.base}/+/+/set", delay)
        LIVE.append(self.daemon)
        # the responder subscribes once connected; until then a request reaches nobody
        deadline = time.monotonic() + 20
        while not self.client.sequential([(f"{self.base}/p/1/set", b"ON")], self.reply, f"r{next(_tags)}",
                                         _ack_ok, 0.5 + delay).latencies:
            self.daemon.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the reply floor's responder did not answer within 20 s (see {self.daemon.log})")

    def _requests(self, commands: list[Command]) -> list[tuple[str, bytes]]:
        return [(f"{self.base}/{pdu}/{port}/set", b"ON" if on else b"OFF") for pdu, port, on in commands]

    def _sequential(self, commands: list[Command], timeout: float) -> Outcome:
        return self.client.sequential(self._requests(commands), self.reply, f"r{next(_tags)}", _ack_ok, timeout)

    def _burst(self, commands: list[Command], timeout: float) -> Outcome:
        return self.client.burst(self._requests(commands), self.reply, f"r{next(_tags)}", _ack_ok, timeout,
                                 self.quiet)

    def stop(self) -> None:
        super().stop()
        self.client.close()


class PduMqttSystem(System):
    """pdumqtt as a child process; every command carries a v5 Response Topic."""

    name = "pdumqtt"

    def __init__(self, broker: procs.Mosquitto, exe: str, workdir: Path, tag: str, pdus: dict[str, Any],
                 extra: dict[str, Any] | None = None, journal: Path | None = None) -> None:
        super().__init__(broker)
        self.quiet = self._quiet_for(broker)
        self.base = f"bench-{tag}"
        self.reply = f"bench/reply/{tag}"
        self.journal = Journal(journal) if journal else None
        self.client = MqttClient(broker.port, f"bench-pdumqtt-{tag}")
        self.client.subscribe(self.reply)
        config = {"mqtt": {"base_topic": self.base, "client_id": f"pdumqtt-{tag}", "max_command_age": 3600},
                  "pdus": pdus, **(extra or {})}
        self.daemon = procs.PduMqtt(exe, config, workdir, tag, broker.port)
        LIVE.append(self.daemon)

    def wait_online(self, timeout: float) -> float:
        """Wait for every PDU's availability ``online``; return the time the last one came."""
        expected = set(self.daemon.config["pdus"])  # type: ignore[union-attr]
        seen: dict[str, float] = {}

        def note(message: Any, now: float) -> None:
            pdu = message.topic.split("/")[-2]
            if message.payload == b"online":
                seen.setdefault(pdu, now)

        self.client.on_other = note
        self.client.subscribe(f"{self.base}/+/availability")
        if not self.client.pump(lambda: expected <= seen.keys(), timeout):
            self.daemon.check_alive()  # type: ignore[union-attr]
            raise RuntimeError(f"pdumqtt: {len(expected - seen.keys())} PDUs not online after {timeout:g} s")
        self.client.on_other = None
        self.client.client.unsubscribe(f"{self.base}/+/availability")
        return max(seen.values())

    def _requests(self, commands: list[Command]) -> list[tuple[str, bytes]]:
        return [(f"{self.base}/{pdu}/{port}/set", b"ON" if on else b"OFF") for pdu, port, on in commands]

    def _sequential(self, commands: list[Command], timeout: float) -> Outcome:
        return self.client.sequential(self._requests(commands), self.reply, f"m{next(_tags)}", _ack_ok, timeout)

    def _burst(self, commands: list[Command], timeout: float) -> Outcome:
        return self.client.burst(self._requests(commands), self.reply, f"m{next(_tags)}", _ack_ok, timeout,
                                 self.quiet)

    def stop(self) -> None:
        super().stop()
        self.client.close()


class PduDaemonSystem(System):
    """PDUDaemon on its HTTP listener; its response comes once the driver has run."""

    name = "PDUDaemon"
    uses_broker = False

    def __init__(self, broker: procs.Mosquitto, exe: str, workdir: Path, tag: str, pdus: dict[str, Any],
                 loglevel: str, journal: Path | None = None) -> None:
        super().__init__(broker)
        self.journal = Journal(journal) if journal else None
        self.daemon = procs.PduDaemon(exe, pdus, workdir, tag, loglevel)
        LIVE.append(self.daemon)

    def wait_ready(self, timeout: float) -> float:
        return self.daemon.wait_ready(timeout)  # type: ignore[union-attr]

    @staticmethod
    def _paths(commands: list[Command]) -> list[str]:
        return [f"/power/control/{'on' if on else 'off'}?hostname={pdu}&port={port}" for pdu, port, on in commands]

    def _sequential(self, commands: list[Command], timeout: float) -> Outcome:
        return http_sequential(self.daemon.port, self._paths(commands), timeout)  # type: ignore[union-attr]

    def _burst(self, commands: list[Command], timeout: float) -> Outcome:
        return http_burst(self.daemon.port, self._paths(commands), timeout)  # type: ignore[union-attr]


# --- the workloads -----------------------------------------------------------------------


@dataclass
class Settings:
    quick: bool
    workdir: Path
    pdumqtt_exe: str
    pdudaemon_exe: str
    loglevel: str
    broker: procs.Mosquitto
    rounds: int
    only: str
    max_rounds: int = 0  # rounds a figure may grow to where its spread is wide (0: rounds x 2)
    wide: float = 0.2  # (max - min) / median of the key figure's rounds above which rounds are added
    results: list[dict[str, Any]] = field(default_factory=list)
    _stock: procs.Mosquitto | None = None

    def log(self, message: str) -> None:
        print(f"bench: {message}", flush=True)

    def stock_broker(self) -> procs.Mosquitto:
        """A second mosquitto with its stock settings, started the first time it is asked for."""
        if self._stock is None:
            self._stock = procs.Mosquitto(self.workdir, stock=True)
            LIVE.append(self._stock)
            self.log(f"stock mosquitto on 127.0.0.1:{self._stock.port}")
        return self._stock


def spread(n: int, pdus: int, ports: int) -> list[Command]:
    """n commands over pdus x ports, round robin, alternating ON and OFF per outlet."""
    return [(f"p{i % pdus:04d}", (i // pdus) % ports + 1, (i // (pdus * ports)) % 2 == 0) for i in range(n)]


def _rotate(systems: list[System], r: int) -> list[System]:
    r %= len(systems)
    return systems[r:] + systems[:r]


def _relative_spread(values: list[float]) -> float:
    finite = [v for v in values if v == v]  # not NaN
    if len(finite) < 2:
        return 0.0
    middle = statistics.median(finite)
    return (max(finite) - min(finite)) / middle if middle else 0.0


def _run_rounds(s: Settings, systems: list[System], run: Callable[[System], Round], key: str,
                rounds: int, max_rounds: int) -> list[Round]:
    """``rounds`` rounds of every system, alternating; then one more at a time while any
    system's ``key`` figure spreads wide over its rounds, up to ``max_rounds``."""
    done: list[Round] = []
    r = 0
    while True:
        done.extend(run(system) for system in _rotate(systems, r))
        r += 1
        if r < rounds:
            continue
        wide = {system.name: _relative_spread([x.figures()[key] for x in done if x.system == system.name])
                for system in systems}
        wide = {name: value for name, value in wide.items() if value > s.wide}
        if not wide or r >= max_rounds:
            return done
        s.log(f"  {key} spread wide over {r} rounds ("
              + ", ".join(f"{name} {value:.0%}" for name, value in wide.items()) + "): one more round")


# the figures whose rounds' spread the table prints beside the pooled or median figure
SPREAD_KEYS = ("p50_ms", "p95_ms", "p99_ms", "per_s", "span_s", "cpu_ms_per_cmd", "children_cpu_ms_per_cmd",
               "broker_cpu_ms_per_cmd")


def _record(s: Settings, workload: str, label: str, rounds: list[Round], **extra: Any) -> None:
    """Pool the rounds of each system into one result: percentiles over all the answers,
    medians of the per-round throughput and CPU, sums of the correctness counts, and the
    min/median/max over the rounds of each figure."""
    by_system: dict[str, list[Round]] = defaultdict(list)
    for r in rounds:
        by_system[r.system].append(r)
    for system, rs in by_system.items():
        per_round = [r.figures() for r in rs]
        lat = [x for r in rs for x in r.outcome.latencies]
        entry: dict[str, Any] = {"workload": workload, "label": label, "system": system, "rounds": per_round,
                                 "round_count": len(rs),
                                 "commands": sum(f["commands"] for f in per_round),
                                 "lost": sum(f["lost"] for f in per_round),
                                 "errors": sum(f["errors"] for f in per_round),
                                 "overlaps": None if rs[0].overlaps is None else sum(r.overlaps or 0 for r in rs),
                                 "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
                                 "spread": {}, **extra}
        for key in ("per_s", "span_s", "cpu_ms_per_cmd", "children_cpu_ms_per_cmd", "broker_cpu_ms_per_cmd",
                    "other_cores"):
            values = [f[key] for f in per_round if key in f]
            if values:
                entry[key] = statistics.median(values)
        for key in SPREAD_KEYS:
            values = [f[key] for f in per_round if key in f and f[key] == f[key]]
            if len(values) > 1:
                entry["spread"][key] = [min(values), statistics.median(values), max(values)]
        s.results.append(entry)
        cpu = f", daemon CPU {entry['cpu_ms_per_cmd']:.3f} ms/cmd" if "cpu_ms_per_cmd" in entry else ""
        p50 = entry["spread"].get("p50_ms")
        rounds_p50 = f" (rounds {p50[0]:.2f}/{p50[1]:.2f}/{p50[2]:.2f})" if p50 else ""
        s.log(f"  ({workload}) {label}: {system:11s} p50 {entry['p50_ms']:.2f} ms{rounds_p50}, "
              f"p99 {entry['p99_ms']:.2f} ms, {entry.get('per_s', 0):.0f}/s{cpu}, {len(rs)} rounds, "
              f"lost {entry['lost']}, overlaps {entry['overlaps']}")


def _noop_pdus(n: int, ports: int, journal: Path, latency: float = 0.0) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same PDUs for pdumqtt (sim driver) and PDUDaemon (the bench's no-op driver)."""
    ours = {f"p{i:04d}": {"driver": "sim", "ports": ports, "latency": latency, "journal": str(journal) + ".pdumqtt"}
            for i in range(n)}
    theirs = {f"p{i:04d}": {"driver": "bench_noop", "latency": latency, "journal": str(journal) + ".pdudaemon"}
              for i in range(n)}
    return ours, theirs


def _start(s: Settings, broker: procs.Mosquitto, tag: str, ours: dict[str, Any], theirs: dict[str, Any] | None,
           journal: Path | None, floors: bool, online_timeout: float = 60, reply_delay: float = 0.0) -> list[System]:
    """pdumqtt on ``broker``; PDUDaemon unless ``theirs`` is None; both floors if asked for
    (with ``reply_delay``, only the reply floor, answering that late: the echo cannot wait).
    Appends to the list as it starts, so a failure part-way still leaves LIVE to stop the rest."""
    mq = PduMqttSystem(broker, s.pdumqtt_exe, s.workdir, tag, ours, None,
                       journal=Path(str(journal) + ".pdumqtt") if journal else None)
    systems: list[System] = [mq]
    pd = None
    if theirs is not None:
        pd = PduDaemonSystem(broker, s.pdudaemon_exe, s.workdir, tag, theirs, s.loglevel,
                             journal=Path(str(journal) + ".pdudaemon") if journal else None)
        systems.append(pd)
    if floors:
        systems.append(ReplyFloor(broker, s.workdir, tag, reply_delay))
        if not reply_delay:
            systems.append(EchoFloor(broker, tag))
    mq.wait_online(online_timeout)
    if pd is not None:
        pd.wait_ready(online_timeout)
    return systems


def _stop(systems: list[System]) -> None:
    for system in systems:
        system.stop()


def _sequential(s: Settings, label: str, tag: str, broker: procs.Mosquitto, with_pdudaemon: bool) -> None:
    s.log(f"(a) {label}")
    journal = s.workdir / f"journal-{tag}"
    ours, theirs = _noop_pdus(1, 8, journal)
    systems = _start(s, broker, tag, ours, theirs if with_pdudaemon else None, journal, floors=True)
    try:
        for system in systems:
            system.sequential(spread(100, 1, 8))
        rounds = _run_rounds(s, systems, lambda system: system.sequential(spread(200, 1, 8)), "p50_ms",
                             s.rounds, s.max_rounds)
        _record(s, "a", label, rounds)
    finally:
        _stop(systems)


def workload_a(s: Settings) -> None:
    """(a) 200 sequential commands, no-op driver: latency from send to answer; then the
    same on a stock mosquitto (pdumqtt and the floors: PDUDaemon does not use the broker)."""
    label = "200 sequential, 1 PDU x 8, no-op"
    _sequential(s, label, "a", s.broker, with_pdudaemon=True)
    _sequential(s, label + ", stock mosquitto", "a-stock", s.stock_broker(), with_pdudaemon=False)


def _bursts(s: Settings, workload: str, label: str, tag: str, n: int, pdus: int, ports: int,
            ours: dict[str, Any], theirs: dict[str, Any] | None, journal: Path | None, with_floor: bool,
            rounds: int, warm: int, timeout: float, max_rounds: int | None = None,
            broker: procs.Mosquitto | None = None, key: str = "per_s", reply_delay: float = 0.0,
            **extra: Any) -> None:
    s.log(f"({workload}) {label}")
    systems = _start(s, broker or s.broker, tag, ours, theirs, journal, floors=with_floor, reply_delay=reply_delay)
    try:
        for system in systems:
            system.burst(spread(warm, pdus, ports), timeout)
        done = _run_rounds(s, systems, lambda system: system.burst(spread(n, pdus, ports), timeout), key,
                           rounds, max_rounds or rounds)
        _record(s, workload, label, done, **extra)
    finally:
        _stop(systems)


def workload_b(s: Settings) -> None:
    """(b) 2,000 commands at once over 1, 10 and 50 PDUs x 8 ports, no-op driver; then on a
    stock mosquitto (at 1 PDU only with --quick), where what overflows its queue is lost."""
    for pdus in (1, 10, 50):
        journal = s.workdir / f"journal-b{pdus}"
        ours, theirs = _noop_pdus(pdus, 8, journal)
        _bursts(s, "b", f"2,000 at once, {pdus} PDU{'s' if pdus > 1 else ''} x 8, no-op", f"b{pdus}", 2000, pdus, 8,
                ours, theirs, journal, with_floor=True, rounds=s.rounds, warm=300, timeout=120,
                max_rounds=s.max_rounds, pdu_count=pdus)
    for pdus in (1,) if s.quick else (1, 10, 50):
        journal = s.workdir / f"journal-b{pdus}-stock"
        ours, _ = _noop_pdus(pdus, 8, journal)
        _bursts(s, "b", f"2,000 at once, {pdus} PDU{'s' if pdus > 1 else ''} x 8, no-op, stock mosquitto",
                f"b{pdus}-stock", 2000, pdus, 8, ours, None, journal, with_floor=True, rounds=s.rounds, warm=300,
                timeout=120, max_rounds=s.max_rounds, broker=s.stock_broker(), pdu_count=pdus)


SHELL_SECONDS = "0.01"


def workload_c(s: Settings) -> None:
    """(c) the same with a ~10 ms shell command in both daemons (each daemon's own localcmdline)."""
    n = 200 if s.quick else 2000
    for pdus in (1, 10, 50):
        ours = {f"p{i:04d}": {"driver": "localcmdline", "ports": 8, "cmd_on": ["sleep", SHELL_SECONDS],
                              "cmd_off": ["sleep", SHELL_SECONDS]} for i in range(pdus)}
        # PDUDaemon formats the port into the command with %; the shell comment takes it
        theirs = {f"p{i:04d}": {"driver": "localcmdline", "cmd_on": f"sleep {SHELL_SECONDS} # %s",
                                "cmd_off": f"sleep {SHELL_SECONDS} # %s"} for i in range(pdus)}
        _bursts(s, "c", f"{n:,} at once, {pdus} PDU{'s' if pdus > 1 else ''} x 8, `sleep {SHELL_SECONDS}`",
                f"c{pdus}", n, pdus, 8, ours, theirs, None, with_floor=False, rounds=1 if s.quick else 2,
                warm=16, timeout=300, pdu_count=pdus)


def workload_d(s: Settings) -> None:
    """(d) 500 PDUs with a 0.5 s driver, one command each, all at once: time until the last
    answer; its floor is the bare responder answering each request 0.5 s after it came."""
    journal = s.workdir / "journal-d"
    ours, theirs = _noop_pdus(500, 1, journal, latency=0.5)
    _bursts(s, "d", "500 PDUs x 0.5 s driver, one command each", "d", 500, 500, 1, ours, theirs, journal,
            with_floor=True, rounds=1 if s.quick else 3, warm=500, timeout=60, key="span_s",
            reply_delay=0.5, driver_delay_s=0.5)


SCALE_PDUS = {f"p{i:04d}": {"driver": "sim", "ports": 24} for i in range(1000)}
# start and serve, no discovery: brief, since each PDU still costs a thread or two
HUGE_PDUS = {f"p{i:05d}": {"driver": "sim", "ports": 8} for i in range(10_000)}


def _retained_count(s: Settings, pattern: str, tag: str) -> int:
    """How many retained messages the broker holds under ``pattern``: a fresh subscriber's,
    up to a marker it publishes after subscribing (the broker sends the retained ones first)."""
    reader = MqttClient(s.broker.port, f"bench-count-{tag}")
    marker, count, done = f"bench/marker/{tag}", [0], []

    def note(message: Any, now: float) -> None:
        if message.topic == marker:
            done.append(now)
        elif message.retain and message.payload:
            count[0] += 1

    reader.on_other = note
    try:
        reader.subscribe(pattern, marker)
        reader.client.publish(marker, b"x", qos=1)
        if not reader.pump(lambda: bool(done), 120):
            raise RuntimeError(f"(e) reading the retained {pattern} took over 120 s")
    finally:
        reader.close()
    return count[0]


def _scale_pdumqtt(s: Settings, label: str, tag: str, pdus: dict[str, Any], discovery: str | None,
                   idle: float) -> None:
    """pdumqtt with many PDUs: time until every PDU is online and (``discovery``: "entity" or
    "device") until the broker holds every discovery config; one command's answer; memory, the
    CPU start-up took, idle CPU."""
    prefix = f"bench-ha-{tag}"
    extra = {} if discovery is None else \
        {"homeassistant": {"discovery": True, "prefix": prefix, "device_based": discovery == "device"}}

    # The watcher subscribes before the daemon starts, so it sees everything live. Not to the
    # configs themselves: a paho client reading 48,000 of them fell seconds behind the broker and
    # timed itself. The daemon publishes a marker after its configs (discovery's own sync), so
    # when the broker hands the watcher that marker, it has every config before it.
    watcher = MqttClient(s.broker.port, f"bench-watch-{tag}")
    online: dict[str, float] = {}
    synced: list[float] = []

    def note(message: Any, now: float) -> None:
        if "/bridge/discovery-sync/" in message.topic:
            if message.topic.rsplit("/", 1)[-1].startswith("done"):
                synced.append(now)
        elif message.payload == b"online":
            online.setdefault(message.topic, now)

    watcher.on_other = note
    watcher.subscribe(f"bench-{tag}/+/availability", f"bench-{tag}/bridge/discovery-sync/#")
    mq = PduMqttSystem(s.broker, s.pdumqtt_exe, s.workdir, tag, pdus, extra)
    daemon = mq.daemon
    assert daemon is not None
    try:
        if not watcher.pump(lambda: len(online) >= len(pdus), 300):
            daemon.check_alive()
            raise RuntimeError(f"(e) only {len(online)} of {len(pdus)} PDUs online after 300 s")
        t_online = max(online.values()) - daemon.started
        t_discovery = configs = None
        if discovery is not None and importlib.util.find_spec("pdumqtt.homeassistant") is not None:
            if not watcher.pump(lambda: bool(synced), 120):
                daemon.check_alive()
                raise RuntimeError("(e) pdumqtt's discovery did not finish within 120 s")
            t_discovery = synced[0] - daemon.started
        start_cpu = daemon.cpu().own  # start-up, until online and discovery published
        if discovery is not None:
            configs = _retained_count(s, f"{prefix}/#", tag)
        first = next(iter(pdus))
        answered = mq.sequential([(first, 1, True)]).outcome.latencies
        watcher.pump(lambda: False, 1.0)
        mem = procs.memory(daemon.pid)
        before = daemon.cpu().own
        watcher.pump(lambda: False, idle)  # keep reading, or the broker would queue for us
        idle_pct = (daemon.cpu().own - before) / idle * 100
        entry = {"workload": "e", "label": label, "system": "pdumqtt", "online_s": t_online, "discovery": discovery,
                 "discovery_s": t_discovery, "discovery_topics": configs, "start_cpu_s": start_cpu,
                 "command_ms": answered[0] * 1000 if answered else None, **mem,
                 "idle_cpu_pct": idle_pct, "idle_window_s": idle}
        s.results.append(entry)
        published = ("" if discovery is None else ", discovery not in this pdumqtt" if t_discovery is None
                     else f", discovery ({configs} configs) by {t_discovery:.2f} s")
        command = f"{answered[0] * 1000:.1f} ms" if answered else "no answer"
        s.log(f"  (e) {label}: pdumqtt online in {t_online:.2f} s{published}, {start_cpu:.2f} s CPU by then; "
              f"a command answered in {command}; RSS {mem['rss_mb']:.0f} MB (peak {mem['peak_rss_mb']:.0f}), "
              f"{mem['threads']:.0f} threads, idle CPU {idle_pct:.2f} %")
    finally:
        mq.stop()
        watcher.close()


def workload_e(s: Settings) -> None:
    """(e) 1,000 PDUs x 24 outlets, sim driver, Home Assistant discovery on: start-up and idle;
    then 10,000 PDUs x 8 outlets without discovery: start and serve.

    pdumqtt runs with one discovery config per entity (48,000: the default) and with one per
    device (``device_based``: 1,000); PDUDaemon once, with the same 1,000 PDUs.
    """
    idle = 5.0 if s.quick else 30.0
    label = "1,000 PDUs x 24 outlets, sim driver"
    s.log(f"(e) {label}")
    _scale_pdumqtt(s, label, "e", SCALE_PDUS, "entity", idle)
    _scale_pdumqtt(s, label + ", discovery per device", "e2", SCALE_PDUS, "device", idle)
    pdus = SCALE_PDUS
    theirs = {name: {"driver": "bench_noop"} for name in pdus}
    pd = PduDaemonSystem(s.broker, s.pdudaemon_exe, s.workdir, "e", theirs, s.loglevel)
    assert pd.daemon is not None
    try:
        t_ready = pd.wait_ready(120) - pd.daemon.started
        time.sleep(1.0)
        mem = procs.memory(pd.daemon.pid)
        before = pd.daemon.cpu().own
        time.sleep(idle)
        idle_pct = (pd.daemon.cpu().own - before) / idle * 100
        s.results.append({"workload": "e", "label": label, "system": "PDUDaemon", "online_s": t_ready, **mem,
                          "idle_cpu_pct": idle_pct, "idle_window_s": idle})
        s.log(f"  (e) PDUDaemon: listening in {t_ready:.2f} s (it does not talk to the PDUs at start), "
              f"RSS {mem['rss_mb']:.0f} MB, {mem['threads']:.0f} threads, idle CPU {idle_pct:.2f} %")
    finally:
        pd.stop()
    _scale_pdumqtt(s, "10,000 PDUs x 8 outlets, sim driver, no discovery", "e3", HUGE_PDUS, None, 2.0)


WORKLOADS = {"a": workload_a, "b": workload_b, "c": workload_c, "d": workload_d, "e": workload_e}
