"""APC outlets over telnet: the menu firmware (AP79xx, AP92xx) and the CLI firmware (AOS 5+).

This module owns the telnet dialogue with APC PDUs: the connection (a plain socket
driven by pexpect's ``fdspawn``, with telnet IAC negotiation answered here, no external
telnet program), the login, telling the two firmwares apart from what follows the login
(``apc>`` for the CLI, the ``Control Console`` menu otherwise) unless ``firmware`` says,
walking the menus (paged outlet list, ``YES`` confirmation) or sending ``olOn``/``olOff``/
``olStatus``, and a clean logout. One session per call by default; ``keepalive`` keeps
one open between calls and reconnects once when the device dropped it.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import pexpect
import voluptuous as vol
from pexpect.fdpexpect import fdspawn

from pdumqtt.drivers import Driver, DriverError, HostAddress, split_host

TELNET_PORT = 23
IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA = 1, 3

USER_PROMPT = rb"User Name\s*:\s*"
PASSWORD_PROMPT = rb"Password\s*:\s*"
CLI_PROMPT = rb"apc>"
MENU_PROMPT = rb"\n> "
MORE = rb"Press <ENTER> to continue\.\.\."
CONFIRM = rb"Enter 'YES' to continue or <ENTER> to cancel\s*:"
ESC = b"\x1b"


class _SessionLost(DriverError):
    """The connection broke: a kept-alive session is worth one fresh try."""


class _TelnetSpawn(fdspawn):  # type: ignore[misc]
    """pexpect on a socket, with telnet commands answered and removed from the data."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self._iac = b""  # an IAC sequence cut between two reads
        super().__init__(sock.fileno(), timeout=timeout, maxread=4096)

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> bytes:
        data = self._iac + super().read_nonblocking(size, timeout)
        self._iac = b""
        out = bytearray()
        i = 0
        while i < len(data):
            b = data[i]
            if b != IAC:
                out.append(b)
                i += 1
                continue
            if i + 1 >= len(data):
                self._iac = data[i:]
                break
            cmd = data[i + 1]
            if cmd in (DO, DONT, WILL, WONT):
                if i + 2 >= len(data):
                    self._iac = data[i:]
                    break
                self._negotiate(cmd, data[i + 2])
                i += 3
            elif cmd == SB:
                end = data.find(bytes([IAC, SE]), i)
                if end < 0:
                    self._iac = data[i:]
                    break
                i = end + 2
            elif cmd == IAC:
                out.append(IAC)
                i += 2
            else:
                i += 2
        return bytes(out)

    def _negotiate(self, cmd: int, option: int) -> None:
        # Let the device echo and suppress go-ahead (what APC asks for); refuse the rest.
        if cmd == WILL:
            reply = DO if option in (ECHO, SGA) else DONT
        elif cmd == DO:
            reply = WILL if option == SGA else WONT
        else:
            return
        self.sock.sendall(bytes([IAC, reply, option]))


class ApcTelnet(Driver):
    model = "APC Switched PDU (telnet)"
    protocol = "telnet (menu or AOS CLI)"
    tested_against = "`apc_telnet` simulator (telnet on loopback)"
    can_read = True
    options = {
        vol.Required("host"): HostAddress(TELNET_PORT),
        vol.Optional("username", default="apc"): str,
        vol.Optional("password", default="apc"): str,
        vol.Optional("firmware", default="auto"): vol.All(vol.Lower, vol.In(["auto", "menu", "cli"])),
        vol.Optional("keepalive", default=False): bool,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self.host, self.port = split_host(options["host"], TELNET_PORT)
        self._session: _TelnetSpawn | None = None
        self.firmware: str | None = None if options["firmware"] == "auto" else options["firmware"]
        self._deadline = 0.0

    # --- the session --------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _expect(self, patterns: list[bytes], what: str) -> int:
        assert self._session is not None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise DriverError(f"{self._where} took longer than {self.timeout:g} s; gave up while waiting for {what}")
        try:
            return self._session.expect(patterns, timeout=left)
        except pexpect.TIMEOUT:
            raise DriverError(f"no answer from {self._where} within {self.timeout:g} s while waiting for {what}") \
                from None
        except pexpect.EOF:
            raise _SessionLost(f"{self._where} closed the connection while we waited for {what}") from None
        except OSError as e:
            raise _SessionLost(f"connection to {self._where} failed while waiting for {what}: {e.strerror or e}") \
                from None

    def _send(self, text: bytes) -> None:
        assert self._session is not None
        try:
            self._session.sock.sendall(text)
        except OSError as e:
            raise _SessionLost(f"connection to {self._where} lost: {e.strerror or e}") from None

    def _login(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=max(0.1, self._deadline - time.monotonic()))
        except TimeoutError:
            raise DriverError(f"cannot connect to {self._where}: no answer within {self.timeout:g} s") from None
        except OSError as e:
            raise DriverError(f"cannot connect to {self._where}: {e.strerror or e}") from None
        sock.settimeout(None)
        self._session = _TelnetSpawn(sock, self.timeout)
        self._expect([USER_PROMPT], "the User Name prompt")
        self._send(self.config["username"].encode() + b"\r\n")
        self._expect([PASSWORD_PROMPT], "the Password prompt")
        self._send(self.config["password"].encode() + b"\r\n")
        found = self._expect([CLI_PROMPT, rb"Control Console", USER_PROMPT, rb"Bye"], "the prompt after login")
        if found >= 2:
            raise DriverError(f"{self._where} refused the login: wrong username or password")
        firmware = "cli" if found == 0 else "menu"
        if self.firmware is None:
            self.firmware = firmware
        elif self.firmware != firmware:
            raise DriverError(f"{self._where} speaks the {firmware} firmware dialogue, but firmware: {self.firmware} "
                              "is configured")
        if firmware == "menu":
            self._expect([MENU_PROMPT], "the main menu")

    def _logout(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            if self.firmware == "cli":
                session.sock.sendall(b"exit\r\n")
            else:
                session.sock.sendall(b"4\r\n")
            session.expect([rb"Bye", pexpect.EOF], timeout=min(2.0, max(0.1, self._deadline - time.monotonic())))
        except (OSError, pexpect.TIMEOUT, pexpect.EOF):
            pass
        finally:
            session.sock.close()

    def _run(self, work: Any) -> Any:
        """Log in (or reuse the kept session), do ``work``, and log out unless kept alive."""
        self._deadline = time.monotonic() + self.timeout
        reused = self._session is not None
        try:
            if self._session is None:
                self._login()
            try:
                result = work()
            except _SessionLost:
                if not reused:
                    raise
                # the kept session went stale: start afresh once
                self._drop()
                self._login()
                result = work()
            if not self.config["keepalive"]:
                self._logout()
            return result
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.sock.close()
            except OSError:
                pass

    # --- CLI firmware ---------------------------------------------------------------------------------

    def _cli(self, command: str) -> str:
        assert self._session is not None
        self._send(command.encode() + b"\r\n")
        self._expect([rb"E\d{3}: [^\r\n]*"], f"the answer to {command.split()[0]}")
        code = self._session.after.decode(errors="replace").strip()
        self._expect([CLI_PROMPT], "the apc> prompt")
        body = self._session.before.decode(errors="replace")
        if not code.startswith("E000"):
            raise DriverError(f"{self._where} answered {command.split()[0]} with {code}")
        return body

    def _cli_state(self, port: int) -> bool:
        body = self._cli(f"olStatus {port}")
        m = re.search(rf"^\s*{port}:.*:\s*(On|Off)\s*$", body, re.MULTILINE | re.IGNORECASE)
        if not m:
            raise DriverError(f"{self._where} did not list outlet {port} in olStatus")
        return m.group(1).lower() == "on"

    # --- menu firmware --------------------------------------------------------------------------------

    def _screen(self, what: str) -> bytes:
        """Everything up to the next menu prompt, pressing ENTER through pages."""
        assert self._session is not None
        text = b""
        while True:
            found = self._expect([MORE, MENU_PROMPT], what)
            text += self._session.before
            if found == 1:
                return text
            self._send(b"\r\n")

    def _menu_outlets(self) -> tuple[dict[int, bool], int]:
        """From the main menu to the outlet list: every outlet's state, and how deep the list is.

        AP79xx units list outlets under Device Manager > Outlet Management > Outlet
        Control/Configuration; AP92xx (and AP9606 cards) list them in Device Manager itself.
        """
        self._send(b"1\r\n")
        text = self._screen("the Device Manager menu")
        depth = 1
        if b"Outlet Management" in text:
            self._send(b"2\r\n")
            self._screen("the Outlet Management menu")
            self._send(b"1\r\n")
            text = self._screen("the outlet list")
            depth = 3
        states: dict[int, bool] = {}
        for m in re.finditer(rb"^\s*(\d+)-\s+.*?\s(ON|OFF)\s*$", text, re.MULTILINE):
            states[int(m.group(1))] = m.group(2) == b"ON"
        if not states:
            raise DriverError(f"{self._where}: found no outlet list in the Device Manager menus")
        return states, depth

    def _menu_to_main(self, levels: int) -> None:
        for _ in range(levels):
            self._send(ESC)
            self._screen("a menu after ESC")  # the outlet list pages on the way back too

    def _menu_get(self, port: int) -> bool:
        states, depth = self._menu_outlets()
        self._menu_to_main(depth)
        if port not in states:
            raise DriverError(f"{self._where} lists no outlet {port} (it has {len(states)})")
        return states[port]

    def _menu_do(self, port: int, action: str) -> None:
        states, depth = self._menu_outlets()
        if port not in states:
            self._menu_to_main(depth)
            raise DriverError(f"{self._where} lists no outlet {port} (it has {len(states)})")
        self._send(f"{port}\r\n".encode())
        if b"Control Outlet" not in self._screen(f"outlet {port}'s menu"):
            raise DriverError(f"{self._where}: outlet {port}'s menu has no Control Outlet entry")
        self._send(b"1\r\n")
        if b"Immediate On" not in self._screen("the Control Outlet menu"):
            raise DriverError(f"{self._where}: the Control Outlet menu has no Immediate On entry")
        self._send({"on": b"1", "off": b"2", "reboot": b"3"}[action] + b"\r\n")
        self._expect([CONFIRM], "the YES confirmation")
        self._send(b"YES\r\n")
        self._expect([MORE], "the confirmation that the command was issued")
        self._send(b"\r\n")
        self._screen("the Control Outlet menu")
        self._menu_to_main(depth + 2)

    # --- the Driver contract ---------------------------------------------------------------------------

    def set(self, port: int, on: bool) -> None:
        def work() -> None:
            if self.firmware == "cli":
                self._cli(f"{'olOn' if on else 'olOff'} {port}")
            else:
                self._menu_do(port, "on" if on else "off")
        self._run(work)

    def get(self, port: int) -> bool:
        return self._run(lambda: self._cli_state(port) if self.firmware == "cli" else self._menu_get(port))

    def close(self) -> None:
        self._drop()
