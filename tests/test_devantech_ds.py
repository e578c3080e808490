"""Devantech dS driver against the dS ASCII simulator over loopback TCP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.devantech_ds import DevantechDs, DevantechDS378
from pdumqtt.simulators.devantech_ds import DevantechDsSimulator


@pytest.fixture
def ds() -> Iterator[DevantechDsSimulator]:
    with DevantechDsSimulator({}) as sim:
        yield sim


def make(sim: DevantechDsSimulator, timeout: float = 2.0, **options: Any) -> DevantechDs:
    return DevantechDs(vol.Schema(DevantechDs.options)({"host": sim.address, **options}), pdu="ds", timeout=timeout)


def test_on_off_get(ds: DevantechDsSimulator) -> None:
    d = make(ds)
    d.set(24, True)
    assert ds.relays[23] is True and d.get(24) is True
    d.set(24, False)
    assert d.get(24) is False
    assert ds.lines[:2] == ["SR 24 on", "GR 24"]
    with pytest.raises(DriverError, match="has 24"):
        d.set(25, True)


def test_pulse(ds: DevantechDsSimulator) -> None:
    make(ds, pulse=1.5).set(2, True)
    assert ds.lines[0] == "SR 2 on 1500"


@pytest.mark.parametrize("failure, message", [
    ("silent", "no answer"), ("garbage", "expected Active"), ("drop", "closed the connection|cannot talk")])
def test_failure_modes(ds: DevantechDsSimulator, failure: str, message: str) -> None:
    d = make(ds, timeout=0.5)
    ds.failure = failure
    with pytest.raises(DriverError, match=message):
        d.set(1, True)
    ds.failure = None
    d.set(1, True)
    assert d.get(1) is True


def test_pdudaemon_name(ds: DevantechDsSimulator) -> None:
    ip, port = ds.address.rsplit(":", 1)
    config = vol.Schema(DevantechDS378.options)({"ip": ip, "port": port})
    d = DevantechDS378(config, pdu="x", timeout=2)
    d.set(8, True)
    assert ds.relays[7] is True
    with pytest.raises(DriverError, match="has 8"):
        d.set(9, True)
