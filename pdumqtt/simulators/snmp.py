"""SNMP PDU simulator: a real SNMP agent (snmpsim) on a loopback UDP port.

This module owns the simulated SNMP devices: their data files (generated from the
vendor tables below, numeric OIDs as in protocols.md), the snmpsim subprocess, and the
failure modes. The outlets live in the ``pdusim`` variation module
(``snmpsim_pdu.py``), so writes to a control OID show in the device's state OID.

Communities are data file names as snmpsim wants them; SNMPv3 requests with an empty
context name (what real PDUs expect) are served from ``self.snmprec``. Failure modes:
``delay`` (slow answers), ``silent`` (no answer at all), a wrong community or v3 key
(the agent ignores or reports it, as a real one does), and ``stop()``/``start()`` for a
device that goes away and comes back with its outlets as they were.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import voluptuous as vol

from pdumqtt.simulators import Simulator, loopback_port

ENT = "1.3.6.1.4.1."

#: Per device: sysObjectID, sysDescr, and per-outlet records (kind, OID template, values).
#: ``{n}`` is the outlet number, ``{idx}`` Sentry3's tower.infeed.outlet for it. ``meter``
#: records and ``totals`` (the PDU's own meter, once per device) exist unless ``metered`` is off.
#: ``pending_on``/``pending_off`` are what a state column reads while a switch waits
#: (``switch_delay``, or an Eaton command's delay).
DEVICES: dict[str, dict[str, Any]] = {
    "apc_spdu": {
        "sysoid": ENT + "318.1.3.4.2", "descr": "APC MasterSwitch (simulated)",
        "records": [("control", ENT + "318.1.1.4.4.2.1.3.{n}", "on=1,off=2,reboot=3"),
                    ("name", ENT + "318.1.1.4.5.2.1.3.{n}", "")],
    },
    # MasterSwitch Plus: no sPDUOutletCtl table, only the MSP one (unit 1, module 1)
    "apc_msp": {
        "sysoid": ENT + "318.1.3.4.4", "descr": "APC MasterSwitch Plus (simulated)",
        "records": [("control", ENT + "318.1.1.6.5.1.1.5.1.1.{n}", "on=1,off=3,reboot=5"),
                    ("name", ENT + "318.1.1.6.7.1.1.4.1.1.{n}", ""),
                    ("state", ENT + "318.1.1.6.7.1.1.5.1.1.{n}", "on=1,off=2")],
    },
    "apc_rpdu": {
        "sysoid": ENT + "318.1.3.4.5", "descr": "APC Switched Rack PDU rPDU (simulated)",
        "records": [("control", ENT + "318.1.1.12.3.3.1.1.4.{n}", "on=1,off=2,reboot=3"),
                    ("state", ENT + "318.1.1.12.3.5.1.1.4.{n}", "on=1,off=2"),
                    ("name", ENT + "318.1.1.12.3.5.1.1.2.{n}", "")],
    },
    "apc_rpdu2": {
        "sysoid": ENT + "318.1.3.4.6", "descr": "APC Switched Rack PDU rPDU2 (simulated)",
        "records": [("control", ENT + "318.1.1.26.9.2.4.1.5.{n}", "on=1,off=2,reboot=3"),
                    ("state", ENT + "318.1.1.26.9.2.3.1.5.{n}", "on=2,off=1"),
                    ("name", ENT + "318.1.1.26.9.2.3.1.3.{n}", ""),
                    # rPDU2OutletMeteredStatus: current (tenths of A), power (W), energy (tenths of kWh)
                    ("meter", ENT + "318.1.1.26.9.4.3.1.6.{n}", "kind=current,unit=0.1"),
                    ("meter", ENT + "318.1.1.26.9.4.3.1.7.{n}", "kind=power,unit=1"),
                    ("meter", ENT + "318.1.1.26.9.4.3.1.11.{n}", "kind=energy,unit=0.1")],
        # rPDU2DeviceStatus power (hundredths of kW) and energy; rPDU2PhaseStatus 1 current, voltage
        "totals": [(ENT + "318.1.1.26.4.3.1.5.1", "kind=power,unit=10"),
                   (ENT + "318.1.1.26.4.3.1.9.1", "kind=energy,unit=0.1"),
                   (ENT + "318.1.1.26.6.3.1.5.1", "kind=current,unit=0.1"),
                   (ENT + "318.1.1.26.6.3.1.6.1", "kind=voltage,unit=1")],
    },
    "raritan": {
        "sysoid": ENT + "13742.6", "descr": "Raritan PX2 (simulated)",
        "records": [("control", ENT + "13742.6.4.1.2.1.2.1.{n}", "on=1,off=0,reboot=2"),
                    ("state", ENT + "13742.6.4.1.2.1.3.1.{n}", "on=7,off=8"),
                    # measurementsOutletSensorValue by sensor type, scaled by outletSensorDecimalDigits
                    ("meter", ENT + "13742.6.5.4.3.1.4.1.{n}.1", "kind=current,unit=0.001"),
                    ("const", ENT + "13742.6.3.5.4.1.7.1.{n}.1", "value=3"),
                    ("meter", ENT + "13742.6.5.4.3.1.4.1.{n}.4", "kind=voltage,unit=1"),
                    ("const", ENT + "13742.6.3.5.4.1.7.1.{n}.4", "value=0"),
                    ("meter", ENT + "13742.6.5.4.3.1.4.1.{n}.5", "kind=power,unit=1"),
                    ("const", ENT + "13742.6.3.5.4.1.7.1.{n}.5", "value=0"),
                    ("meter", ENT + "13742.6.5.4.3.1.4.1.{n}.8", "kind=energy,unit=0.001"),
                    ("const", ENT + "13742.6.3.5.4.1.7.1.{n}.8", "value=0")],
        "totals": [(ENT + "13742.6.5.2.3.1.4.1.1.1", "kind=current,unit=0.01"),
                   (ENT + "13742.6.3.3.4.1.7.1.1.1", "const:2"),
                   (ENT + "13742.6.5.2.3.1.4.1.1.4", "kind=voltage,unit=0.1"),
                   (ENT + "13742.6.3.3.4.1.7.1.1.4", "const:1"),
                   (ENT + "13742.6.5.2.3.1.4.1.1.5", "kind=power,unit=1"),
                   (ENT + "13742.6.3.3.4.1.7.1.1.5", "const:0"),
                   (ENT + "13742.6.5.2.3.1.4.1.1.8", "kind=energy,unit=0.001"),
                   (ENT + "13742.6.3.3.4.1.7.1.1.8", "const:0")],
    },
    "sentry3": {
        "sysoid": ENT + "1718.3", "descr": "ServerTech Sentry3 (simulated)",
        "records": [("control", ENT + "1718.3.2.3.1.11.{idx}", "on=1,off=2,reboot=3"),
                    ("state", ENT + "1718.3.2.3.1.5.{idx}", "on=1,off=0,pending_on=3,pending_off=2")],
    },
    "sentry4": {
        "sysoid": ENT + "1718.4", "descr": "ServerTech Sentry4 (simulated)",
        "records": [("control", ENT + "1718.4.1.8.5.1.2.1.1.{n}", "on=1,off=2,reboot=3"),
                    ("state", ENT + "1718.4.1.8.3.1.1.1.1.{n}", "on=1,off=2"),
                    # st4OutletMonitor: current (hundredths of A), voltage (tenths of V), power, energy (Wh)
                    ("meter", ENT + "1718.4.1.8.3.1.3.1.1.{n}", "kind=current,unit=0.01"),
                    ("meter", ENT + "1718.4.1.8.3.1.6.1.1.{n}", "kind=voltage,unit=0.1"),
                    ("meter", ENT + "1718.4.1.8.3.1.7.1.1.{n}", "kind=power,unit=1"),
                    ("meter", ENT + "1718.4.1.8.3.1.14.1.1.{n}", "kind=energy,unit=0.001")],
        # st4InputCordMonitor power and energy (tenths of kWh), st4PhaseMonitor 1 voltage, current
        "totals": [(ENT + "1718.4.1.3.3.1.3.1.1", "kind=power,unit=1"),
                   (ENT + "1718.4.1.3.3.1.10.1.1", "kind=energy,unit=0.1"),
                   (ENT + "1718.4.1.5.3.1.3.1.1.1", "kind=voltage,unit=0.1"),
                   (ENT + "1718.4.1.5.3.1.6.1.1.1", "kind=current,unit=0.01")],
    },
    "eaton": {
        "sysoid": ENT + "534.6.6.7", "descr": "Eaton ePDU (simulated)",
        "records": [("action", ENT + "534.6.6.7.6.6.1.3.0.{n}", "action=off"),
                    ("action", ENT + "534.6.6.7.6.6.1.4.0.{n}", "action=on"),
                    ("action", ENT + "534.6.6.7.6.6.1.5.0.{n}", "action=reboot"),
                    ("state", ENT + "534.6.6.7.6.6.1.2.0.{n}", "on=1,off=0,pending_on=3,pending_off=2"),
                    # outletVoltage (mV), outletCurrent (mA), outletWatts, outletWh
                    ("meter", ENT + "534.6.6.7.6.3.1.2.0.{n}", "kind=voltage,unit=0.001"),
                    ("meter", ENT + "534.6.6.7.6.4.1.3.0.{n}", "kind=current,unit=0.001"),
                    ("meter", ENT + "534.6.6.7.6.5.1.3.0.{n}", "kind=power,unit=1"),
                    ("meter", ENT + "534.6.6.7.6.5.1.4.0.{n}", "kind=energy,unit=0.001")],
        # input 1, phase 1: inputVoltage (mV), inputCurrent (mA), inputWatts, inputWh
        "totals": [(ENT + "534.6.6.7.3.2.1.3.0.1.1", "kind=voltage,unit=0.001"),
                   (ENT + "534.6.6.7.3.3.1.4.0.1.1", "kind=current,unit=0.001"),
                   (ENT + "534.6.6.7.3.4.1.4.0.1.1", "kind=power,unit=1"),
                   (ENT + "534.6.6.7.3.4.1.5.0.1.1", "kind=energy,unit=0.001")],
    },
    "cyberpower": {
        "sysoid": ENT + "3808.1.1.3", "descr": "CyberPower PDU (simulated)",
        "records": [("control", ENT + "3808.1.1.3.3.3.1.1.4.{n}", "on=1,off=2,reboot=3"),
                    ("state", ENT + "3808.1.1.3.3.5.1.1.4.{n}", "on=1,off=2")],
    },
    "ip9258": {
        "sysoid": ENT + "92.58", "descr": "IP Power 9258 (simulated)",
        "records": [("control", ENT + "92.58.2.{n}.0", "on=1,off=0")],
    },
    "poe": {
        "sysoid": ENT + "9.1.1208", "descr": "PoE switch (simulated)",
        "records": [("control", "1.3.6.1.2.1.105.1.1.1.3.1.{n}", "on=1,off=2")],
    },
}

AUTH = vol.In(["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"])
# snmpsim's names: AES192/AES256 are Reeder's key extension, the BLMT ones Blumenthal's
PRIV = vol.In(["DES", "3DES", "AES", "AES128", "AES192", "AES256", "AES192BLMT", "AES256BLMT"])
_NAME = vol.Match(r"^[A-Za-z0-9_.-]+$", msg="communities are file names: letters, digits, _ . - only")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_sys_descr_packet(community: str) -> bytes:
    """An SNMPv2c GET of sysDescr.0, BER-encoded by hand: the readiness probe needs no SNMP stack."""
    varbinds = bytes.fromhex("300e300c06082b060102010101000500")
    pdu = bytes.fromhex("020101020100020100") + varbinds
    body = bytes([0x02, 0x01, 0x01, 0x04, len(community)]) + community.encode() + bytes([0xA0, len(pdu)]) + pdu
    return bytes([0x30, len(body)]) + body


def _oid_key(line: str) -> tuple[int, ...]:
    return tuple(int(x) for x in line.split("|", 1)[0].split("."))


class SnmpSimulator(Simulator):
    options = {
        vol.Optional("listen", default="127.0.0.1:0"): str,
        vol.Optional("device", default="apc_rpdu2"): vol.In(sorted(DEVICES)),
        vol.Optional("outlets", default=8): vol.All(int, vol.Range(min=1, max=96)),
        vol.Optional("initial", default="off"): vol.In(["on", "off"]),
        vol.Optional("communities", default=["public", "private"]): [_NAME],
        vol.Optional("read_only_communities", default=[]): [_NAME],
        vol.Optional("v3_user"): str,
        vol.Optional("v3_auth_key"): vol.All(str, vol.Length(min=8)),
        vol.Optional("v3_auth_protocol", default="SHA"): AUTH,
        vol.Optional("v3_priv_key"): vol.All(str, vol.Length(min=8)),
        vol.Optional("v3_priv_protocol", default="AES"): PRIV,
        vol.Optional("reboot_time", default=1.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        # seconds an on/off waits (state reads pendingOn/onWait...) before the relay moves
        vol.Optional("switch_delay", default=0.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        # Sentry3: outlets per infeed; outlet 9 is 1.2.1 with 8
        vol.Optional("outlets_per_infeed", default=8): vol.All(int, vol.Range(min=1)),
        vol.Optional("delay", default=0.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("silent", default=False): bool,
        # the meter, where the device has one: watts an outlet draws when on, and the line voltage;
        # metered off is the switched-only model, whose meter objects do not exist
        vol.Optional("metered", default=True): bool,
        vol.Optional("load", default=25.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("loads", default={}): {vol.Coerce(str): vol.All(vol.Coerce(float), vol.Range(min=0))},
        vol.Optional("voltage", default=230.0): vol.All(vol.Coerce(float), vol.Range(min=1)),
        vol.Optional("workdir"): str,
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(vol.Schema(self.options)(dict(options)))
        self._port = loopback_port(self.config["listen"])
        self._proc: subprocess.Popen[bytes] | None = None
        self._own_workdir = "workdir" not in self.config
        self.workdir = Path(self.config.get("workdir") or tempfile.mkdtemp(prefix="pdumqtt-snmpsim-"))
        self._control = {"delay": self.config["delay"], "silent": self.config["silent"],
                         "reboot_time": self.config["reboot_time"], "switch_delay": self.config["switch_delay"],
                         "load": self.config["load"], "loads": dict(self.config["loads"]),
                         "voltage": self.config["voltage"]}
        self._log: Any = None
        # `pdumqtt sim` only calls stop(): never leave an agent or a temporary folder behind
        atexit.register(self.remove if self._own_workdir else self.stop)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    # --- data --------------------------------------------------------------------------------

    def _records(self, read_only: bool) -> str:
        dev = DEVICES[self.config["device"]]
        ro = ",ro=1" if read_only else ""
        lines = [f"1.3.6.1.2.1.1.1.0|4:pdusim|value={dev['descr']}{ro}",
                 f"1.3.6.1.2.1.1.2.0|6:pdusim|value={dev['sysoid']}{ro}",
                 f"1.3.6.1.2.1.1.5.0|4:pdusim|value=pdumqtt-sim{ro}"]
        for n in range(1, self.config["outlets"] + 1):
            per = self.config["outlets_per_infeed"]
            idx = f"1.{(n - 1) // per + 1}.{(n - 1) % per + 1}"
            for kind, template, values in dev["records"]:
                oid = template.format(n=n, idx=idx)
                if kind in ("meter", "const") and not self.config["metered"]:
                    continue
                if kind == "name":
                    lines.append(f"{oid}|4:pdusim|value=Outlet {n}{ro}")
                else:
                    lines.append(f"{oid}|2:pdusim|role={kind},outlet={n},{values}{ro}")
        for oid, values in dev.get("totals", []) if self.config["metered"] else []:
            if values.startswith("const:"):
                lines.append(f"{oid}|2:pdusim|role=const,value={values[6:]}{ro}")
            else:
                lines.append(f"{oid}|2:pdusim|role=meter,outlet=0,{values}{ro}")
        lines.sort(key=_oid_key)
        return "\n".join(lines) + "\n"

    def _prepare(self) -> None:
        data = self.workdir / "data"
        modules = self.workdir / "modules"
        for d in (data, modules, self.workdir / "cache"):
            d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(__file__).with_name("snmpsim_pdu.py"), modules / "pdusim.py")
        for community in self.config["communities"]:
            (data / f"{community}.snmprec").write_text(self._records(False))
        for community in self.config["read_only_communities"]:
            (data / f"{community}.snmprec").write_text(self._records(True))
        if self.config.get("v3_user"):
            # snmpsim serves an empty SNMPv3 context name from the data file "self".
            (data / "self.snmprec").write_text(self._records(False))
        state = self.workdir / "state.json"
        if not state.exists():  # a restart keeps the outlets as the device left them
            on = self.config["initial"] == "on"
            outlets = {str(n): {"on": on, "back_on_at": None} for n in range(1, self.config["outlets"] + 1)}
            state.write_text(json.dumps(outlets))
        self._write_control()

    def _write_control(self) -> None:
        path = self.workdir / "control.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._control))
        os.replace(tmp, path)

    def _argv(self) -> list[str]:
        cfg = self.config
        argv = [sys.executable, "-c", "import sys; from snmpsim.commands.responder import main; sys.exit(main())",
                f"--data-dir={self.workdir / 'data'}", f"--cache-dir={self.workdir / 'cache'}",
                f"--variation-modules-dir={self.workdir / 'modules'}",
                f"--agent-udpv4-endpoint=127.0.0.1:{self._port}", "--log-level=error"]
        if cfg.get("v3_user"):
            argv.append(f"--v3-user={cfg['v3_user']}")
            if cfg.get("v3_auth_key"):
                argv += [f"--v3-auth-key={cfg['v3_auth_key']}", f"--v3-auth-proto={cfg['v3_auth_protocol']}"]
            if cfg.get("v3_priv_key"):
                argv += [f"--v3-priv-key={cfg['v3_priv_key']}", f"--v3-priv-proto={cfg['v3_priv_protocol']}"]
        return argv

    # --- life cycle ----------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        if self._proc is not None:
            return
        if self._port == 0:
            self._port = _free_udp_port()
        self._prepare()
        env = dict(os.environ, SNMPSIM_ALLOW_ROOT="true")
        log_path = self.workdir / "snmpsim.log"
        self._log = open(log_path, "wb")  # closed in stop()
        self._proc = subprocess.Popen(self._argv(), stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        communities = [*self.config["communities"], *self.config["read_only_communities"]]
        probe = _get_sys_descr_packet(communities[0]) if communities and not self._control["silent"] else None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            while True:
                text = log_path.read_text(errors="replace")
                if "Listening at UDP/IPv4 endpoint" in text:
                    if probe is None:
                        return
                    # listening is not yet answering: wait for the agent's first reply
                    sock.sendto(probe, ("127.0.0.1", self._port))
                    try:
                        sock.recvfrom(4096)
                        return
                    except OSError:
                        pass
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"snmpsim did not start: {text[-2000:]}")
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def remove(self) -> None:
        """Stop and delete the work folder, if the simulator made it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # --- failure modes and inspection ------------------------------------------------------------

    def set_failure(self, *, delay: float | None = None, silent: bool | None = None,
                    switch_delay: float | None = None) -> None:
        """Slow every answer by ``delay`` seconds, drop every request (``silent``), or make
        switches wait ``switch_delay`` seconds in a pending state."""
        if delay is not None:
            self._control["delay"] = delay
        if silent is not None:
            self._control["silent"] = silent
        if switch_delay is not None:
            self._control["switch_delay"] = switch_delay
        self._write_control()

    def set_load(self, n: int, watts: float) -> None:
        """Make outlet ``n`` draw ``watts`` while it is on."""
        self._control["loads"] = {**self._control["loads"], str(n): watts}
        self._write_control()

    def _outlet_record(self, n: int) -> dict[str, Any]:
        try:
            outlets = json.loads((self.workdir / "state.json").read_text())
        except (OSError, ValueError):
            outlets = {}
        return outlets.get(str(n), {"on": False})

    def reboots(self, n: int) -> int:
        """How many native reboots outlet ``n`` was asked for."""
        return int(self._outlet_record(n).get("reboots", 0))

    def outlet(self, n: int) -> bool:
        """The outlet's state as the device holds it (not through SNMP)."""
        out = self._outlet_record(n)
        if out.get("back_on_at") and time.time() >= out["back_on_at"]:
            return True
        if out.get("pending") and time.time() >= out.get("pending_at", 0):
            return out["pending"] == "on"
        return bool(out["on"])

    def pending(self, n: int) -> str | None:
        """``on`` or ``off`` while outlet ``n`` waits to switch, else None."""
        out = self._outlet_record(n)
        if out.get("pending") and time.time() < out.get("pending_at", 0):
            return str(out["pending"])
        return None
