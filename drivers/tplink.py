"""TP-Link Kasa plugs and strips on their legacy local protocol, TCP port 9999.

A message is a 4-byte big-endian length, then the JSON text XORed with an autokey
cipher (the key starts at 171 and becomes each cipher byte). ``system.get_sysinfo``
lists a strip's ``children`` (id, alias, state); ``system.set_relay_state`` with
``context.child_ids`` switches one, and its ``err_code`` 0 confirms it. A plug without
children is one outlet, port 1, switched without a context. Port N is the strip's Nth
child, or, with ``outlets`` (a list of the children's aliases), the child whose alias
is the Nth entry. One short connection per request, as the Kasa app and PDUDaemon do.

Firmware from about 2023 on (KLAP, then TPAP) closes port 9999 or answers there in
another protocol: the errors say so and point to python-kasa, which speaks those.
PDUDaemon's ``tplink`` takes no options: the PDU's name is the host.

Models with an energy meter (HS110, KP115, HS300 per socket) answer ``emeter.get_realtime``
(with the child's context on a strip): hardware v2 in mW, mA, mV and Wh, v1 in W, A, V and
kWh. The others answer ``module not support``, and the runner stops asking.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, HostAddress, NoSuchOutlet, Reading, split_host

DEFAULT_PORT = 9999
FIRST_KEY = 171
STRIP_OUTLETS = 6  # an HS300, the largest Kasa strip
MAX_REPLY = 1 << 20  # sysinfo is a few kB; a length beyond this is not the legacy protocol
NEWER_FIRMWARE = ("Kasa firmware from about 2023 on (KLAP/TPAP) no longer speaks the legacy port-9999 "
                  "protocol: if the plug has such firmware, drive it with python-kasa")


def encrypt(text: str) -> bytes:
    """A request as the device reads it: length, then the autokey-XORed text."""
    key, out = FIRST_KEY, bytearray()
    for byte in text.encode():
        key ^= byte
        out.append(key)
    return struct.pack(">I", len(out)) + bytes(out)


def decrypt(data: bytes) -> str:
    """The text of a reply body (without its length)."""
    key, out = FIRST_KEY, bytearray()
    for byte in data:
        out.append(key ^ byte)
        key = byte
    return out.decode("utf-8", "replace")


def _alias(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected a child's alias as the Kasa app shows it")
    return value


class Kasa(Driver):
    model = "TP-Link Kasa plug or strip"
    protocol = "raw TCP (Kasa legacy XOR JSON, port 9999)"
    tested_against = "`tplink` simulator (TCP on loopback)"
    can_read = True
    can_meter = True
    outlet_readings = ("power", "current", "voltage", "energy")
    options: ClassVar[dict[Any, Any]] = {
        vol.Required("host"): HostAddress(DEFAULT_PORT),
        vol.Optional("outlets"): vol.All([_alias], vol.Length(min=1)),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self._sysinfo: dict[str, Any] | None = None

    @classmethod
    def ports_for(cls, options: dict[str, Any]) -> tuple[int, str] | None:
        outlets = options.get("outlets")
        if isinstance(outlets, list) and outlets:
            return len(outlets), "one for each alias in outlets"
        return None

    def _where(self) -> str:
        host, port = split_host(self.config["host"], DEFAULT_PORT)
        return f"{host}:{port}"

    def close(self) -> None:
        self._sysinfo = None

    # -- the wire ----------------------------------------------------------------------

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        host, port = split_host(self.config["host"], DEFAULT_PORT)
        where = f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=self.timeout)
        except TimeoutError:
            raise DriverError(f"no connection to {where} within {self.timeout:g} s") from None
        except ConnectionRefusedError:
            raise DriverError(f"{where} refused the connection: not listening on the Kasa legacy port; "
                              f"{NEWER_FIRMWARE}") from None
        except OSError as exc:
            raise DriverError(f"cannot connect to {where}: {exc.strerror or exc}") from None
        try:
            sock.sendall(encrypt(json.dumps(request)))
            head = self._recv(sock, 4, where)
            (length,) = struct.unpack(">I", head)
            if length > MAX_REPLY:
                raise DriverError(f"{where} answered 0x{head.hex()}..., not a Kasa legacy reply; {NEWER_FIRMWARE}")
            text = decrypt(self._recv(sock, length, where))
        except OSError as exc:
            raise DriverError(f"connection to {where} failed: {exc.strerror or exc}") from None
        finally:
            sock.close()
        try:
            reply = json.loads(text)
        except ValueError:
            raise DriverError(f"{where} answered {text[:40]!r}, not Kasa's JSON; {NEWER_FIRMWARE}") from None
        if not isinstance(reply, dict):
            raise DriverError(f"{where} answered {text[:60]!r}, expected a JSON object")
        return reply

    def _recv(self, sock: socket.socket, n: int, where: str) -> bytes:
        data = b""
        while len(data) < n:
            try:
                chunk = sock.recv(n - len(data))
            except TimeoutError:
                raise DriverError(f"no answer from {where} within {self.timeout:g} s") from None
            if not chunk:
                if not data:
                    raise DriverError(f"{where} closed the connection without answering; {NEWER_FIRMWARE}")
                raise DriverError(f"{where} closed the connection in the middle of its answer")
            data += chunk
        return data

    def _system(self, method: str, params: dict[str, Any], context: dict[str, Any] | None = None) -> dict[str, Any]:
        request: dict[str, Any] = {"system": {method: params}}
        if context is not None:
            request["context"] = context
        reply = self._request(request)
        answer = reply.get("system", {}).get(method) if isinstance(reply.get("system"), dict) else None
        if not isinstance(answer, dict):
            raise DriverError(f"{self._where()} answered {json.dumps(reply)[:80]} to {method}, "
                              f"expected system.{method}")
        if answer.get("err_code", 0) != 0:
            raise DriverError(f"{self._where()} refused {method}: error {answer.get('err_code')}"
                              + (f" ({answer['err_msg']})" if answer.get("err_msg") else ""))
        return answer

    # -- outlets -----------------------------------------------------------------------

    def _info(self, fresh: bool) -> dict[str, Any]:
        if fresh or self._sysinfo is None:
            self._sysinfo = self._system("get_sysinfo", {})
        return self._sysinfo

    def _outlet(self, port: int, info: dict[str, Any]) -> dict[str, Any] | None:
        """The child for ``port`` (None for a plug without children); DriverError if there is none."""
        children = info.get("children") or []
        if not isinstance(children, list) or not all(isinstance(c, dict) and "id" in c for c in children):
            raise DriverError(f"{self._where()} lists children that are not Kasa's: {str(children)[:80]}")
        names = self.config.get("outlets")
        if names:
            if port > len(names):
                raise NoSuchOutlet(f"outlet {port} is not in the outlets list ({len(names)} aliases)")
            for child in children:
                if child.get("alias") == names[port - 1]:
                    return child
            have = ", ".join(repr(c.get("alias")) for c in children) or "none"
            raise DriverError(f"{self._where()} has no child named {names[port - 1]!r} (it has {have})")
        if not children:
            if port != 1:
                raise NoSuchOutlet(f"outlet {port} does not exist: {self._where()} is a plug with one outlet")
            return None
        if port > len(children):
            raise NoSuchOutlet(f"outlet {port} does not exist: {self._where()} has {len(children)}")
        return children[port - 1]

    @staticmethod
    def _state(where: str, holder: dict[str, Any], key: str) -> bool:
        value = holder.get(key)
        if value not in (0, 1) or isinstance(value, bool):
            raise DriverError(f"{where} reports {key} {value!r}, expected 0 or 1")
        return value == 1

    def set(self, port: int, on: bool) -> None:
        child = self._outlet(port, self._info(fresh=False))
        context = None if child is None else {"child_ids": [child["id"]]}
        self._system("set_relay_state", {"state": int(on)}, context)

    def get(self, port: int) -> bool:
        info = self._info(fresh=True)
        child = self._outlet(port, info)
        if child is None:
            return self._state(self._where(), info, "relay_state")
        return self._state(self._where(), child, "state")

    def meter_outlet(self, port: int) -> Reading | None:
        child = self._outlet(port, self._info(fresh=False))
        request: dict[str, Any] = {"emeter": {"get_realtime": {}}}
        if child is not None:
            request["context"] = {"child_ids": [child["id"]]}
        emeter = self._request(request).get("emeter")
        if not isinstance(emeter, dict):
            raise DriverError(f"{self._where()} answered no emeter module to get_realtime")
        now = emeter.get("get_realtime")
        if not isinstance(now, dict):
            if emeter.get("err_code", 0) != 0:  # "module not support": a model without a meter
                return None
            raise DriverError(f"{self._where()} answered {json.dumps(emeter)[:80]} to emeter.get_realtime")
        if now.get("err_code", 0) != 0:
            raise DriverError(f"{self._where()} refused emeter.get_realtime: error {now.get('err_code')}")

        def value(v2: str, v1: str, scale: float) -> float | None:
            for key, factor in ((v2, scale), (v1, 1.0)):
                number = now.get(key)
                if isinstance(number, int | float) and not isinstance(number, bool):
                    return number * factor
            return None
        return Reading(power=value("power_mw", "power", 0.001), current=value("current_ma", "current", 0.001),
                       voltage=value("voltage_mv", "voltage", 0.001), energy=value("total_wh", "total", 0.001))

    def outlet_name(self, port: int) -> str | None:
        info = self._info(fresh=False)
        child = self._outlet(port, info)
        alias = (info if child is None else child).get("alias")
        return alias if isinstance(alias, str) and alias else None


class TPLink(Kasa):
    """PDUDaemon's ``tplink``: the PDU's name is the host (port 9999) unless ``host`` is given."""

    native_driver = "kasa"
    options: ClassVar[dict[Any, Any]] = {vol.Optional("host"): HostAddress(DEFAULT_PORT)}

    @classmethod
    def ports_for(cls, options: dict[str, Any]) -> tuple[int, str] | None:
        # PDUDaemon's tplink only switches a strip's children; the strip says how many it has
        return STRIP_OUTLETS, ("as many as an HS300, the largest Kasa strip (a KP303 has 3, a KP400 2): set your "
                               "strip's count; outlets it lacks are refused, and the probe skips them")

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({"host": pdu, **options}, pdu=pdu, timeout=timeout)
