"""``bench/run``: set up the venvs and the broker, run the workloads, print the table."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pdubench import env, procs, report
from pdubench.workloads import LIVE, WORKLOADS, Settings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and commands: about three minutes")
    parser.add_argument("--json", metavar="PATH", help="write every figure, per round too, as JSON")
    parser.add_argument("--markdown", metavar="PATH", help="write the table as Markdown (for the README)")
    parser.add_argument("--only", default="abcde", help="the workloads to run, e.g. 'ab' (default: abcde)")
    parser.add_argument("--rounds", type=int, help="measured rounds per figure (default 2 quick, 5 full)")
    parser.add_argument("--max-rounds", type=int,
                        help="rounds a figure of (a) or (b) grows to while its rounds spread more than 20%% "
                             "(default 4 quick, 10 full)")
    parser.add_argument("--pdudaemon-loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="PDUDaemon's logging_level (its default is INFO)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs, journals)")
    args = parser.parse_args(argv)
    # SIGTERM and Ctrl-C both go through the cleanup below, which stops every child
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = "bench/run " + shlex.join(argv)

    started = time.monotonic()
    machine = procs.machine()
    pdudaemon_exe = env.pdudaemon_exe()
    pdumqtt_exe = str(Path(sys.executable).parent / "pdumqtt")
    # a burst keeps one HTTP connection per command open, on both ends
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))

    workdir = Path(tempfile.mkdtemp(prefix="pdumqtt-bench-"))
    broker = procs.Mosquitto(workdir)
    LIVE.append(broker)
    settings = Settings(quick=args.quick, workdir=workdir, pdumqtt_exe=pdumqtt_exe,
                        pdudaemon_exe=str(pdudaemon_exe), loglevel=args.pdudaemon_loglevel, broker=broker,
                        rounds=args.rounds or (2 if args.quick else 5), only=args.only)
    settings.max_rounds = max(settings.rounds, args.max_rounds or (4 if args.quick else 10))
    settings.log(f"work directory {workdir}; mosquitto on 127.0.0.1:{broker.port}")
    try:
        for name in args.only:
            WORKLOADS[name](settings)
    finally:
        for process in reversed(LIVE):
            process.stop()
        if not args.keep:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)

    machine["load_at_end"] = procs.loadavg()
    other = [r["other_cores"] for e in settings.results for r in e.get("rounds", [])]
    venv_python = pdudaemon_exe.parent / "python"
    meta = {
        "command": command, "rounds": settings.rounds, "max_rounds": settings.max_rounds,
        "duration_s": time.monotonic() - started,
        "pdudaemon_loglevel": args.pdudaemon_loglevel, "machine": machine,
        "other_cores_median": statistics.median(other) if other else 0.0,
        "other_cores_max": max(other) if other else 0.0,
        "versions": {
            "pdumqtt": f"{env.pip_version(Path(sys.executable), 'pdumqtt')} ({env.git_describe()})",
            "pdudaemon": env.pip_version(venv_python, "pdudaemon"),
            "aiohttp": env.pip_version(venv_python, "aiohttp"),
            "paho-mqtt": env.pip_version(Path(sys.executable), "paho-mqtt"),
            "mosquitto": subprocess.run([broker_exe(), "-h"], capture_output=True, text=True).stdout.splitlines()[0],
            "python": platform.python_version(),
        },
    }
    table = report.rows(settings.results)
    print()
    print(report.preamble(meta))
    print()
    print(report.text_table(table))
    print("\nratios are pdumqtt's figure over the other's: under 1 is better for times and CPU, "
          "over 1 for completed/s.\nreply floor: the same requester and broker, a bare paho responder answering "
          "on the v5 response topic; echo floor: the requester publishing to itself.\n[min..max]: the spread "
          "over the rounds.\nlost/errors/overlaps: commands never answered or never run, "
          "answered with an error, driver calls that overlapped another on the same PDU.")
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "table": table, "results": settings.results},
                                              indent=1, default=str))
    if args.markdown:
        Path(args.markdown).write_text(report.preamble(meta).replace("\n", "  \n") + "\n\n"
                                       + report.markdown_table(table) + "\n")
    return 0


def broker_exe() -> str:
    import shutil
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"
