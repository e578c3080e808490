"""Fixtures: a real mosquitto on a free loopback port, the daemon, MQTT probe clients."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import (  # noqa: F401 - re-exported for test modules
    ROOT,
    Broker,
    DaemonProcess,
    Probe,
    free_port,
    run_cli,
    start_daemon,
    start_mosquitto,
    wait_until,
    write_config,
)


@pytest.fixture(scope="session", autouse=True)
def state_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every daemon's journal under one temporary directory, never the user's ~/.local/state.

    Each test's daemon has a client id of its own, so its journal is its own file there.
    """
    path = tmp_path_factory.mktemp("state")
    saved = os.environ.get("STATE_DIRECTORY")
    os.environ["STATE_DIRECTORY"] = str(path)
    yield path
    if saved is None:
        del os.environ["STATE_DIRECTORY"]
    else:
        os.environ["STATE_DIRECTORY"] = saved


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = start_mosquitto(tmp_path_factory.mktemp("broker"))
    yield b
    b.process.terminate()
    b.process.wait(10)


@pytest.fixture
def probe(broker: Broker) -> Iterator[Probe]:
    p = Probe(broker)
    yield p
    p.close()


@pytest.fixture
def make_probe(broker: Broker) -> Iterator[Callable[[], Probe]]:
    """More probe clients, for tests that need a second subscriber."""
    made: list[Probe] = []

    def make() -> Probe:
        made.append(Probe(broker))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.fixture
def unique() -> str:
    """A name prefix unique to this test, so that retained topics never leak between tests."""
    return "t" + uuid.uuid4().hex[:8]


@pytest.fixture
def daemon(broker: Broker, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start the daemon in this process with a config dict; stopped at teardown."""
    started: list[Any] = []

    def start(config: dict[str, Any]) -> Any:
        started.append(start_daemon(config, broker))
        return started[-1]

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def daemon_process(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start ``pdumqtt daemon`` as a child process, as a user would."""
    started: list[DaemonProcess] = []

    def start(config: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> DaemonProcess:
        path = write_config(tmp_path, config, f"daemon-{len(started)}.yaml")
        proc = subprocess.Popen([sys.executable, "-m", "pdumqtt", "daemon", "-c", str(path), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, **(env or {})})
        started.append(DaemonProcess(proc, path))
        return started[-1]

    yield start
    for d in started:
        d.stop()
