"""Vendor presets on the generic SNMP driver: the OIDs and values of known PDUs.

Each preset is the generic :class:`~pdumqtt.drivers.snmp.SnmpDriver` with its table
filled in from the vendor's MIB (numeric OIDs, see protocols.md), so a user only gives
the address and credentials. ``apc_snmp`` also tells the APC family (sPDU, MasterSwitch
Plus, rPDU, rPDU2) from sysObjectID when ``family`` is not configured.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.snmp import CONNECTION_OPTIONS, SnmpDriver

ENT = "1.3.6.1.4.1."
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"

_CYCLE_OPTIONS: dict[Any, Any] = {
    vol.Optional("native_cycle", default=True): bool,
    # The daemon's default cycle delay: a cycle asking for another delay is done as
    # off, wait, on by the runner, since the device's reboot time is its own setting.
    vol.Optional("native_cycle_delay", default=5.0): vol.Any(None, vol.All(vol.Coerce(float), vol.Range(min=0))),
}


class SnmpPreset(SnmpDriver):
    """A vendor table: subclasses set the class attributes, ``{outlet}`` marks the outlet."""

    control_template: ClassVar[str] = ""
    state_template: ClassVar[str | None] = None
    name_template: ClassVar[str | None] = None
    on_value: ClassVar[int] = 1
    off_value: ClassVar[int] = 2
    cycle_value: ClassVar[int | None] = 3
    state_on: ClassVar[list[int]] = [1]
    state_off: ClassVar[list[int]] = [2]
    options = {**CONNECTION_OPTIONS, **_CYCLE_OPTIONS}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self.config = {**options, **self.table()}

    def fill(self, template: str) -> str:
        """Put the preset's own indices (unit, strap...) into a template; outlets stay."""
        return template

    def table(self) -> dict[str, Any]:
        table: dict[str, Any] = {
            "control_oid": self.fill(self.control_template),
            "on_value": self.on_value, "off_value": self.off_value,
            "state_on": self.state_on, "state_off": self.state_off,
            "state_oid": self.fill(self.state_template or self.control_template),
        }
        if self.cycle_value is not None:
            table["cycle_value"] = self.cycle_value
        if self.name_template:
            table["name_oid"] = self.fill(self.name_template)
        return table


# --- APC PowerNet-MIB -------------------------------------------------------------------------

APC_FAMILIES: dict[str, dict[str, Any]] = {
    "spdu": {"control": ENT + "318.1.1.4.4.2.1.3.{outlet}", "state": ENT + "318.1.1.4.4.2.1.3.{outlet}",
             "name": ENT + "318.1.1.4.5.2.1.3.{outlet}", "values": (1, 2, 3), "on": [1], "off": [2]},
    # MasterSwitch Plus: sPDUOutletControlMSPOutletCommand, indexed unit.module.outlet;
    # immediateOnMSP(1), immediateOffMSP(3), immediateRebootMSP(5). The state column is
    # sPDUOutletStatusMSPOutletState: on(1), off(2).
    "msp": {"control": ENT + "318.1.1.6.5.1.1.5.{unit}.1.{outlet}",
            "state": ENT + "318.1.1.6.7.1.1.5.{unit}.1.{outlet}",
            "name": ENT + "318.1.1.6.7.1.1.4.{unit}.1.{outlet}", "values": (1, 3, 5), "on": [1], "off": [2]},
    "rpdu": {"control": ENT + "318.1.1.12.3.3.1.1.4.{outlet}", "state": ENT + "318.1.1.12.3.5.1.1.4.{outlet}",
             "name": ENT + "318.1.1.12.3.5.1.1.2.{outlet}", "values": (1, 2, 3), "on": [1], "off": [2]},
    # rPDU2's status column counts the other way round: off(1), on(2).
    "rpdu2": {"control": ENT + "318.1.1.26.9.2.4.1.5.{outlet}", "state": ENT + "318.1.1.26.9.2.3.1.5.{outlet}",
              "name": ENT + "318.1.1.26.9.2.3.1.3.{outlet}", "values": (1, 2, 3), "on": [2], "off": [1]},
}
#: PowerNet-MIB's product OIDs: masterSwitchV1/V2/VM are .4.1 to .4.3 (sPDU table),
#: masterSwitchMSP .4.4, masterSwitchrPDU .4.5, masterSwitchrPDU2 .4.6.
APC_SYS_OBJECT_IDS = {
    ENT + "318.1.3.4.4": "msp",
    ENT + "318.1.3.4.5": "rpdu",
    ENT + "318.1.3.4.6": "rpdu2",
}
_APC_FAMILY_ALIASES = {"masterswitch": "spdu", "masterswitchplus": "msp"}


class ApcSnmp(SnmpPreset):
    """APC Switched Rack PDUs, MasterSwitch and MasterSwitch Plus units (PowerNet-MIB)."""

    model = "APC Switched PDU (SNMP)"
    options = {
        **SnmpPreset.options,
        vol.Optional("family", default="auto"): vol.All(
            vol.Lower, vol.Any("auto", *APC_FAMILIES, *_APC_FAMILY_ALIASES)),
        # MasterSwitch Plus only: which unit of a daisy chain (1 is the one with the card)
        vol.Optional("unit", default=1): vol.All(int, vol.Range(min=1)),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        family = options.get("family", "auto")
        family = _APC_FAMILY_ALIASES.get(family, family)
        self.family: str | None = None if family == "auto" else family
        super().__init__(options, pdu=pdu, timeout=timeout)

    @property
    def can_read(self) -> bool:  # type: ignore[override]
        return True

    def fill(self, template: str) -> str:
        return template.replace("{unit}", str(self.config.get("unit", 1)))

    def table(self) -> dict[str, Any]:
        if self.family is None:
            return {}
        f = APC_FAMILIES[self.family]
        on, off, cycle = f["values"]
        return {"control_oid": self.fill(f["control"]), "state_oid": self.fill(f["state"]),
                "name_oid": self.fill(f["name"]), "on_value": on, "off_value": off, "cycle_value": cycle,
                "state_on": f["on"], "state_off": f["off"]}

    def _detect(self) -> None:
        if self.family is not None:
            return
        answer = self._request(SYS_OBJECT_ID).prettyPrint().lstrip(".")
        family = APC_SYS_OBJECT_IDS.get(answer)
        if family is None and answer.startswith(ENT + "318.1.3.4."):
            family = "spdu"  # masterSwitchV1/V2/VM (.4.1 to .4.3) carry the sPDU table
        if family is None:
            raise DriverError(f"sysObjectID {answer} is not a known APC switched PDU: set 'family' "
                              "(spdu, msp, rpdu or rpdu2)")
        self.family = family
        self.config = {**self.config, **self.table()}

    def control(self, port: int, action: str) -> tuple[str, int]:
        self._detect()
        return super().control(port, action)

    def state_oid(self, port: int) -> str:
        self._detect()
        return super().state_oid(port)

    def state_values(self) -> tuple[list[int], list[int]]:
        self._detect()
        return super().state_values()

    def outlet_name(self, port: int) -> str | None:
        self._detect()
        return super().outlet_name(port)


# --- other vendors ---------------------------------------------------------------------------------


class RaritanSnmp(SnmpPreset):
    """Raritan PX2/PX3 (PDU2-MIB): switching state on(7), off(8); cycle(2) is native."""

    model = "Raritan PDU (SNMP)"
    control_template = ENT + "13742.6.4.1.2.1.2.{unit}.{outlet}"
    state_template = ENT + "13742.6.4.1.2.1.3.{unit}.{outlet}"
    on_value, off_value, cycle_value = 1, 0, 2
    state_on, state_off = [7], [8]
    options = {**SnmpPreset.options, vol.Optional("unit", default=1): vol.All(int, vol.Range(min=1))}

    def fill(self, template: str) -> str:
        return template.replace("{unit}", str(self.config["unit"]))


class ServertechSnmp(SnmpPreset):
    """ServerTech Sentry3 (Sentry3-MIB) and Sentry4 (Sentry4-MIB) switched PDUs.

    Sentry3 indexes outlets tower.infeed.outlet. Unless ``infeed`` is set, outlet N is
    spread over the infeeds ``outlets_per_infeed`` at a time, as labgrid does (with 8:
    outlet 9 is 1.2.1); with ``infeed`` set, N is the outlet number within that infeed.
    """

    model = "ServerTech Sentry (SNMP)"
    options = {
        **SnmpPreset.options,
        vol.Optional("generation", default=4): vol.All(vol.Coerce(int), vol.In([3, 4])),
        vol.Optional("tower", default=1): vol.All(int, vol.Range(min=1)),
        vol.Optional("infeed"): vol.All(int, vol.Range(min=1)),
        vol.Optional("outlets_per_infeed", default=8): vol.All(int, vol.Range(min=1)),
    }

    def table(self) -> dict[str, Any]:
        if self.config["generation"] == 3:
            # outletControlAction on(1)/off(2)/reboot(3); outletStatus off(0) on(1)
            # offWait(2) onWait(3) offError(4) onError(5) ... offFuse(8) onFuse(9): a
            # waiting outlet reads as the state it is heading to.
            control = f"{ENT}1718.3.2.3.1.11.{{outlet}}"
            state = f"{ENT}1718.3.2.3.1.5.{{outlet}}"
            on, off = [1, 3, 5, 9], [0, 2, 4, 8]
        else:
            control = f"{ENT}1718.4.1.8.5.1.2.{{outlet}}"
            state = f"{ENT}1718.4.1.8.3.1.1.{{outlet}}"
            on, off = [1], [2]
        return {"control_oid": control, "state_oid": state, "on_value": 1,
                "off_value": 2, "cycle_value": 3, "state_on": on, "state_off": off}

    def outlet_index(self, port: int) -> str:
        """The tower.infeed.outlet index of outlet ``port``."""
        tower, infeed = self.config["tower"], self.config.get("infeed")
        if infeed is not None or self.config["generation"] == 4:
            return f"{tower}.{infeed or 1}.{port}"
        per = self.config["outlets_per_infeed"]
        return f"{tower}.{(port - 1) // per + 1}.{(port - 1) % per + 1}"

    def control(self, port: int, action: str) -> tuple[str, int]:
        value = {"on": 1, "off": 2, "cycle": 3}[action]
        return self.config["control_oid"].format(outlet=self.outlet_index(port)), value

    def state_oid(self, port: int) -> str:
        return self.config["state_oid"].format(outlet=self.outlet_index(port))


class EatonSnmp(SnmpPreset):
    """Eaton ePDU (EATON-EPDU-MIB): one column per action, the value written is a delay."""

    model = "Eaton ePDU (SNMP)"
    options = {**SnmpPreset.options, vol.Optional("strap", default=0): vol.All(int, vol.Range(min=0))}
    _columns: ClassVar[dict[str, int]] = {"off": 3, "on": 4, "cycle": 5}

    def table(self) -> dict[str, Any]:
        strap = self.config["strap"]
        # outletControlStatus off(0) on(1) pendingOff(2) pendingOn(3): a pending outlet
        # reads as the state it is heading to.
        return {"control_oid": f"{ENT}534.6.6.7.6.6.1.4.{strap}.{{outlet}}",
                "state_oid": f"{ENT}534.6.6.7.6.6.1.2.{strap}.{{outlet}}",
                "on_value": 0, "off_value": 0, "cycle_value": 0, "state_on": [1, 3], "state_off": [0, 2]}

    def control(self, port: int, action: str) -> tuple[str, int]:
        # 0 = act now; a positive value would delay the action, -1 cancels a pending one.
        return f"{ENT}534.6.6.7.6.6.1.{self._columns[action]}.{self.config['strap']}.{port}", 0


class CyberpowerSnmp(SnmpPreset):
    """CyberPower switched PDUs (CPS-MIB ePDU outlet tables)."""

    model = "CyberPower PDU (SNMP)"
    control_template = ENT + "3808.1.1.3.3.3.1.1.4.{outlet}"
    state_template = ENT + "3808.1.1.3.3.5.1.1.4.{outlet}"


class PoeSnmp(SnmpPreset):
    """PoE switch ports as outlets (POWER-ETHERNET-MIB pethPsePortAdminEnable)."""

    model = "PoE switch (SNMP)"
    control_template = "1.3.6.1.2.1.105.1.1.1.3.{group}.{outlet}"
    cycle_value = None
    options = {**CONNECTION_OPTIONS, vol.Optional("group", default=1): vol.All(int, vol.Range(min=1))}

    def fill(self, template: str) -> str:
        return template.replace("{group}", str(self.config["group"]))
