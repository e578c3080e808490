"""USB-RLY, Numato and LCUS drivers against their simulators on real ptys, unplug included."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol
from support import run_above_descriptor_1024, wait_until

from pdumqtt.drivers import Driver, DriverError
from pdumqtt.drivers.devantech_usb import DevantechUsb, DevantechUSBRLY02
from pdumqtt.drivers.lcus_usb import LcusUsb
from pdumqtt.drivers.numato_usb import NumatoUsb, NumatoUSB32
from pdumqtt.simulators.devantech_usb import DevantechUsbSimulator
from pdumqtt.simulators.lcus_usb import LcusUsbSimulator
from pdumqtt.simulators.numato_usb import NumatoUsbSimulator


def make(cls: type[Driver], device: str, timeout: float = 1.0, **options: Any) -> Any:
    config = vol.Schema(cls.options)({"device": device, **options})
    return cls(config, pdu="serial", timeout=timeout)


@pytest.fixture
def usbrly() -> Iterator[DevantechUsbSimulator]:
    with DevantechUsbSimulator({}) as sim:
        yield sim


@pytest.fixture
def numato() -> Iterator[NumatoUsbSimulator]:
    with NumatoUsbSimulator({"relays": 16}) as sim:
        yield sim


def test_usbrly_on_off_get(usbrly: DevantechUsbSimulator) -> None:
    d = make(DevantechUsb, usbrly.address)
    try:
        d.set(5, True)
        assert usbrly.relays == [False] * 4 + [True] + [False] * 3
        assert d.get(5) is True and d.get(4) is False
        d.set(5, False)
        assert d.get(5) is False
        assert bytes(usbrly.received[:2]) == bytes([0x69, 0x5B])
        with pytest.raises(DriverError, match="has 8"):
            d.set(9, True)
    finally:
        d.close()


def test_usbrly_on_a_descriptor_above_1023(usbrly: DevantechUsbSimulator) -> None:
    """pyserial's Serial waits with select(), which fails above descriptor 1023 (a daemon with many
    PDUs holds that many): the link waits with poll on the device's descriptor."""
    said = run_above_descriptor_1024("""
        import voluptuous as vol
        from pdumqtt.drivers.devantech_usb import DevantechUsb
        d = DevantechUsb(vol.Schema(DevantechUsb.options)({"device": sys.argv[1]}), pdu="serial", timeout=2)
        d.set(5, True)
        print(d.get(5))
    """, usbrly.address)
    assert said.split() == ["True"] and usbrly.relays[4] is True


def test_usbrly_pdudaemon_name(usbrly: DevantechUsbSimulator) -> None:
    d = make(DevantechUSBRLY02, usbrly.address)
    try:
        d.set(2, True)
        assert usbrly.relays[1] is True
        with pytest.raises(DriverError, match="has 2"):
            d.set(3, True)
    finally:
        d.close()


def test_numato_on_off_get(numato: NumatoUsbSimulator) -> None:
    d = make(NumatoUsb, numato.address, relays=16)
    try:
        d.set(12, True)
        assert numato.relays[11] is True
        assert b"relay on b\r" in numato.received
        assert d.get(12) is True
        d.set(12, False)
        assert d.get(12) is False
    finally:
        d.close()


@pytest.mark.parametrize("relays, port, wire", [(32, 12, b"relay on B\r"), (64, 12, b"relay on 11\r")])
def test_numato_relay_names(relays: int, port: int, wire: bytes) -> None:
    with NumatoUsbSimulator({"relays": relays}) as sim:
        d = make(NumatoUsb, sim.address, relays=relays)
        try:
            d.set(port, True)
            assert wire in sim.received and sim.relays[port - 1] is True
        finally:
            d.close()


def test_numato_pdudaemon_name(numato: NumatoUsbSimulator) -> None:
    config = vol.Schema(NumatoUSB32.options)({"device": numato.address})
    assert config["relays"] == 32


def test_lcus_frames() -> None:
    with LcusUsbSimulator({"relays": 2}) as sim:
        d = make(LcusUsb, sim.address, relays=2)
        try:
            d.set(1, True)
            d.set(2, True)
            d.set(1, False)
            # The board never answers: wait for the simulator to have read all three frames.
            wait_until(lambda: len(sim.received) == 12, 5, "three frames")
            assert bytes(sim.received) == bytes.fromhex("A00101A2 A00201A3 A00100A1")
            assert sim.relays == [False, True] and sim.bad_frames == 0
        finally:
            d.close()


@pytest.mark.parametrize("kind", ["usbrly", "numato", "lcus"])
def test_unplug_and_plug_back(kind: str) -> None:
    cls, sim_cls = {"usbrly": (DevantechUsb, DevantechUsbSimulator), "numato": (NumatoUsb, NumatoUsbSimulator),
                    "lcus": (LcusUsb, LcusUsbSimulator)}[kind]
    with sim_cls({}) as sim:
        d = make(cls, sim.address)
        try:
            d.set(1, True)
            first_tty = os.readlink(sim.address)
            sim.unplug()
            with pytest.raises(DriverError, match=sim.address):
                d.set(1, False)
            with pytest.raises(DriverError, match="cannot open"):
                d.set(1, False)
            sim.plug()
            assert os.path.exists(sim.address)
            d.set(2, True)
            wait_until(lambda: sim.relays[1], 5, "relay 2 on")
            assert first_tty  # the same link, whatever pts number the new pty got
        finally:
            d.close()


@pytest.mark.parametrize("failure, message", [("silent", "no complete answer"), ("garbage", "did not switch")])
def test_usbrly_failure_modes(usbrly: DevantechUsbSimulator, failure: str, message: str) -> None:
    d = make(DevantechUsb, usbrly.address, timeout=0.3)
    try:
        usbrly.failure = failure
        with pytest.raises(DriverError, match=message):
            d.set(1, True)
        usbrly.failure = None
        d.set(1, True)
        assert d.get(1) is True
    finally:
        d.close()


@pytest.mark.parametrize("failure, message", [("silent", "no complete answer"), ("garbage", "answered")])
def test_numato_failure_modes(numato: NumatoUsbSimulator, failure: str, message: str) -> None:
    d = make(NumatoUsb, numato.address, timeout=0.3, relays=16)
    try:
        numato.failure = failure
        with pytest.raises(DriverError, match=message):
            d.set(1, True)
        with pytest.raises(DriverError, match=message):
            d.get(1)
        numato.failure = None
        d.set(1, True)
        assert d.get(1) is True
    finally:
        d.close()


def test_drop_is_an_unplug(usbrly: DevantechUsbSimulator) -> None:
    d = make(DevantechUsb, usbrly.address, timeout=0.5)
    try:
        usbrly.failure = "drop"
        with pytest.raises(DriverError):
            d.set(1, True)
        usbrly.failure = None
        usbrly.plug()
        d.set(1, True)
        assert usbrly.relays[0] is True
    finally:
        d.close()


# Module ids from Devantech's manuals (0x5A: module id, software version), written out
# here rather than taken from the driver's table, which the simulator shares.
MANUAL_MODULE_IDS = {"usb-rly02": 10, "usb-rly08b": 8, "usb-rly16": 9, "usb-rly16l": 15}


@pytest.mark.parametrize("module", sorted(MANUAL_MODULE_IDS))
def test_usbrly_module_ids_are_the_manuals(module: str) -> None:
    with DevantechUsbSimulator({"module": module}) as sim:
        d = make(DevantechUsb, sim.address, module=module)
        try:
            assert d.module_info() == (MANUAL_MODULE_IDS[module], 1)
            d.set(2, True)  # and the module switches as configured
            assert sim.relays[1] is True
        finally:
            d.close()


def test_usbrly_wrong_module_setting_is_named() -> None:
    with DevantechUsbSimulator({"module": "usb-rly02"}) as sim:
        d = make(DevantechUsb, sim.address, module="usb-rly08b")
        try:
            expected = (r"relay 5 of .* did not switch on: the module reports "
                        r"USB-RLY02 \(module id 10, 2 relays\), not the configured usb-rly08b")
            with pytest.raises(DriverError, match=expected):
                d.set(5, True)
        finally:
            d.close()
