"""Fake ``uhubctl`` and ``bcu`` executables for the tests, keeping the device's state in a JSON file.

:func:`install` writes them into a folder the test puts first on PATH, so the drivers'
real subprocess path runs. Each call appends its argv to ``calls`` in the state file;
the state says which hubs (location: port powers) or boards exist and whether they are
plugged in, and a test edits it to unplug or plug them.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

UHUBCTL = r'''
import fcntl, json, os, sys
path = os.environ["FAKE_USB_STATE"]
lock = open(path + ".lock", "w")
fcntl.flock(lock, fcntl.LOCK_EX)  # one tool run at a time changes the state
state = json.load(open(path))
args = sys.argv[1:]
state["calls"].append(["uhubctl", *args])
opts = dict(zip(args[::2], args[1::2]))
location, port, action = opts.get("--location"), opts.get("--port"), opts.get("--action")

def status(loc, only=None):
    hub = state["hubs"][loc]
    out = [f"Current status for hub {loc} [2109:2817 VIA Labs, Inc. USB2.0 Hub, USB 2.10, {len(hub)} ports, ppps]"]
    for n, powered in enumerate(hub, 1):
        if only is None or n == only:
            out.append(f"  Port {n}: " + ("0103 power enable connect [0bda:8153]" if powered else "0000 off"))
    return "\n".join(out)

def finish(code, text):
    json.dump(state, open(path, "w"))
    print(text)
    sys.exit(code)

hubs = {k: v for k, v in state["hubs"].items() if k not in state["unplugged"]}
if location is None:
    finish(0, "\n".join(status(loc) for loc in hubs))
if location not in hubs:
    finish(1, f"No compatible devices detected at location {location}!\nRun with -h to get usage info.")
if state.get("denied"):
    finish(1, f"Can't do control transfers on hub {location}: permission denied, run as root or add udev rules")
n = int(port)
before = status(location, n)
if action is None:
    finish(0, before)
if 1 <= n <= len(hubs[location]):  # as uhubctl does: a port past the hub's count is left alone, status 0
    state["hubs"][location][n - 1] = action == "on"
finish(0, before + f"\nSent power {action} request\nNew status for hub {location}\n" + status(location, n))
'''

BCU = r'''
import fcntl, json, os, sys
path = os.environ["FAKE_USB_STATE"]
lock = open(path + ".lock", "w")
fcntl.flock(lock, fcntl.LOCK_EX)  # one tool run at a time changes the state
state = json.load(open(path))
args = sys.argv[1:]
state["calls"].append(["bcu", *args])
opts = dict(a[1:].split("=", 1) for a in args if a.startswith("-") and "=" in a)
words = [a for a in args if not a.startswith("-")]

def finish(code, text):
    json.dump(state, open(path, "w"))
    print(text)
    sys.exit(code)

board = state["boards"].get(opts.get("id", "default"))
if board is None or not board["plugged"]:
    finish(1, "open ftdi device failed: no board found, check -id= (bcu lsftdi)")
if words[:1] == ["init"]:
    board["initialized"] = True
    board["bootmode"] = words[1] if len(words) > 1 else None
    finish(0, "board initialized")
if words[:1] == ["set_gpio"] and len(words) == 3:
    board["gpio"][words[1]] = words[2]
    finish(0, f"set {words[1]} {words[2]} successfully")
finish(1, "unknown command")
'''


def install(folder: Path, state: dict[str, Any]) -> Path:
    """Write the fake tools into ``folder`` and the initial ``state``; return the state file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in (("uhubctl", UHUBCTL), ("bcu", BCU)):
        exe = folder / name
        exe.write_text(f"#!{sys.executable}\n{body}")
        exe.chmod(0o755)
    path = folder / "state.json"
    path.write_text(json.dumps({"calls": [], "hubs": {}, "unplugged": [], "boards": {}, **state}))
    return path


def read(path: Path) -> dict[str, Any]:
    """The state, read under the tools' lock: a tool run by the daemon may be rewriting it."""
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return json.loads(path.read_text())


def change(path: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    """Edit the state under the tools' lock: ``edit(state)`` changes it in place."""
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text())
        edit(state)
        path.write_text(json.dumps(state))


def environment(folder: Path, path: Path) -> dict[str, str]:
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_USB_STATE": str(path)}
