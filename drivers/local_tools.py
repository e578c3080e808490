"""USB hub ports through uhubctl, NXP boards through bcu: local programs run with argv, never a shell.

``uhubctl --location L --port N --action on|off`` switches the power of one port of a
hub that supports per-port power switching; ``uhubctl --location L --port N`` prints
``Port N: <status> power ...`` (``off`` when unpowered), which is how a port is read back.
When the hub is not found, the locations uhubctl does see are listed in the error.
NXP's ``bcu`` drives a board's reset line: ``bcu init [bootmode] [-id=ID] [-board=B]``,
then ``bcu set_gpio <reset_gpio> 1|0`` (the reset is active low unless told otherwise,
so on is 1). The program is found on PATH, then in /sbin, /usr/sbin and /usr/local/sbin,
when the first call runs. The location, gpio and ids come from the config; the port is
a number the runner resolved. PDUDaemon's names ``uhubctl`` and ``bcu`` take its options.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, NoSuchOutlet

SBIN = ("/sbin", "/usr/sbin", "/usr/local/sbin")
HUB_PORTS = 7  # a 7-port hub: the larger of the two common sizes in uhubctl's list of hubs


def _word(what: str) -> Any:
    def check(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise vol.Invalid(f"expected {what}")
        text = str(value)
        if not text or text.startswith("-") or any(c.isspace() or not c.isprintable() for c in text):
            raise vol.Invalid(f"expected {what}, without spaces, not starting with '-'")
        return text
    return check


def find_program(name: str) -> str:
    """The program's path: as given when it has a '/', else searched on PATH and the sbin folders."""
    if "/" in name:
        if os.access(name, os.X_OK):
            return name
        raise DriverError(f"{name} is not an executable program")
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))
    if found is None:
        raise DriverError(f"{name} not found on PATH, nor in {', '.join(SBIN)}: install it (apt-get install {name})")
    return found


def run(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run ``argv`` (no shell) and return its exit status and output, stdout and stderr together."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DriverError(f"{os.path.basename(argv[0])} still running after {timeout:g} s: {' '.join(argv[1:])}") \
            from None
    except OSError as exc:
        raise DriverError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    return done.returncode, done.stdout.decode(errors="replace")


def _tail(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return " / ".join(lines[-3:])[-300:]


class UsbHub(Driver):
    model = "USB hub with per-port power (uhubctl)"
    protocol = "local program (uhubctl, argv)"
    tested_against = "a fake `uhubctl` on PATH keeping the hub's state in a file"
    can_read = True
    options: ClassVar[dict[Any, Any]] = {
        vol.Required("location"): _word("the hub's location as uhubctl prints it, like 1-1.4"),
        vol.Optional("program", default="uhubctl"): vol.All(str, vol.Length(min=1)),
    }

    def _uhubctl(self, *args: str, what: str) -> str:
        program = find_program(self.config["program"])
        location = self.config["location"]
        status, output = run([program, "--location", location, *args], self.timeout)
        if status == 0:
            return output
        if "No compatible devices detected" in output or "No compatible hubs" in output:
            raise DriverError(f"no hub with per-port power at location {location!r}; "
                              f"{self._locations_seen(program)}")
        hint = ""
        if "ermission" in output or "root" in output or "udev" in output:
            hint = ": uhubctl needs write access to the hub (see the udev rules in uhubctl's README)"
        raise DriverError(f"uhubctl {what} at location {location!r} failed (status {status}): {_tail(output)}{hint}")

    def _locations_seen(self, program: str) -> str:
        try:
            _, listing = run([program], self.timeout)
        except DriverError:
            return "uhubctl could not list the hubs it sees"
        seen = sorted(set(re.findall(r"status for hub (\S+)", listing)))
        return f"uhubctl sees hubs at {', '.join(seen)}" if seen else "uhubctl sees no hub it can switch"

    def _statuses(self, port: int, output: str) -> list[tuple[str, str]]:
        """The status lines uhubctl printed for ``port``; NoSuchOutlet when the hub has fewer ports
        (uhubctl then prints none, and switches nothing, yet exits 0)."""
        lines = re.findall(rf"^\s*Port {port}: *([0-9a-fA-F]{{4}})(.*)$", output, re.MULTILINE)
        if not lines:
            count = re.search(r"^Current status for hub \S+ \[.*, (\d+) ports\b", output, re.MULTILINE)
            if count and port > int(count[1]):
                raise NoSuchOutlet(f"port {port} does not exist: the hub at {self.config['location']!r} has "
                                   f"{count[1]} ports")
        return lines

    def set(self, port: int, on: bool) -> None:
        action = "on" if on else "off"
        output = self._uhubctl("--port", str(port), "--action", action, what=f"switching port {port} {action}")
        self._statuses(port, output)

    def get(self, port: int) -> bool:
        output = self._uhubctl("--port", str(port), what=f"reading port {port}")
        lines = self._statuses(port, output)
        if not lines:
            raise DriverError(f"uhubctl printed no status for port {port} of the hub at "
                              f"{self.config['location']!r}: {_tail(output)}")
        _, words = lines[-1]  # the status after the action, when uhubctl prints both
        return "power" in words.split()  # uhubctl prints "off" for an unpowered port


class UHubCtl(UsbHub):
    """PDUDaemon's ``uhubctl``: option ``location``."""

    native_driver = "usb_hub"
    options: ClassVar[dict[Any, Any]] = {
        vol.Required("location"): _word("the hub's location as uhubctl prints it, like 1-1.4"),
    }

    @classmethod
    def ports_for(cls, options: dict[str, Any]) -> tuple[int, str] | None:
        return HUB_PORTS, ("as many as a 7-port hub, the larger common size: `uhubctl --location LOCATION` prints "
                           "the hub's count, set it; ports the hub lacks are refused, and the probe skips them")

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({**options, "program": "uhubctl"}, pdu=pdu, timeout=timeout)


class NxpBcu(Driver):
    model = "NXP board (bcu reset line)"
    protocol = "local program (bcu, argv)"
    tested_against = "a fake `bcu` on PATH keeping the board's state in a file"
    can_read = False
    options: ClassVar[dict[Any, Any]] = {
        vol.Optional("id"): _word("the board's USB path as bcu lsftdi prints it, like 3-7.1"),
        vol.Optional("board"): _word("a board name from bcu lsboard"),
        vol.Optional("program", default="bcu"): vol.All(str, vol.Length(min=1)),
        vol.Optional("reset_gpio", default="reset"): _word("a gpio name from bcu lsgpio"),
        vol.Optional("active_low", default=True): vol.Boolean(),
        vol.Optional("bootmode"): _word("a boot mode from bcu lsbootmode"),
    }

    def _bcu(self, program: str, *args: str, what: str) -> None:
        argv = [program, *args]
        if self.config.get("id"):
            argv.append(f"-id={self.config['id']}")
        if self.config.get("board"):
            argv.append(f"-board={self.config['board']}")
        status, output = run(argv, self.timeout)
        if status != 0:
            board = " ".join(f"{k} {self.config[k]!r}" for k in ("board", "id") if self.config.get(k)) or "the board"
            raise DriverError(f"bcu {what} failed for {board} (status {status}): {_tail(output)}")

    def set(self, port: int, on: bool) -> None:
        if port != 1:
            raise NoSuchOutlet(f"port {port} does not exist: bcu switches one board, port 1")
        program = find_program(self.config["program"])
        init = ["init", self.config["bootmode"]] if self.config.get("bootmode") else ["init"]
        self._bcu(program, *init, what="init")
        level = "1" if on == self.config["active_low"] else "0"
        self._bcu(program, "set_gpio", self.config["reset_gpio"], level, what=f"set_gpio {self.config['reset_gpio']}")


def _flag(value: Any) -> bool:
    """PDUDaemon reads reset_gpio_active_low as ``bool(int(value))``: '1' or 1 is true, '0' or 0 false."""
    try:
        return bool(int(value))
    except (TypeError, ValueError):
        raise vol.Invalid("expected 1 (active low) or 0") from None


class BCU(NxpBcu):
    """PDUDaemon's ``bcu``: id, board, bcu_exe, reset_gpio, reset_gpio_active_low, bootmode."""

    native_driver = "nxp_bcu"
    fixed_ports = 1
    options: ClassVar[dict[Any, Any]] = {
        **{k: v for k, v in NxpBcu.options.items() if str(k) not in ("program", "active_low")},
        vol.Optional("bcu_exe", default="bcu"): vol.All(str, vol.Length(min=1)),
        vol.Optional("reset_gpio_active_low", default="1"): _flag,
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours = {k: v for k, v in options.items() if k not in ("bcu_exe", "reset_gpio_active_low")}
        ours.update(program=options["bcu_exe"], active_low=options["reset_gpio_active_low"])
        super().__init__(ours, pdu=pdu, timeout=timeout)
