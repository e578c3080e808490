"""APC outlets over telnet: the menu firmware (AP79xx, AP92xx, AP9210) and the CLI firmware (AOS 5+).

This module owns the APC dialogues on top of the shared telnet session
(:mod:`pdumqtt.drivers.telnet`): the login, telling the two firmwares apart from what
follows it (``apc>`` for the CLI, the ``Control Console`` menu otherwise) unless
``firmware`` says, and either ``olOn``/``olOff``/``olStatus`` or a walk through the menus.
APC menu trees differ by model; the five layouts PDUDaemon encodes are in ``LAYOUTS``,
and ``menu: auto`` finds its way through any of them. PDUDaemon's names (``apc7952`` ...
``apc8959``) are small classes at the end, each fixed to its model's walk, so a wrong
walk fails with what the screen showed instead of switching something else. One session
per call by default; ``keepalive`` keeps one open and reconnects once when it was dropped.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, HostAddress, NoSuchOutlet, split_host
from pdumqtt.drivers.telnet import DO, ECHO, SGA, SessionLost, TelnetSession, pdudaemon_address

__all__ = ["DO", "ECHO", "LAYOUTS", "SGA", "ApcTelnet"]

TELNET_PORT = 23

USER_PROMPT = rb"User Name\s*:\s*"
PASSWORD_PROMPT = rb"Password\s*:\s*"
CLI_PROMPT = rb"apc>"
MENU_PROMPT = rb"\n> "
MORE = rb"Press <ENTER> to continue\.\.\."
CONFIRM = rb"Enter 'YES' to continue or <ENTER> to cancel\s*:"
ESC = b"\x1b"
OUTLET_ROW = re.compile(rb"^\s*(\d+)-\s+.*?\s(ON|OFF)\s*$", re.MULTILINE)

#: The menu walks PDUDaemon encodes, by the model that has them: main menu to an outlet's switch.
LAYOUTS = {
    "ap7952": "1- Device Manager > 2- Outlet Management > 1- Outlet Control/Configuration > the outlet > "
              "1- Control Outlet > Immediate On/Off",
    "ap7900": "1- Device Manager > 3- Outlet Control/Configuration > the outlet > 1- Control Outlet > "
              "Immediate On/Off",
    "ap7932": "1- Device Manager > 2- Outlet Management > 1- Outlet Control/Configuration > the outlet > "
              "Immediate On/Off (no Control Outlet step)",
    "ap9210": "1- Outlet Manager > the outlet > 1- Control of Outlet > Turn Outlet On/Off",
    "ap9218": "1- Device Manager (lists the outlets) > the outlet > 1- Control Outlet or "
              "1- Outlet Control/Configuration > Immediate On/Off",
}
#: Layouts that share the way to the outlet list (they differ at the outlet's own screen).
_TO_LIST = {"ap7952": "ap79xx", "ap7932": "ap79xx", "ap7900": "ap7900", "ap9210": "ap9210", "ap9218": "ap9218"}
#: The outlet screen entry that leads to the switch, and the switch screen's on/off entries.
_CONTROL = {
    "ap7952": ([b"1- Control Outlet"], (b"Immediate On", b"Immediate Off")),
    "ap7900": ([b"1- Control Outlet"], (b"Immediate On", b"Immediate Off")),
    "ap7932": ([], (b"Immediate On", b"Immediate Off")),
    "ap9210": ([b"1- Control of Outlet", b"1- Outlet Control/Configuration"], (b"Turn Outlet On", b"Turn Outlet Off")),
    "ap9218": ([b"1- Control Outlet", b"1- Outlet Control/Configuration"], (b"Immediate On", b"Immediate Off")),
}


def _entries(screen: bytes) -> str:
    """A screen's numbered entries, for an error message: ``1- Device Manager, 2- Network``."""
    found = re.findall(rb"^\s*(\d+- [^\r\n]*?)\s*$", screen, re.MULTILINE)
    return ", ".join(e.decode(errors="replace") for e in found[:8]) or "no numbered entries"


class ApcTelnet(Driver):
    model = "APC Switched PDU (telnet)"
    protocol = "telnet (menu or AOS CLI)"
    tested_against = "`apc_telnet` simulator (telnet on loopback), every menu layout"
    can_read = True
    options = {
        vol.Required("host"): HostAddress(TELNET_PORT),
        vol.Optional("username", default="apc"): str,
        vol.Optional("password", default="apc"): str,
        vol.Optional("firmware", default="auto"): vol.All(vol.Lower, vol.In(["auto", "menu", "cli"])),
        vol.Optional("menu", default="auto"): vol.All(vol.Lower, vol.In(["auto", *LAYOUTS])),
        vol.Optional("keepalive", default=False): bool,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self.host, self.port = split_host(options["host"], TELNET_PORT)
        self.session = TelnetSession(self.host, self.port, timeout, secrets=(options["password"],))
        self.firmware: str | None = None if options["firmware"] == "auto" else options["firmware"]
        #: the configured layout; None finds the way (and remembers it in ``found_layout``)
        self.layout: str | None = None if options.get("menu", "auto") == "auto" else options["menu"]
        self.found_layout: str | None = self.layout

    # --- the session --------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return self.session.where

    def _expect(self, patterns: list[bytes], what: str) -> int:
        return self.session.expect(patterns, what)

    def _send(self, text: bytes) -> None:
        self.session.send(text)

    def _login(self) -> None:
        self.session.connect()
        # a CR first, as PDUDaemon sends it: devices that wait for a key then prompt too
        self._send(b"\r\n")
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
        self.session.goodbye(b"exit\r\n" if self.firmware == "cli" else b"4\r\n", [rb"Bye"])

    def _run(self, work: Any) -> Any:
        """Log in (or reuse the kept session), do ``work``, and log out unless kept alive."""
        self.session.start_call()
        reused = self.session.is_open
        try:
            if not reused:
                self._login()
            try:
                result = work()
            except SessionLost:
                if not reused:
                    raise
                # the kept session went stale: start afresh once
                self.session.close()
                self._login()
                result = work()
            if not self.config["keepalive"]:
                self._logout()
            return result
        except BaseException:
            self.session.close()
            raise

    # --- CLI firmware ---------------------------------------------------------------------------------

    def _cli(self, command: str) -> str:
        self._send(command.encode() + b"\r\n")
        self._expect([CLI_PROMPT], f"the apc> prompt after {command.split()[0]}")
        body = self.session.before.decode(errors="replace")
        m = re.search(r"E\d{3}: [^\r\n]*", body)
        if m is None:
            raise DriverError(f"{self._where} answered {command.split()[0]} without an E-code (expected E000: Success)")
        code = m.group(0).strip()
        if code.startswith("E102"):
            # the driver only sends an outlet number, so a parameter error is that number: out of range
            raise NoSuchOutlet(f"{self._where} answered {command.split()[0]} with {code}: "
                               f"no outlet {command.split()[-1]}")
        if not code.startswith("E000"):
            raise DriverError(f"{self._where} answered {command.split()[0]} with {code}")
        return body[m.end():]

    def _cli_state(self, port: int) -> bool:
        body = self._cli(f"olStatus {port}")
        m = re.search(rf"^\s*{port}:.*:\s*(On|Off)\s*$", body, re.MULTILINE | re.IGNORECASE)
        if not m:
            raise DriverError(f"{self._where} did not list outlet {port} in olStatus")
        return m.group(1).lower() == "on"

    # --- menu firmware --------------------------------------------------------------------------------

    def _screen(self, what: str) -> bytes:
        """Everything up to the next menu prompt, pressing ENTER through pages."""
        text = b""
        while True:
            found = self._expect([MORE, rb"\n> "], what)
            text += self.session.before
            if found == 1:
                return text
            self._send(b"\r\n")

    def _choose(self, key: str, what: str) -> bytes:
        self._send(key.encode() + b"\r\n")
        return self._screen(what)

    def _wrong_walk(self, expected: str, saw: str) -> DriverError:
        name = getattr(self, "pdudaemon_name", "") or f"menu: {expected}"
        return DriverError(f"{self._where}: {saw}; {name} walks {LAYOUTS[expected]}. "
                           "Is this the model the driver name says? (apc_telnet with menu: auto finds its way)")

    def _found(self, family: str, saw: str) -> None:
        """Check that the way the device's menus go is the configured layout's (when one is configured)."""
        if self.layout is not None and _TO_LIST[self.layout] != family:
            raise self._wrong_walk(self.layout, saw)

    def _menu_outlets(self) -> tuple[dict[int, bool], int, str]:
        """From the main menu to the outlet list: the states it shows, how deep it is, and the way taken."""
        main = self._choose("", "the main menu")  # ENTER refreshes it, as PDUDaemon starts
        if b"1- Outlet Manager" in main:
            self._found("ap9210", f"the main menu has 1- Outlet Manager ({_entries(main)})")
            text = self._choose("1", "the Outlet Manager menu")
            if b"Outlet Manager" not in text:
                raise DriverError(f"{self._where}: item 1 of the main menu did not open the Outlet Manager")
            family, depth = "ap9210", 1
        elif b"1- Device Manager" in main:
            if self.layout == "ap9210":
                raise self._wrong_walk("ap9210", f"the main menu has no 1- Outlet Manager ({_entries(main)})")
            text = self._choose("1", "the Device Manager menu")
            managed = re.search(rb"(\d+)- Outlet Management", text)
            occ = re.search(rb"(\d+)- Outlet Control/Configuration", text)
            listed = OUTLET_ROW.search(text) is not None
            saw = ("the Device Manager menu lists the outlets itself" if listed
                   else f"the Device Manager menu has {_entries(text)}")
            # a configured layout walks its own way; auto goes by what the menu offers
            family = _TO_LIST[self.layout] if self.layout else (
                "ap9218" if listed else "ap79xx" if managed else "ap7900" if occ else None)
            if family is None:
                raise DriverError(f"{self._where}: found no outlet list in the Device Manager menu ({_entries(text)})")
            if family == "ap9218":
                if not listed and (managed or occ):
                    raise self._wrong_walk(self.layout or "ap9218", saw)
                depth = 1
            elif family == "ap79xx":
                if managed is None:
                    raise self._wrong_walk(self.layout or "ap7952", saw)
                text = self._choose(managed.group(1).decode(), "the Outlet Management menu")
                m = re.search(rb"(\d+)- Outlet Control/Configuration", text)
                if m is None:
                    raise DriverError(f"{self._where}: the Outlet Management menu has no Outlet Control/Configuration "
                                      f"entry ({_entries(text)})")
                text = self._choose(m.group(1).decode(), "the outlet list")
                depth = 3
            elif family == "ap7900":
                if occ is None:
                    raise self._wrong_walk(self.layout or "ap7900", saw)
                text = self._choose(occ.group(1).decode(), "the outlet list")
                depth = 2
        else:
            raise DriverError(f"{self._where}: the main menu has neither 1- Device Manager nor 1- Outlet Manager "
                              f"({_entries(main)})")
        states = {int(m.group(1)): m.group(2) == b"ON" for m in OUTLET_ROW.finditer(text)}
        return states, depth, family

    def _menu_to_main(self, levels: int) -> None:
        for _ in range(levels):
            self._send(ESC)
            self._screen("a menu after ESC")  # the outlet list pages on the way back too

    def _menu_get(self, port: int) -> bool:
        states, depth, _ = self._menu_outlets()
        self._menu_to_main(depth)
        if not states:
            raise DriverError(f"{self._where}: the outlet list shows no outlet states to read")
        if port not in states:
            raise NoSuchOutlet(f"{self._where} lists no outlet {port} (it has {len(states)})")
        return states[port]

    def _control_layout(self, family: str, outlet_screen: bytes, port: int) -> str:
        """Which layout the outlet's own screen belongs to (the AP7952 and AP7932 part here)."""
        if family != "ap79xx":
            return self.layout or family
        has_control = b"1- Control Outlet" in outlet_screen
        has_switch = b"Immediate On" in outlet_screen
        if self.layout == "ap7932" and not has_switch:
            raise self._wrong_walk("ap7932", f"outlet {port}'s screen has no Immediate On entry "
                                             f"({_entries(outlet_screen)})")
        if self.layout == "ap7952" and not has_control:
            raise self._wrong_walk("ap7952", f"outlet {port}'s screen has no 1- Control Outlet entry "
                                             f"({_entries(outlet_screen)})")
        return self.layout or ("ap7952" if has_control else "ap7932")

    def _menu_do(self, port: int, action: str) -> None:
        states, depth, family = self._menu_outlets()
        if states and port not in states:
            self._menu_to_main(depth)
            raise NoSuchOutlet(f"{self._where} lists no outlet {port} (it has {len(states)})")
        text = self._choose(str(port), f"outlet {port}'s menu")
        depth += 1
        layout = self._control_layout(family, text, port)
        entries, (on_text, off_text) = _CONTROL[layout]
        if entries:
            if not any(e in text for e in entries):
                want = " or ".join(e.decode() for e in entries)
                raise self._wrong_walk(layout, f"outlet {port}'s screen has no {want} entry ({_entries(text)})")
            text = self._choose("1", f"outlet {port}'s control menu")
            depth += 1
        wanted = on_text if action == "on" else off_text
        if wanted not in text:
            raise self._wrong_walk(layout, f"outlet {port}'s control menu has no {wanted.decode()} entry "
                                           f"({_entries(text)})")
        self.found_layout = layout
        self._send({"on": b"1", "off": b"2"}[action] + b"\r\n")
        self._expect([CONFIRM], "the YES confirmation")
        self._send(b"YES\r\n")
        self._expect([MORE], "the confirmation that the command was issued")
        self._send(b"\r\n")
        self._screen("the control menu after the command")
        self._menu_to_main(depth)

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
        self.session.close()


# --- PDUDaemon's names, with PDUDaemon's options -------------------------------------------------------


class _ApcTelnetName(ApcTelnet):
    """A PDUDaemon APC name: ``hostname`` (or the PDU's name), ``telnetport``, ``username``, ``password``."""

    native_driver = "apc_telnet"
    pdudaemon_name: ClassVar[str] = ""
    dialogue: ClassVar[str] = "menu"
    walk: ClassVar[str] = "auto"
    options = {
        vol.Optional("hostname"): str,
        vol.Optional("host"): str,
        vol.Optional("telnetport", default=23): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
        vol.Optional("username", default="apc"): str,
        vol.Optional("password", default="apc"): str,
        vol.Optional("keepalive", default=False): bool,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours = {"host": pdudaemon_address(options, pdu, TELNET_PORT), "username": options["username"],
                "password": options["password"], "firmware": self.dialogue, "menu": self.walk,
                "keepalive": options["keepalive"]}
        super().__init__(ours, pdu=pdu, timeout=timeout)


def _menu_name(name: str, layout: str, doc: str, ports: int | None = None) -> type[_ApcTelnetName]:
    attrs = {"pdudaemon_name": name, "walk": layout, "__doc__": doc, "__module__": __name__,
             "model": f"APC AP{name[3:]} (telnet menu)", "fixed_ports": ports}
    return type(name.capitalize(), (_ApcTelnetName,), attrs)


Apc7952 = _menu_name("apc7952", "ap7952", "apc7952: Device Manager > 2 > 1 > outlet > Control Outlet.", 24)
Apc7921 = _menu_name("apc7921", "ap7952", "apc7921: the apc7952 walk.", 8)
Apc7900 = _menu_name("apc7900", "ap7900", "apc7900: Device Manager > 3- Outlet Control/Configuration.", 8)
Apc7920 = _menu_name("apc7920", "ap7900", "apc7920: the apc7900 walk.", 8)
Apc7932 = _menu_name("apc7932", "ap7932", "apc7932: as apc7952 without the Control Outlet step.")
Apc9210 = _menu_name("apc9210", "ap9210", "apc9210: Outlet Manager > outlet > Control of Outlet > Turn Outlet On/Off.",
                     8)
Apc9218 = _menu_name("apc9218", "ap9218", "apc9218, ap9218, ap9606, apc9606: outlets listed in Device Manager.")


class Apc8959(_ApcTelnetName):
    """apc8959: the AOS command line (``olOn``/``olOff``)."""

    model = "APC AP8959 (telnet CLI)"
    pdudaemon_name = "apc8959"
    dialogue = "cli"
