"""APC telnet simulator: the menu firmware (every layout PDUDaemon walks) and the CLI firmware (``apc>``).

This module owns an asyncio telnet server on loopback, in its own thread, that speaks
the two APC dialogues from protocols.md: the login prompts, telnet option negotiation
(IAC WILL ECHO / WILL SGA), the menu tree with a paged outlet list and the ``YES``
confirmation, or the CLI's ``olOn``/``olOff``/``olReboot``/``olStatus`` commands.
``menu`` picks the model's menu tree: ``ap7952`` (Device Manager > Outlet Management >
Outlet Control/Configuration > outlet > Control Outlet), ``ap7900`` (Device Manager item 3),
``ap7932`` (no Control Outlet step), ``ap9210`` (Outlet Manager, Control of Outlet, Turn
Outlet On/Off), ``ap9218`` (outlets in Device Manager) and ``ap9218-occ`` (its outlet
menu says Outlet Control/Configuration). The outlets are held in memory (``outlet(n)``).
Failure modes, settable while running with :meth:`set_failure`: ``delay`` before every
output, ``drop_after`` closes the connection after that many lines from the client,
``silent`` accepts and never says a word, ``wrong_prompt`` greets with some other
device's ``login:``; a wrong password is refused as the device does (asked again, then
hung up).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import voluptuous as vol

from pdumqtt.simulators import Simulator, loopback_port

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
ECHO, SGA = 1, 3
ESC = "\x1b"

BANNER = (
    "\r\n\r\nAmerican Power Conversion               Network Management Card AOS      v{aos}\r\n"
    "(c) Copyright 2009 All Rights Reserved  Rack PDU APP                     v{aos}\r\n"
    "-------------------------------------------------------------------------------\r\n"
    "Name      : pdusim                                    Date : 01/01/2026\r\n"
    "Contact   : Unknown                                   Time : 12:00:00\r\n"
    "Location  : Unknown                                   User : Administrator\r\n"
    "Up Time   : 0 Days 1 Hour 0 Minute                    Stat : P+ N+ A+\r\n\r\n"
)


class _Closed(Exception):
    pass


class _Session:
    """One telnet connection: byte-level IAC handling, then the chosen dialogue."""

    def __init__(self, sim: ApcTelnetSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sim, self.reader, self.writer = sim, reader, writer
        self.pending = bytearray()
        self.lines = 0
        self.eat_lf = False

    async def out(self, text: str) -> None:
        delay = self.sim.failure["delay"]
        if delay:
            await asyncio.sleep(delay)
        self.writer.write(text.encode())
        await self.writer.drain()

    async def _byte(self) -> int:
        while True:
            data = await self.reader.read(1)
            if not data:
                raise _Closed
            b = data[0]
            if b != IAC:
                return b
            cmd = (await self.reader.read(1) or b"\0")[0]
            if cmd in (DO, DONT, WILL, WONT):
                option = (await self.reader.read(1) or b"\0")[0]
                self.sim.negotiated.append((cmd, option))  # we already said what we do
            elif cmd == SB:
                while True:
                    chunk = await self.reader.read(1)
                    if not chunk:
                        raise _Closed
                    if chunk[0] == IAC and (await self.reader.read(1))[:1] == bytes([SE]):
                        break
            elif cmd == IAC:
                return IAC

    async def key_or_line(self) -> str:
        """A line the client typed, or ESC on its own (the menus react to it at once)."""
        buf = bytearray()
        while True:
            b = await self._byte()
            if b == 0x1B and not buf:
                return self._count(ESC)
            if b in (0x0D, 0x0A):
                if b == 0x0A and self.eat_lf and not buf:
                    self.eat_lf = False  # the LF of a CR LF pair
                    continue
                self.eat_lf = b == 0x0D
                return self._count(buf.decode(errors="replace").strip())
            if b == 0:
                continue
            buf.append(b)

    def _count(self, line: str) -> str:
        self.lines += 1
        drop = self.sim.failure["drop_after"]
        if drop and self.lines > drop:
            raise _Closed
        return line

    async def run(self) -> None:
        try:
            if self.sim.failure["silent"]:
                while await self.reader.read(100):
                    pass
                return
            self.writer.write(bytes([IAC, WILL, ECHO, IAC, WILL, SGA]))
            if not await self.login():
                await self.out("\r\nConnection Closed - Bye\r\n")
                return
            if self.sim.config["firmware"] == "cli":
                await self.cli()
            else:
                await self.menu()
        except (_Closed, ConnectionError):
            pass
        finally:
            self.writer.close()

    async def login(self) -> bool:
        cfg = self.sim.config
        if self.sim.failure["wrong_prompt"]:  # some other device's login: never the APC prompts
            while True:
                await self.out("\r\nlogin: ")
                await self.key_or_line()
        tries = 0
        while tries < 3:
            await self.out("\r\nUser Name : ")
            user = await self.key_or_line()
            if not user:
                continue  # ENTER at the user name asks again, as the device does
            tries += 1
            await self.out("\r\nPassword  : ")
            password = await self.key_or_line()
            if user == cfg["username"] and password == cfg["password"]:
                return True
            await asyncio.sleep(0.05)
        return False

    # --- CLI firmware ----------------------------------------------------------------------------

    async def cli(self) -> None:
        await self.out(BANNER.format(aos="6.8.2") + "Type ? for command listing\r\n"
                       "Use tcpip command for IP address(-i), subnet(-s), and gateway(-g)\r\n\r\napc>")
        while True:
            words = (await self.key_or_line()).split()
            if not words:
                await self.out("\r\napc>")
                continue
            cmd, args = words[0].lower(), words[1:]
            if cmd in ("exit", "quit", "bye"):
                self.sim.logouts += 1
                await self.out("\r\nBye.\r\n")
                return
            await self.out("\r\n" + self.cli_reply(cmd, args) + "\r\n\r\napc>")

    def cli_reply(self, cmd: str, args: list[str]) -> str:
        outlets = self.sim.outlets
        if cmd not in ("olon", "oloff", "olreboot", "olstatus"):
            return "E101: Command Not Found"
        if len(args) != 1:
            return "E102: Parameter Error"
        if args[0].lower() == "all":
            ports = sorted(outlets)
        elif args[0].isdigit() and int(args[0]) in outlets:
            ports = [int(args[0])]
        else:
            return "E102: Parameter Error"
        if cmd == "olstatus":
            rows = [f" {n}: Outlet {n}: {'On' if self.sim.outlet(n) else 'Off'}" for n in ports]
            return "E000: Success\r\n" + "\r\n".join(rows)
        for n in ports:
            self.sim.switch(n, {"olon": "on", "oloff": "off", "olreboot": "reboot"}[cmd])
        return "E000: Success"

    # --- menu firmware ---------------------------------------------------------------------------

    @property
    def layout(self) -> str:
        return LAYOUT_ALIASES.get(self.sim.config["menu"], self.sim.config["menu"])

    async def menu(self) -> None:
        await self.out(BANNER.format(aos="3.7.3"))
        first = "1- Outlet Manager" if self.layout == "ap9210" else "1- Device Manager"
        while True:
            await self.out("------- Control Console -------------------------------------------------------\r\n\r\n"
                           f"     {first}\r\n     2- Network\r\n     3- System\r\n     4- Logout\r\n\r\n"
                           "     <ESC>- Main Menu, <ENTER>- Refresh, <CTRL-L>- Event Log\r\n> ")
            key = await self.key_or_line()
            if key == "4":
                self.sim.logouts += 1
                await self.out("\r\nConnection Closed - Bye\r\n")
                return
            if key != "1":
                continue
            if self.layout == "ap9210":
                await self.outlet_list("Outlet Manager")
            elif self.layout.startswith("ap9218"):
                await self.outlet_list("Device Manager")
            elif self.layout == "ap7900":
                await self.device_manager_ap7900()
            else:
                await self.device_manager()

    async def device_manager(self) -> None:
        while True:
            await self.out("\r\n------- Device Manager --------------------------------------------------------\r\n\r\n"
                           "     1- Phase Management\r\n     2- Outlet Management\r\n"
                           "     3- Power Supply Status\r\n\r\n     <ESC>- Back, <ENTER>- Refresh\r\n> ")
            key = await self.key_or_line()
            if key == ESC:
                return
            if key == "2":
                await self.outlet_management()

    async def device_manager_ap7900(self) -> None:
        # AP7900/AP7920 firmware: the outlets sit at Device Manager item 3
        while True:
            await self.out("\r\n------- Device Manager --------------------------------------------------------\r\n\r\n"
                           "     1- Phase Monitor/Configuration\r\n     2- Outlet Restriction\r\n"
                           "     3- Outlet Control/Configuration\r\n     4- Power Supply Status\r\n\r\n"
                           "     <ESC>- Back, <ENTER>- Refresh\r\n> ")
            key = await self.key_or_line()
            if key == ESC:
                return
            if key == "3":
                await self.outlet_list()

    async def outlet_management(self) -> None:
        while True:
            await self.out("\r\n------- Outlet Management -----------------------------------------------------\r\n\r\n"
                           "     1- Outlet Control/Configuration\r\n     2- Outlet Restriction\r\n\r\n"
                           "     <ESC>- Back, <ENTER>- Refresh\r\n> ")
            key = await self.key_or_line()
            if key == ESC:
                return
            if key == "1":
                await self.outlet_list()

    async def outlet_list(self, title: str = "Outlet Control/Configuration") -> None:
        page = self.sim.config["page_size"]
        while True:
            await self.out(f"\r\n------- {title} ---------------------------------\r\n\r\n")
            for i, n in enumerate(sorted(self.sim.outlets), 1):
                await self.out(f"     {n:>2}- Outlet {n:<22} {'ON' if self.sim.outlet(n) else 'OFF'}\r\n")
                if page and i % page == 0 and i < len(self.sim.outlets):
                    await self.out("\r\nPress <ENTER> to continue...")
                    if await self.key_or_line() == ESC:
                        break
            await self.out(f"     {len(self.sim.outlets) + 1:>2}- Master Control/Configuration\r\n\r\n"
                           "     <ESC>- Back, <ENTER>- Refresh, <CTRL-L>- Event Log\r\n> ")
            key = await self.key_or_line()
            if key == ESC:
                return
            if key.isdigit() and int(key) in self.sim.outlets:
                if self.layout == "ap7932":
                    await self.control_outlet(key_title=f"Outlet {key}", n=int(key))  # no Control Outlet step
                else:
                    await self.outlet_menu(int(key))

    async def outlet_menu(self, n: int) -> None:
        entry = {"ap9210": "1- Control of Outlet\r\n     2- Configuration of Outlet",
                 "ap9218-occ": "1- Outlet Control/Configuration\r\n     2- Outlet Name"}.get(
                     self.layout, "1- Control Outlet\r\n     2- Configure Outlet")
        while True:
            await self.out(f"\r\n------- Outlet {n} ----------------------------------------------------------\r\n\r\n"
                           f"        Name         : Outlet {n}\r\n        Outlet       : {n}\r\n"
                           f"        State        : {'ON' if self.sim.outlet(n) else 'OFF'}\r\n\r\n"
                           f"     {entry}\r\n\r\n"
                           "     ?- Help, <ESC>- Back, <ENTER>- Refresh, <CTRL-L>- Event Log\r\n> ")
            key = await self.key_or_line()
            if key == ESC:
                return
            if key == "1":
                await self.control_outlet(key_title=f"Control Outlet {n}", n=n)

    async def control_outlet(self, key_title: str, n: int) -> None:
        if self.layout == "ap9210":
            actions = {"1": ("Turn Outlet On", "on"), "2": ("Turn Outlet Off", "off"), "3": ("Reboot Outlet", "reboot")}
            listing = "     1- Turn Outlet On\r\n     2- Turn Outlet Off\r\n     3- Reboot Outlet\r\n"
        else:
            actions = {"1": ("Immediate On", "on"), "2": ("Immediate Off", "off"), "3": ("Immediate Reboot", "reboot")}
            listing = ("     1- Immediate On\r\n     2- Immediate Off\r\n     3- Immediate Reboot\r\n"
                       "     4- Delayed On\r\n     5- Delayed Off\r\n     6- Delayed Reboot\r\n     7- Cancel\r\n")
        while True:
            await self.out(f"\r\n------- {key_title} ------------------------------------------\r\n\r\n"
                           f"{listing}\r\n"
                           "     ?- Help, <ESC>- Back, <ENTER>- Refresh, <CTRL-L>- Event Log\r\n> ")
            key = await self.key_or_line()
            if key == ESC:
                return
            if key not in actions:
                continue
            title, action = actions[key]
            rule = "        " + "-" * 71 + "\r\n"
            await self.out(f"\r\n{rule}        {title}\r\n{rule}\r\n"
                           f"        This command will act on outlet {n} now.\r\n\r\n"
                           "        Enter 'YES' to continue or <ENTER> to cancel : ")
            if await self.key_or_line() == "YES":
                self.sim.switch(n, action)
                await self.out("\r\n\r\n        Command successfully issued.\r\n\r\n"
                               "        Press <ENTER> to continue...")
                await self.key_or_line()


#: the menu layouts by model (see drivers/apc_telnet.py LAYOUTS); ap79xx and ap92xx are the old names
MENU_LAYOUTS = ["ap7952", "ap7900", "ap7932", "ap9210", "ap9218", "ap9218-occ"]
LAYOUT_ALIASES = {"ap79xx": "ap7952", "ap92xx": "ap9218"}


class ApcTelnetSimulator(Simulator):
    options = {
        vol.Optional("listen", default="127.0.0.1:0"): str,
        vol.Optional("firmware", default="menu"): vol.In(["menu", "cli"]),
        vol.Optional("menu", default="ap7952"): vol.In([*MENU_LAYOUTS, *LAYOUT_ALIASES]),
        vol.Optional("outlets", default=8): vol.All(int, vol.Range(min=1, max=48)),
        vol.Optional("initial", default="off"): vol.In(["on", "off"]),
        vol.Optional("username", default="apc"): str,
        vol.Optional("password", default="apc"): str,
        vol.Optional("page_size", default=0): vol.All(int, vol.Range(min=0)),
        vol.Optional("reboot_time", default=0.5): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("delay", default=0.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("drop_after", default=0): vol.All(int, vol.Range(min=0)),
        vol.Optional("silent", default=False): bool,
        vol.Optional("wrong_prompt", default=False): bool,
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(vol.Schema(self.options)(dict(options)))
        self._port = loopback_port(self.config["listen"])
        on = self.config["initial"] == "on"
        self.outlets: dict[int, bool] = {n: on for n in range(1, self.config["outlets"] + 1)}
        self._back_on_at: dict[int, float] = {}
        self.reboots: dict[int, int] = {}
        self.logins = 0  # connections accepted
        self.logouts = 0  # sessions ended by the client's own logout
        self.negotiated: list[tuple[int, int]] = []  # telnet (command, option) pairs the clients sent
        self.failure = {k: self.config[k] for k in ("delay", "drop_after", "silent", "wrong_prompt")}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    def outlet(self, n: int) -> bool:
        with self._lock:
            at = self._back_on_at.get(n)
            if at is not None and time.monotonic() >= at:
                self.outlets[n] = True
                del self._back_on_at[n]
            return self.outlets[n]

    def switch(self, n: int, action: str) -> None:
        with self._lock:
            self._back_on_at.pop(n, None)
            if action == "reboot":
                self.outlets[n] = False
                self.reboots[n] = self.reboots.get(n, 0) + 1
                self._back_on_at[n] = time.monotonic() + self.config["reboot_time"]
            else:
                self.outlets[n] = action == "on"

    def set_failure(self, *, delay: float | None = None, drop_after: int | None = None,
                    silent: bool | None = None, wrong_prompt: bool | None = None) -> None:
        for key, value in (("delay", delay), ("drop_after", drop_after), ("silent", silent),
                           ("wrong_prompt", wrong_prompt)):
            if value is not None:
                self.failure[key] = value

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.logins += 1
        try:
            await _Session(self, reader, writer).run()
        except asyncio.CancelledError:  # stop() ends open sessions
            writer.close()

    def start(self) -> None:
        if self._thread is not None:
            return
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, "127.0.0.1", self._port, reuse_address=True))
                self._port = self._server.sockets[0].getsockname()[1]
            except BaseException as e:
                errors.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="apc-telnet-sim", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise errors[0]

    def stop(self) -> None:
        loop, thread, server = self._loop, self._thread, self._server
        if loop is None or thread is None:
            return

        async def shut() -> None:
            if server is not None:
                server.close()
                if hasattr(server, "close_clients"):
                    server.close_clients()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shut(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        self._loop = self._thread = self._server = None
