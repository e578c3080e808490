"""A Modbus TCP relay board: pymodbus's own server with ``coils`` coils from address 0.

``coils[n]`` mirrors coil n as the board holds it (updated on every write).
``device_id`` is the unit id it answers (0: any). Failures act on the raw frames:
``silent`` writes the coil but sends no answer, ``garbage`` inverts the coil values in
answers, ``drop`` closes the connection when a request arrives.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from pdumqtt.simulators._aio import LoopSimulator

WRITE_FCS = (5, 15)


class ModbusTcpSimulator(LoopSimulator):
    default_port = 502
    options = {
        vol.Optional("coils", default=8): vol.All(vol.Coerce(int), vol.Range(min=1, max=2000)),
        vol.Optional("device_id", default=1): vol.All(vol.Coerce(int), vol.Range(min=0, max=255)),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.coils = [False] * self.config["coils"]
        self.requests = 0

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      current_registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        # pymodbus packs bits 16 to a register, so it accepts coils up to the next multiple of 16.
        if function_code in (1, *WRITE_FCS) and address + count > len(self.coils):
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is not None and function_code in WRITE_FCS:
            for i, value in enumerate(set_values):
                self.coils[address + i] = bool(value)
        return None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self.requests += 1
            if self.failure == "drop":
                assert self.loop is not None
                for conn in list(self._server.active_connections.values()):
                    self.loop.call_soon(conn.close)
                return b""
            return data
        if self.failure == "silent":
            return b""
        if self.failure == "garbage" and len(data) > 9:
            frame = bytearray(data)
            if frame[7] == 5:  # write single coil echo: address (2), value (2)
                frame[10] ^= 0xFF
            elif frame[7] == 1:  # read coils: byte count, then the bits
                for i in range(9, len(frame)):
                    frame[i] ^= 0xFF
            return bytes(frame)
        return data

    async def serve(self) -> int:
        count = self.config["coils"]
        device = SimDevice(
            id=self.config["device_id"],
            simdata=(
                [SimData(0, count=count, values=False, datatype=DataType.BITS)],
                [SimData(0, count=1, values=False, datatype=DataType.BITS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        self._server = ModbusTcpServer(device, address=(self.host, self.port), trace_packet=self._trace)
        await self._server.serve_forever(background=True)
        return self._server.transport.sockets[0].getsockname()[1]

    async def shutdown(self) -> None:
        await self._server.shutdown()
