"""Chrome OS servo boards through servod's XML-RPC interface (port 9999 by default).

Switching sets each configured control with ``set(ctrl, "on"|"off")``, in order.
``power_state`` is active high; ``cold_reset`` and ``warm_reset`` are active low: the
board is powered when its reset is released, so "on" sets them to ``off``. Reading
asks ``get(ctrl)`` for each: the board is on only when every control says so (a board
held in any reset is off). Every port of the PDU drives the same controls, as in
PDUDaemon, whose ``SERVO`` (upper case) takes ``ip`` (localhost), ``port`` (9999) and
``ctrls`` (default ``cold_reset``). The calls use stdlib xmlrpc.client with our timeout.
"""

from __future__ import annotations

import http.client
import xmlrpc.client
from typing import Any, ClassVar
from xml.parsers.expat import ExpatError

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, HostAddress, join_host, split_host

DEFAULT_PORT = 9999
# control -> the value that powers the board
CONTROLS = {"power_state": "on", "warm_reset": "off", "cold_reset": "off"}
ON_WORDS, OFF_WORDS = ("on", "1", "yes"), ("off", "0", "no")


class _TimeoutTransport(xmlrpc.client.Transport):
    """xmlrpc.client's HTTP transport with a socket timeout (it has none of its own)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = self._timeout
        return conn


def _controls(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise vol.Invalid(f"expected a servod control or a list of them ({', '.join(CONTROLS)})")
    unknown = [v for v in values if v not in CONTROLS]
    if unknown:
        raise vol.Invalid(f"unknown control {unknown[0]!r}: expected {', '.join(CONTROLS)}")
    return values


class Servod(Driver):
    model = "servo board (servod)"
    protocol = "XML-RPC (servod)"
    tested_against = "`servod` simulator (XML-RPC on loopback)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("host", default=f"localhost:{DEFAULT_PORT}"): HostAddress(DEFAULT_PORT),
        vol.Optional("ctrls", default=["cold_reset"]): _controls,
    }

    def _where(self) -> str:
        host, port = split_host(self.config["host"], DEFAULT_PORT)
        return f"servod at {host}:{port}"

    def _rpc(self, method: str, *args: str) -> Any:
        host, port = split_host(self.config["host"], DEFAULT_PORT)
        url = f"http://{join_host(host, port)}"
        what = f"{method}({', '.join(map(repr, args))})"
        try:
            with xmlrpc.client.ServerProxy(url, transport=_TimeoutTransport(self.timeout)) as proxy:
                return getattr(proxy, method)(*args)
        except xmlrpc.client.Fault as exc:
            raise DriverError(f"{self._where()} refused {what}: {exc.faultString.strip()[-200:]}") from None
        except xmlrpc.client.ProtocolError as exc:
            raise DriverError(f"{self._where()} answered {what} with HTTP {exc.errcode} {exc.errmsg}: "
                              "is servod listening there?") from None
        except http.client.RemoteDisconnected:
            raise DriverError(f"{self._where()} closed the connection without answering {what}") from None
        except (ExpatError, xmlrpc.client.ResponseError, http.client.HTTPException) as exc:
            raise DriverError(f"{self._where()} answered {what} with something that is not XML-RPC "
                              f"({type(exc).__name__}: {exc})") from None
        except TimeoutError:
            raise DriverError(f"no answer from {self._where()} to {what} within {self.timeout:g} s") from None
        except OSError as exc:
            raise DriverError(f"cannot reach {self._where()}: {exc.strerror or exc}") from None

    def set(self, port: int, on: bool) -> None:
        for ctrl in self.config["ctrls"]:
            powered = CONTROLS[ctrl]
            value = powered if on else ("off" if powered == "on" else "on")
            self._rpc("set", ctrl, value)

    def get(self, port: int) -> bool:
        on = True
        for ctrl in self.config["ctrls"]:
            answer = self._rpc("get", ctrl)
            word = str(answer).strip().lower() if not isinstance(answer, bool) else ("on" if answer else "off")
            if word not in ON_WORDS + OFF_WORDS:
                raise DriverError(f"{self._where()} says {ctrl} is {str(answer)[:40]!r}, expected on or off")
            on = on and (word in ON_WORDS) == (CONTROLS[ctrl] == "on")
        return on


class Servo(Servod):
    """PDUDaemon's ``SERVO``: ``ip``, ``port`` and ``ctrls`` (one control or a list)."""

    native_driver = "servod"
    fixed_ports = 1
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("ip", default="localhost"): HostAddress(DEFAULT_PORT),
        vol.Optional("port", default=DEFAULT_PORT): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("ctrls", default=["cold_reset"]): _controls,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        options = dict(options)
        host, port = split_host(options.pop("ip"), options.pop("port"))
        options["host"] = join_host(host, port)
        super().__init__(options, pdu=pdu, timeout=timeout)
