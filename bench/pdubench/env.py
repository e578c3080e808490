"""The bench's venvs: pdumqtt's (or the one already running), and PDUDaemon's own.

PDUDaemon 1.1.1 depends on ``systemd_python``, which needs the libsystemd headers to
build; where it cannot build, PDUDaemon is installed without it (it is only used for
``--journal`` logging) and its other dependencies are installed by name.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
VENVS = Path(os.environ.get("PDUMQTT_BENCH_VENVS", BENCH / ".venvs"))
PDUDAEMON = "pdudaemon==1.1.1"
# pdudaemon 1.1.1's requirements less systemd_python
PDUDAEMON_DEPS = ["aiohttp", "requests", "pexpect", "paramiko", "pyserial", "hidapi", "pysnmp>=7.1.22",
                  "pyasn1>=0.6.2", "pyusb", "pymodbus"]
NOOP = BENCH / "pdudaemon_noop"


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)


def _stamp(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
    for path in sorted([*NOOP.glob("*.py"), *NOOP.glob("*.toml")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def pdumqtt_python() -> Path | None:
    """None if this interpreter can run the bench; else the venv python to re-run it with."""
    try:
        import paho.mqtt.client  # noqa: F401

        import pdumqtt  # noqa: F401
        if (Path(sys.executable).parent / "pdumqtt").exists():
            return None
    except ImportError:
        pass
    target = VENVS / "pdumqtt"
    python = target / "bin" / "python"
    if not python.exists():
        _say(f"creating {target} (pdumqtt from {ROOT})")
        venv.create(target, with_pip=True)
    if not (target / "bin" / "pdumqtt").exists():
        done = _pip(python, "-e", str(ROOT))
        if done.returncode:
            raise SystemExit(f"bench: pip install -e {ROOT} failed:\n{done.stderr[-3000:]}")
    return python


def pdudaemon_exe() -> Path:
    """PDUDaemon 1.1.1 with the bench's no-op driver, installed once into its own venv."""
    target = VENVS / "pdudaemon"
    python = target / "bin" / "python"
    stamp_file = target / "bench-stamp"
    stamp = _stamp(PDUDAEMON, *PDUDAEMON_DEPS)
    if stamp_file.exists() and stamp_file.read_text() == stamp:
        return target / "bin" / "pdudaemon"
    if not python.exists():
        _say(f"creating {target} for {PDUDAEMON}")
        venv.create(target, with_pip=True)
    done = _pip(python, PDUDAEMON)
    if done.returncode:
        _say("pdudaemon's systemd_python did not build here; installing pdudaemon without it "
             "(it is only used for --journal logging)")
        for args in (["--no-deps", PDUDAEMON], PDUDAEMON_DEPS):
            done = _pip(python, *args)
            if done.returncode:
                raise SystemExit(f"bench: installing {PDUDAEMON} failed:\n{done.stderr[-3000:]}")
    done = _pip(python, "--force-reinstall", "--no-deps", str(NOOP))
    if done.returncode:
        raise SystemExit(f"bench: installing the no-op driver failed:\n{done.stderr[-3000:]}")
    stamp_file.write_text(stamp)
    return target / "bin" / "pdudaemon"


def pip_version(python: Path, package: str) -> str:
    done = subprocess.run([str(python), "-c", f"from importlib.metadata import version; print(version({package!r}))"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "?"


def git_describe() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return done.stdout.strip() or "?"
