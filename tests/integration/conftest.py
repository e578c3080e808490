"""The integration group: pdumqtt against the real programs its users run beside it.

Each test module names the program it needs (``PROGRAM``) and is marked ``integration``.
Once collection is done, the programs the selected tests need are installed into their
cached environments (see ``envs.py``), outside any test's timeout; a program that cannot be
installed fails every test that needs it. ``-m "not integration"`` leaves the group out.
Each module has a mosquitto of its own, so retained topics of other tests never reach the
program under test.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import Broker, start_daemon, start_mosquitto

from integration.envs import VERSIONS, installed


def pytest_collection_finish(session: pytest.Session) -> None:
    needed = sorted({getattr(item.module, "PROGRAM", None) for item in session.items
                     if item.get_closest_marker("integration")} - {None})
    for program in needed:
        print(f"\nintegration: {program} {VERSIONS[program]} ...", file=sys.stderr, flush=True)
        installed.prefetch(program)


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = start_mosquitto(tmp_path_factory.mktemp("broker"))
    yield b
    b.process.terminate()
    b.process.wait(10)


@pytest.fixture
def run_daemon() -> Iterator[Callable[..., Any]]:
    """Start pdumqtt in this process against a given broker (so tests can reach its sim devices)."""
    started: list[Any] = []

    def start(config: dict[str, Any], broker: Broker) -> Any:
        started.append(start_daemon(config, broker, "it"))
        return started[-1]

    yield start
    for d in started:
        d.stop()


def loopback_address() -> str:
    """A 127.x.y.z of this run's own: for programs that only speak to a fixed port (pduclient: 16421)."""
    return f"127.{os.getpid() % 200 + 20}.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250 + 1}"


@pytest.fixture
def listening_demo(run_daemon: Callable[..., Any], own_broker: Broker) -> Any:
    """The demo config (examples/demo.yaml) with PDUDaemon's listener on port 16421 of an
    address of its own, and one PDU more that never answers (``dead``)."""
    import yaml
    from support import ROOT

    demo = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    demo["defaults"].update({"cycle_delay": 0.3, "retries": 0, "timeout": 2})
    demo["pdus"]["dead"] = {"driver": "sim", "ports": 2, "unreachable": True}
    demo["pdudaemon"] = {"listen": f"{loopback_address()}:16421"}
    return run_daemon(demo, own_broker)
