"""The real programs the integration tests run, each installed into a cached environment of its own.

``~/.cache/pdumqtt-it/<program>-<version>`` (``$PDUMQTT_IT_CACHE`` overrides the parent
folder), reused while its ``.installed`` marker matches the recipe below; a half-finished or
outdated one is removed and installed again. An install that fails raises ``InstallError``
with the installer's output: the tests that need it fail, they are not skipped.

Run it by hand to install (or check) them all before a test run::

    .venv/bin/python tests/integration/envs.py [homeassistant|node-red|labgrid|pdudaemon ...]
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

# The versions the integration tests run, and so the README's compatibility table
VERSIONS = {
    # the last Home Assistant release that runs on Python 3.11
    "homeassistant": "2024.3.3",
    "node-red": "4.1.8",
    "labgrid": "26.0.1",
    "pdudaemon": "1.1.1",
}
# Home Assistant's own pins, and what they leave open that 2024.3 cannot take (josepy 2
# dropped the API its acme package uses)
HA_EXTRA_CONSTRAINTS = ["josepy<2"]
# The integrations the tests load besides those Home Assistant always sets up (its bootstrap's
# default and core sets), their manifests' dependencies following: their requirements are
# installed with Home Assistant, so hass runs with --skip-pip and never installs at run time.
HA_INTEGRATIONS = ["mqtt", "http", "api", "config", "onboarding", "switch", "button"]
INSTALL_TIMEOUT = 900.0  # seconds, for one program, downloads included


class InstallError(RuntimeError):
    """A program could not be installed; the message carries the installer's output."""


def cache_root() -> Path:
    if os.environ.get("PDUMQTT_IT_CACHE"):
        return Path(os.environ["PDUMQTT_IT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pdumqtt-it"


def _run(argv: list[str], deadline: float, cwd: Path | None = None) -> str:
    left = deadline - time.monotonic()
    if left <= 0:
        raise InstallError(f"out of time before: {' '.join(argv)}")
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=left,
                              env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    except subprocess.TimeoutExpired as e:
        raise InstallError(f"timed out after {INSTALL_TIMEOUT:.0f} s: {' '.join(argv)}") from e
    except OSError as e:
        raise InstallError(f"cannot run {argv[0]}: {e}") from e
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        raise InstallError(f"{' '.join(argv)} exited {done.returncode}:\n{tail}")
    return done.stdout


def _venv(path: Path, deadline: float) -> Path:
    # the interpreter these tests run on (Python 3.11 on the project's machines); from inside a
    # venv, venv builds on the base interpreter, not on that venv
    _run([sys.executable, "-m", "venv", str(path)], deadline)
    pip = path / "bin" / "pip"
    _run([str(pip), "install", "-q", "--upgrade", "pip"], deadline)
    return pip


_MANIFEST_WALK = """
import json, sys
from pathlib import Path
import homeassistant.components as c
from homeassistant import bootstrap
root = Path(c.__path__[0])
todo = [*sys.argv[1:], *bootstrap.DEFAULT_INTEGRATIONS, *bootstrap.CORE_INTEGRATIONS]
seen, reqs = set(), set()
while todo:
    name = todo.pop()
    if name in seen:
        continue
    seen.add(name)
    manifest = json.loads((root / name / "manifest.json").read_text())
    reqs.update(manifest.get("requirements", []))
    todo += manifest.get("dependencies", []) + manifest.get("after_dependencies", [])
print(json.dumps(sorted(reqs)))
"""


def _install_homeassistant(path: Path, version: str, deadline: float) -> None:
    pip = _venv(path, deadline)
    wheels = path / "download"
    _run([str(pip), "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", str(wheels),
          f"homeassistant=={version}"], deadline)
    (wheel,) = wheels.glob("homeassistant-*.whl")
    with zipfile.ZipFile(wheel) as z:  # Home Assistant's own pins, shipped inside its wheel
        (path / "package_constraints.txt").write_bytes(z.read("homeassistant/package_constraints.txt"))
    (path / "extra_constraints.txt").write_text("\n".join(HA_EXTRA_CONSTRAINTS) + "\n")
    constraints = ["-c", str(path / "package_constraints.txt"), "-c", str(path / "extra_constraints.txt")]
    _run([str(pip), "install", "-q", *constraints, str(wheel)], deadline)
    shutil.rmtree(wheels)
    reqs = json.loads(_run([str(path / "bin" / "python"), "-c", _MANIFEST_WALK, *HA_INTEGRATIONS], deadline))
    if reqs:
        _run([str(pip), "install", "-q", *constraints, *reqs], deadline)


def _install_pypi(package: str) -> Callable[[Path, str, float], None]:
    def install(path: Path, version: str, deadline: float) -> None:
        pip = _venv(path, deadline)
        _run([str(pip), "install", "-q", f"{package}=={version}"], deadline)
    return install


def _install_node_red(path: Path, version: str, deadline: float) -> None:
    npm = shutil.which("npm")
    if not npm:
        raise InstallError("npm is not installed: apt-get install nodejs npm (scripts/setup does)")
    path.mkdir(parents=True)
    (path / "package.json").write_text(json.dumps({"name": "pdumqtt-it-node-red", "private": True}))
    _run([npm, "install", "--no-audit", "--no-fund", "--omit=dev", "--loglevel=error", f"node-red@{version}"],
         deadline, cwd=path)


def _install_pduclient(path: Path, version: str, deadline: float) -> None:
    """PDUDaemon's pduclient: a script in the pdudaemon sdist (its wheel leaves it out), needing requests."""
    pip = _venv(path, deadline)
    download = path / "download"
    _run([str(pip), "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", str(download),
          f"pdudaemon=={version}"], deadline)
    (sdist,) = download.glob("pdudaemon-*.tar.gz")
    with tarfile.open(sdist) as tar:
        member = tar.extractfile(f"pdudaemon-{version}/pduclient")
        if member is None:
            raise InstallError(f"{sdist.name} has no pduclient")
        script = member.read()
    shutil.rmtree(download)
    # its own venv's interpreter instead of the #!/usr/bin/python3 it comes with
    body = script.split(b"\n", 1)[1] if script.startswith(b"#!") else script
    client = path / "bin" / "pduclient"
    client.write_bytes(f"#!{path / 'bin' / 'python'}\n".encode() + body)
    client.chmod(0o755)
    _run([str(pip), "install", "-q", "requests"], deadline)


INSTALLERS: dict[str, Callable[[Path, str, float], None]] = {
    "homeassistant": _install_homeassistant,
    "node-red": _install_node_red,
    "labgrid": _install_pypi("labgrid"),
    "pdudaemon": _install_pduclient,
}


def _recipe(program: str) -> str:
    """What the install of ``program`` depends on: a change to any of it installs it again."""
    extra = [HA_EXTRA_CONSTRAINTS, HA_INTEGRATIONS, _MANIFEST_WALK] if program == "homeassistant" else []
    steps = inspect.getsource(INSTALLERS[program]) + inspect.getsource(_venv)
    text = json.dumps([program, VERSIONS[program], extra, steps, sys.version_info[:2]])
    return hashlib.sha256(text.encode()).hexdigest()


def ensure(program: str) -> Path:
    """The environment of ``program``, installed first when it is not in the cache yet."""
    version = VERSIONS[program]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{program}-{version}"
    marker = path / ".installed"
    want = _recipe(program)
    with open(root / f".{program}.lock", "w") as lock:  # two test runs never install into one folder
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text() == want:
            return path
        if path.exists():
            shutil.rmtree(path)
        started = time.monotonic()
        try:
            INSTALLERS[program](path, version, started + INSTALL_TIMEOUT)
        except InstallError as e:
            raise InstallError(f"installing {program} {version} into {path} failed: {e}") from None
        marker.write_text(want)
        print(f"installed {program} {version} into {path} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        return path


class _Installed:
    """What each program's install gave in this run: its path, or the error it failed with."""

    def __init__(self) -> None:
        self._done: dict[str, Path | InstallError] = {}

    def prefetch(self, program: str) -> None:
        if program not in self._done:
            try:
                self._done[program] = ensure(program)
            except InstallError as e:
                self._done[program] = e

    def __call__(self, program: str) -> Path:
        """The environment of ``program``; fails the test (not a skip) when it could not be installed."""
        import pytest

        self.prefetch(program)
        found = self._done[program]
        if isinstance(found, InstallError):
            pytest.fail(str(found), pytrace=False)
        return found


installed = _Installed()


if __name__ == "__main__":
    for name in sys.argv[1:] or list(VERSIONS):
        print(ensure(name))
