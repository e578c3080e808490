"""The table (text and Markdown) and the JSON, from the results the workloads recorded.

A figure from two rounds or more carries its spread over the rounds, ``[min..max]``, the
figure itself being the median round (rates, CPU) or the pooled answers (percentiles).
The floor ratio is against the reply floor, the pattern a command follows.
"""

from __future__ import annotations

import math
from typing import Any

SYSTEMS = ("pdumqtt", "PDUDaemon", "reply floor", "echo floor")

# (workload, label, key, metric's name); a key that is a callable computes from the entry
METRICS: dict[str, list[tuple[str, str]]] = {
    "a": [("p50_ms", "latency p50 ms"), ("p99_ms", "latency p99 ms"), ("cpu_ms_per_cmd", "daemon CPU ms/cmd")],
    "b": [("per_s", "completed /s"), ("p50_ms", "latency p50 ms"), ("p95_ms", "latency p95 ms"),
          ("p99_ms", "latency p99 ms"), ("cpu_ms_per_cmd", "daemon CPU ms/cmd"),
          ("broker_cpu_ms_per_cmd", "broker CPU ms/cmd")],
    "c": [("per_s", "completed /s"), ("p50_ms", "latency p50 ms"), ("p99_ms", "latency p99 ms"),
          ("cpu_ms_per_cmd", "daemon CPU ms/cmd"), ("children_cpu_ms_per_cmd", "its children's CPU ms/cmd")],
    "d": [("span_s", "last answer s"), ("span_over_delay", "last answer / driver delay"),
          ("p50_ms", "latency p50 ms")],
    "e": [("online_s", "online s (PDUDaemon: listening)"), ("discovery_s", "discovery published s"),
          ("discovery_topics", "discovery configs retained"), ("start_cpu_s", "daemon CPU s until then"),
          ("command_ms", "then one command ms"), ("rss_mb", "RSS MB"), ("peak_rss_mb", "peak RSS MB"),
          ("threads", "threads"), ("idle_cpu_pct", "idle CPU %")],
}


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(entry: dict[str, Any] | None, key: str, value: Any) -> str:
    spread = (entry or {}).get("spread", {}).get(key)
    if spread is None or isinstance(value, str):
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(spread[0])}..{_fmt(spread[2])}]"


def _rounds(n: int) -> str:
    return "1 round" if n == 1 else f"{n} rounds"


def _ratio(a: Any, b: Any) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.2f}"


def rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """One row per workload figure: label, metric, the four systems, the two ratios."""
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for entry in results:
        if entry["workload"] == "d" and "span_s" in entry:
            entry["span_over_delay"] = entry["span_s"] / entry["driver_delay_s"]
        groups.setdefault((entry["workload"], entry["label"]), {})[entry["system"]] = entry
    table = []
    for (workload, label), by_system in groups.items():
        first = True
        for key, metric in METRICS[workload]:
            values = [by_system.get(system, {}).get(key) for system in SYSTEMS]
            if key == "discovery_s" and by_system.get("pdumqtt", {}).get("discovery") and values[0] is None:
                values[0] = "not published"
            if all(v is None for v in values):
                continue
            cells = [_cell(by_system.get(system), key, v) for system, v in zip(SYSTEMS, values, strict=True)]
            table.append([f"({workload}) {label}" if first else "", metric, *cells,
                          _ratio(values[0], values[1]), _ratio(values[0], values[2])])
            first = False
        if workload != "e":
            checks = []
            for system in SYSTEMS:
                entry = by_system.get(system)
                if entry is None:
                    checks.append("-")
                    continue
                overlaps = "-" if entry.get("overlaps") is None else entry["overlaps"]
                checks.append(f"{entry['lost']}/{entry['errors']}/{overlaps}")
            first_entry = next(iter(by_system.values()))
            table.append(["", f"lost/errors/overlaps of {first_entry['commands']:,} "
                              f"({_rounds(first_entry.get('round_count', 1))})", *checks, "", ""])
    return table


HEADER = ["workload", "figure", *SYSTEMS, "pdumqtt/PDUDaemon", "pdumqtt/reply floor"]


def text_table(table: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *table]) for i in range(len(HEADER))]
    lines = []
    for n, row in enumerate([HEADER, *table]):
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def markdown_table(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(HEADER) - 2)) + "|"]
    for row in table:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def preamble(meta: dict[str, Any]) -> str:
    m, v = meta["machine"], meta["versions"]
    return "\n".join([
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}",
        f"load: 1-min load average {m['load_at_start']:.2f} at start, {m['load_at_end']:.2f} at end; "
        f"other processes kept {meta['other_cores_median']:.2f} cores busy during the rounds "
        f"(median, max {meta['other_cores_max']:.2f})",
        f"versions: pdumqtt {v['pdumqtt']}, PDUDaemon {v['pdudaemon']} (aiohttp {v['aiohttp']}, "
        f"log level {meta['pdudaemon_loglevel']}), paho-mqtt {v['paho-mqtt']}, {v['mosquitto']}, "
        f"Python {v['python']}",
        f"command: {meta['command']} ({meta['rounds']} rounds per figure, up to {meta.get('max_rounds', '?')} "
        f"where they spread over 20%, systems alternating; "
        f"took {meta['duration_s']:.0f} s)",
    ])
