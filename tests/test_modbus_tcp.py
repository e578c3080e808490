"""Modbus TCP driver against pymodbus's own server: coils, coil_base, device_id, failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.modbus_tcp import ModbusTcp, ModbusTcpPdudaemon
from pdumqtt.simulators.modbus_tcp import ModbusTcpSimulator


@pytest.fixture
def board() -> Iterator[ModbusTcpSimulator]:
    with ModbusTcpSimulator({"coils": 8, "device_id": 3}) as sim:
        yield sim


def make(sim: ModbusTcpSimulator, timeout: float = 2.0, **options: Any) -> ModbusTcp:
    config = vol.Schema(ModbusTcp.options)({"host": sim.address, "device_id": 3, **options})
    return ModbusTcp(config, pdu="mb", timeout=timeout)


def test_on_off_get(board: ModbusTcpSimulator) -> None:
    d = make(board)
    try:
        d.set(1, True)
        assert board.coils[0] is True
        assert d.get(1) is True and d.get(2) is False
        d.set(1, False)
        assert d.get(1) is False and board.coils[0] is False
    finally:
        d.close()


def test_coil_base_one(board: ModbusTcpSimulator) -> None:
    d = make(board, coil_base=1)
    try:
        d.set(1, True)
        assert board.coils[:2] == [False, True]
        assert d.get(1) is True
        with pytest.raises(DriverError, match="exception 2"):
            d.set(8, True)  # coil 8 does not exist on an 8-coil board
    finally:
        d.close()


def test_wrong_device_id(board: ModbusTcpSimulator) -> None:
    d = make(board, device_id=9)
    try:
        with pytest.raises(DriverError, match="Modbus exception"):
            d.set(1, True)
        assert board.coils[0] is False
    finally:
        d.close()


@pytest.mark.parametrize("failure, message", [
    ("silent", "failed during"), ("garbage", "wrong echo"), ("drop", "failed during")])
def test_failure_modes(board: ModbusTcpSimulator, failure: str, message: str) -> None:
    d = make(board, timeout=0.5)
    try:
        d.set(2, True)
        board.failure = failure
        with pytest.raises(DriverError, match=message):
            d.set(2, False)
        board.failure = None
        d.set(2, False)
        assert d.get(2) is False
    finally:
        d.close()


def test_device_gone_and_back() -> None:
    sim = ModbusTcpSimulator({"device_id": 1})
    sim.start()
    port = sim.address.rsplit(":", 1)[1]
    config = vol.Schema(ModbusTcp.options)({"host": sim.address})
    d = ModbusTcp(config, pdu="mb", timeout=1)
    try:
        d.set(1, True)
        sim.stop()
        with pytest.raises(DriverError):
            d.get(1)
        with ModbusTcpSimulator({"listen": f"127.0.0.1:{port}"}) as again:
            d.set(3, True)
            assert again.coils[2] is True
    finally:
        d.close()


def test_pdudaemon_modbustcp_options(board: ModbusTcpSimulator) -> None:
    host, port = board.address.rsplit(":", 1)
    config = vol.Schema(ModbusTcpPdudaemon.options)({"port": port, "unit": 3})
    d = ModbusTcpPdudaemon(config, pdu=host, timeout=2)
    try:
        d.set(2, True)
        assert board.coils[2] is True  # PDUDaemon writes outlet N to coil N
    finally:
        d.close()
