"""Modbus TCP relay boards on pymodbus: write single coil (FC05), read coils (FC01).

Outlet N is coil ``coil_base + N - 1`` on the wire (addresses there count from 0):
``coil_base: 0`` (the default) when the board's manual numbers its relays from 0 on
the wire, ``1`` when outlet 1 must go to wire address 1, as PDUDaemon's ``modbustcp``
does. ``device_id`` is the Modbus unit id (1 by default; gateways route by it).
The client is kept between calls and dropped after any failure, so the next call
reconnects. Every write is checked against the board's echo.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from pdumqtt.drivers import Driver, DriverError, HostAddress, split_host

DEFAULT_PORT = 502

BASE_OPTIONS: dict[Any, Any] = {
    vol.Optional("device_id", default=1): vol.All(vol.Coerce(int), vol.Range(min=0, max=255)),
    vol.Optional("coil_base", default=0): vol.All(vol.Coerce(int), vol.Range(min=0, max=65535)),
}


class ModbusTcp(Driver):
    model = "Modbus TCP relay board"
    protocol = "Modbus TCP (coils)"
    tested_against = "`modbus_tcp` simulator (pymodbus server)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {vol.Required("host"): HostAddress(DEFAULT_PORT), **BASE_OPTIONS}

    _client: ModbusTcpClient | None = None

    def _where(self) -> str:
        host, port = split_host(self.config["host"], DEFAULT_PORT)
        return f"{host}:{port}"

    def _connected(self) -> ModbusTcpClient:
        if self._client is None:
            host, port = split_host(self.config["host"], DEFAULT_PORT)
            # retries=0: the runner owns retries and backoff.
            client = ModbusTcpClient(host, port=port, timeout=self.timeout, retries=0)
            if not client.connect():
                client.close()
                raise DriverError(f"cannot connect to {host}:{port}")
            self._client = client
        return self._client

    def _address(self, port: int) -> int:
        address = self.config["coil_base"] + port - 1
        if not 0 <= address <= 0xFFFF:
            raise DriverError(f"outlet {port} maps to coil {address}, outside Modbus's 0..65535")
        return address

    def _call(self, what: str, request: Any) -> Any:
        client = self._connected()
        try:
            reply = request(client)
        except ModbusException as exc:
            self.close()
            raise DriverError(f"{self._where()} failed during {what}: {_reason(exc)}") from None
        except OSError as exc:
            self.close()
            raise DriverError(f"{self._where()} failed during {what}: {exc.strerror or exc}") from None
        if reply.isError():
            code = getattr(reply, "exception_code", "?")
            raise DriverError(f"{self._where()} refused {what}: Modbus exception {code}")
        return reply

    def set(self, port: int, on: bool) -> None:
        address = self._address(port)
        what = f"writing coil {address}"
        reply = self._call(what, lambda c: c.write_coil(address, on, device_id=self.config["device_id"]))
        if reply.address != address or not reply.bits or bool(reply.bits[0]) != on:
            self.close()
            raise DriverError(f"{self._where()} answered {what} with a wrong echo")

    def get(self, port: int) -> bool:
        address = self._address(port)
        reply = self._call(f"reading coil {address}",
                           lambda c: c.read_coils(address, count=1, device_id=self.config["device_id"]))
        if not reply.bits:
            raise DriverError(f"{self._where()} answered reading coil {address} with no coils")
        return bool(reply.bits[0])

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _reason(exc: ModbusException) -> str:
    text = str(exc).strip()
    # pymodbus prefixes its messages with "Modbus Error: [Connection] ..."; keep the words.
    return text.replace("Modbus Error: ", "")[:200] or type(exc).__name__


class ModbusTcpPdudaemon(ModbusTcp):
    """PDUDaemon's ``modbustcp``: the PDU's name is the host, ``port`` the TCP port,
    ``unit`` (or ``slave``) the device id, outlet N written to coil N."""

    native_driver = "modbus_tcp"

    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("host"): HostAddress(DEFAULT_PORT),
        vol.Optional("port"): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("unit"): vol.All(vol.Coerce(int), vol.Range(min=0, max=255)),
        vol.Optional("slave"): vol.All(vol.Coerce(int), vol.Range(min=0, max=255)),
        vol.Optional("device_id"): vol.All(vol.Coerce(int), vol.Range(min=0, max=255)),
        vol.Optional("coil_base", default=1): vol.All(vol.Coerce(int), vol.Range(min=0, max=65535)),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        options = dict(options)
        host = options.pop("host", None) or pdu
        tcp_port = options.pop("port", None)
        if tcp_port and ":" not in host.rpartition("]")[2]:
            host = f"{host}:{tcp_port}"
        unit, slave = options.pop("unit", None), options.pop("slave", None)
        device_id = options.get("device_id")
        options["device_id"] = next((v for v in (device_id, unit, slave) if v is not None), 1)
        super().__init__({**options, "host": host}, pdu=pdu, timeout=timeout)
