"""A server's chassis power through its BMC: IPMI 2.0 over LAN (RMCP+, UDP 623), on pyghmi.

pyghmi does the session (RMCP+ login, cipher suite negotiation, retries); we send the
two chassis commands of the IPMI spec ourselves (``raw_command``), Get Chassis Status
(netfn 0, cmd 1: bit 0 of the first byte is power on) and Chassis Control (netfn 0,
cmd 2: 0 off, 1 on, 2 power cycle), rather than pyghmi's ``set_power``, whose vendor
("OEM") extensions can reach for other protocols. A completion code other than 0 is
the BMC refusing. ``cycle`` is the BMC's own power cycle; a server that is off is just
switched on (the spec lets a BMC refuse a cycle then). The outlet number is ignored:
a BMC has one chassis, so a PDU of this driver has one port.

pyghmi's calls block for as long as it keeps retrying (up to half a minute when a BMC
stops answering), so each call runs on a short-lived thread of its own and is given
up after the PDU's timeout; a call given up on finishes there, and the next call waits
for it (within its own timeout): two threads inside pyghmi's session code race each
other (a failed login then surfaces as an AttributeError). The password is handed
to pyghmi and nowhere else: no message or log line of ours carries it.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from types import SimpleNamespace
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, HostAddress, split_host

DEFAULT_PORT = 623
CHASSIS = 0x00  # netfn
GET_STATUS, CONTROL = 0x01, 0x02
POWER_OFF, POWER_ON, POWER_CYCLE = 0, 1, 2
LOGIN_REFUSED = ("Incorrect password", "Unauthorized name", "Invalid role", "Insufficient privilege")

log = logging.getLogger(__name__)


def _select_on_poll(readable: list[Any], writable: Any, exceptional: Any, timeout: float | None = None) -> tuple:
    """select.select's readable half, made on poll, which has no limit on descriptor numbers."""
    poller = select.poll()
    for sock in readable:
        if sock.fileno() >= 0:  # a socket closed meanwhile: select would raise
            poller.register(sock, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(None if timeout is None else max(0.0, timeout) * 1000)}
    return [sock for sock in readable if sock.fileno() in ready], [], []


def _keep_pyghmi_io_alive() -> None:
    """pyghmi has one I/O thread per process, which waits with select.select: that raises for a
    descriptor above 1023 (a daemon with many PDUs has that many open), the thread dies, and from
    then on no BMC of the process answers. Its module gets a select made on poll, and a thread
    that died anyway is replaced when the next session starts."""
    from pyghmi.ipmi.private import session

    session.select = SimpleNamespace(select=_select_on_poll)
    if session.iothread is not None and not session.iothread.is_alive():
        log.warning("pyghmi's I/O thread had ended; starting a new one")
        session.iothread, session.iothreadready = None, False


class Ipmi(Driver):
    model = "IPMI BMC (chassis power)"
    protocol = "IPMI 2.0 over LAN (RMCP+, UDP)"
    tested_against = "`ipmi` simulator (pyghmi BMC on loopback UDP)"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        vol.Required("host"): HostAddress(DEFAULT_PORT),
        # used when host has no port of its own
        vol.Optional("port", default=DEFAULT_PORT): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Required("username"): vol.All(str, vol.Length(max=16)),  # IPMI user names are 16 bytes at most
        vol.Required("password"): vol.All(str, vol.Length(max=20)),  # IPMI 2.0 passwords are 20 bytes at most
        # False: the daemon cycles with off, its cycle_delay, on; true: the BMC's power cycle
        vol.Optional("native_cycle", default=True): bool,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self._session: Any = None  # a pyghmi Command, logged in
        self._call: threading.Thread | None = None  # the latest call's thread, perhaps given up on

    def _address(self) -> tuple[str, int]:
        return split_host(self.config["host"], self.config["port"])

    def _where(self) -> str:
        host, port = self._address()
        return f"BMC {host}:{port}"

    def close(self) -> None:
        self._session = None  # pyghmi logs idle sessions out itself

    def _login(self) -> Any:
        if self._session is None or getattr(self._session.ipmi_session, "broken", False):
            from pyghmi.ipmi import command  # imported with the first IPMI PDU, not with the daemon

            _keep_pyghmi_io_alive()
            host, port = self._address()
            # bytes, not str: pyghmi files a login under the credentials as given and, when the login
            # fails, drops it under their encoded form; with str the failed login stays filed, and
            # every later login with the same credentials waits on it for ever (pyghmi 1.6.19)
            self._session = command.Command(bmc=host, userid=self.config["username"].encode(),
                                            password=self.config["password"].encode(), port=port,
                                            keepalive=False)
        return self._session

    def _chassis(self, cmd: int, data: tuple[int, ...], what: str) -> bytes:
        """Send one chassis command on its own thread, given up after the timeout."""
        deadline = time.monotonic() + self.timeout
        previous = self._call
        if previous is not None:
            previous.join(self.timeout)
            if previous.is_alive():
                raise DriverError(f"{self._where()} is still busy with an earlier call, given up on after "
                                  f"{self.timeout:g} s (is it up, and IPMI over LAN enabled?)")
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["reply"] = self._login().raw_command(netfn=CHASSIS, command=cmd, data=data)
            except Exception as exc:  # handed to the caller's thread below
                outcome["error"] = exc

        worker = threading.Thread(target=run, name=f"ipmi-{self.pdu}", daemon=True)
        self._call = worker
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            self._session = None
            raise DriverError(f"no answer from {self._where()} to {what} within {self.timeout:g} s "
                              "(is it up, and IPMI over LAN enabled?)")
        if "error" in outcome:
            self._session = None
            raise self._error(outcome["error"], what) from None
        reply = outcome["reply"]
        if "error" in reply:
            code = reply.get("code")
            if code in (None, 0xFFFF) or reply["error"] == "timeout":
                self._session = None
                raise DriverError(f"no answer from {self._where()} to {what}")
            raise DriverError(f"{self._where()} refused {what}: {reply['error']}"
                              + (f" (completion code 0x{code:02x})" if isinstance(code, int) else ""))
        return bytes(reply.get("data") or b"")

    def _error(self, exc: Exception, what: str) -> DriverError:
        message = str(exc) if str(exc) not in ("", "None") else ""
        if any(text in message for text in LOGIN_REFUSED):
            return DriverError(f"{self._where()} refused the login of {self.config['username']!r}: {message} "
                               "(check username and password)")
        if not message or "timeout" in message.lower() or "no longer connected" in message:
            return DriverError(f"no answer from {self._where()} to {what} (is it up, and IPMI over LAN enabled?)")
        return DriverError(f"{self._where()} failed {what}: {message}")

    def set(self, port: int, on: bool) -> None:
        self._chassis(CONTROL, (POWER_ON if on else POWER_OFF,), f"chassis power {'on' if on else 'off'}")

    def get(self, port: int) -> bool:
        data = self._chassis(GET_STATUS, (), "get chassis status")
        if not data:
            raise DriverError(f"{self._where()} answered get chassis status without data")
        return bool(data[0] & 0x01)

    def cycle(self, port: int, delay: float) -> bool:
        if not self.config["native_cycle"]:
            return False
        if self.get(port):
            self._chassis(CONTROL, (POWER_CYCLE,), "chassis power cycle")
        else:
            self.set(port, True)
        return True
