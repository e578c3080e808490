"""Vendor presets on the generic SNMP driver: the OIDs and values of known PDUs.

Each preset is the generic :class:`~pdumqtt.drivers.snmp.SnmpDriver` with its table
filled in from the vendor's MIB (numeric OIDs, see protocols.md), so a user only gives
the address and credentials. ``apc_snmp`` also tells the APC family (sPDU, MasterSwitch
Plus, rPDU, rPDU2) from sysObjectID when ``family`` is not configured.

Metering presets also carry their meter columns (``outlet_meter``, ``pdu_meter``): per
reading an OID template and the factor from the MIB's unit (tenths of amps, Wh...) to the
reading's (A, W, V, kWh). One GET fetches an outlet's columns; a device without them
(a switched-only model) answers noSuchObject, and the runner stops asking.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError, Reading
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
    #: reading -> (OID template, factor to the reading's unit); ``{outlet}`` is the outlet's index
    outlet_meter: ClassVar[dict[str, tuple[str, float]]] = {}
    #: the same for the whole PDU (its inlet, cord or phase 1)
    pdu_meter: ClassVar[dict[str, tuple[str, float]]] = {}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self.config = {**options, **self.table()}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.outlet_meter or cls.pdu_meter:
            cls.can_meter = True
            cls.outlet_readings, cls.pdu_readings = tuple(cls.outlet_meter), tuple(cls.pdu_meter)

    def meter_index(self, port: int) -> str:
        """The index of outlet ``port`` in the meter columns."""
        return str(port)

    def meter_outlet(self, port: int) -> Reading | None:
        index = self.meter_index(port)
        return self._meter({k: (self.fill(t).format(outlet=index), f) for k, (t, f) in self.outlet_meter.items()})

    def meter_pdu(self) -> Reading | None:
        return self._meter({k: (self.fill(t), f) for k, (t, f) in self.pdu_meter.items()})

    def _meter(self, columns: dict[str, tuple[str, float]]) -> Reading | None:
        """GET the columns at once; None when the device has none of them."""
        if not columns:
            return None
        answers = self._get_many([oid for oid, _ in columns.values()])
        if all(a is None for a in answers):
            return None
        values: dict[str, float] = {}
        for (kind, (oid, factor)), answer in zip(columns.items(), answers, strict=True):
            if answer is None:
                continue
            try:
                raw = int(answer)
            except (TypeError, ValueError):
                raise DriverError(f"{oid} holds {answer.prettyPrint()[:40]!r}, not a number") from None
            if raw >= 0:  # the MIBs' -1: not available right now
                values[kind] = raw * factor
        return Reading(**values)

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
    """APC Switched Rack PDUs, MasterSwitch and MasterSwitch Plus units (PowerNet-MIB).

    rPDU2 units meter: per outlet rPDU2OutletMeteredStatus (current in tenths of A, power
    in W, energy in tenths of kWh; metered-by-outlet models only), for the PDU
    rPDU2DeviceStatus (power in hundredths of kW, energy) and rPDU2PhaseStatus phase 1
    (current, voltage). The older families report nothing and are not asked."""

    model = "APC Switched PDU (SNMP)"
    outlet_meter = {"power": (ENT + "318.1.1.26.9.4.3.1.7.{outlet}", 1.0),
                    "current": (ENT + "318.1.1.26.9.4.3.1.6.{outlet}", 0.1),
                    "energy": (ENT + "318.1.1.26.9.4.3.1.11.{outlet}", 0.1)}
    pdu_meter = {"power": (ENT + "318.1.1.26.4.3.1.5.1", 10.0),
                 "current": (ENT + "318.1.1.26.6.3.1.5.1", 0.1),
                 "voltage": (ENT + "318.1.1.26.6.3.1.6.1", 1.0),
                 "energy": (ENT + "318.1.1.26.4.3.1.9.1", 0.1)}
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

    @classmethod
    def readings(cls, options: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        family = options.get("family", "auto")
        return super().readings(options) if family in ("auto", "rpdu2") else ((), ())

    def _meter(self, columns: dict[str, tuple[str, float]]) -> Reading | None:
        self._detect()
        return super()._meter(columns) if self.family == "rpdu2" else None


# --- other vendors ---------------------------------------------------------------------------------


class RaritanSnmp(SnmpPreset):
    """Raritan PX2/PX3 (PDU2-MIB): switching state on(7), off(8); cycle(2) is native."""

    model = "Raritan PDU (SNMP)"
    control_template = ENT + "13742.6.4.1.2.1.2.{unit}.{outlet}"
    state_template = ENT + "13742.6.4.1.2.1.3.{unit}.{outlet}"
    on_value, off_value, cycle_value = 1, 0, 2
    state_on, state_off = [7], [8]
    options = {**SnmpPreset.options, vol.Optional("unit", default=1): vol.All(int, vol.Range(min=1))}
    # PDU2-MIB measurementsOutletSensorValue / measurementsInletSensorValue (inlet 1), by sensor
    # type: rmsCurrent(1), rmsVoltage(4), activePower(5), activeEnergy(8, in Wh); each value is
    # scaled by its sensor's decimal digits (outletSensorDecimalDigits, inletSensorDecimalDigits)
    _sensor_types: ClassVar[dict[str, tuple[int, float]]] = {
        "power": (5, 1.0), "current": (1, 1.0), "voltage": (4, 1.0), "energy": (8, 0.001)}
    outlet_meter = {k: (ENT + f"13742.6.5.4.3.1.4.{{unit}}.{{outlet}}.{t}", f) for k, (t, f) in _sensor_types.items()}
    pdu_meter = {k: (ENT + f"13742.6.5.2.3.1.4.{{unit}}.1.{t}", f) for k, (t, f) in _sensor_types.items()}
    _digits_columns: ClassVar[dict[str, str]] = {"outlet": ENT + "13742.6.3.5.4.1.7.{unit}.{outlet}.{type}",
                                                 "pdu": ENT + "13742.6.3.3.4.1.7.{unit}.1.{type}"}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self._digits: dict[tuple[str, int], dict[str, int]] = {}

    def fill(self, template: str) -> str:
        return template.replace("{unit}", str(self.config["unit"]))

    def meter_outlet(self, port: int) -> Reading | None:
        return self._scaled(self.outlet_meter, "outlet", port)

    def meter_pdu(self) -> Reading | None:
        return self._scaled(self.pdu_meter, "pdu", 0)

    def _scaled(self, table: dict[str, tuple[str, float]], scope: str, port: int) -> Reading | None:
        # the decimal digits are read with the values (one GET) the first time, then kept
        digits = self._digits.get((scope, port), {})
        columns = {k: (self.fill(t).format(outlet=port), f) for k, (t, f) in table.items()}
        if not digits:
            columns.update({f"digits:{k}": (self.fill(self._digits_columns[scope]).format(
                outlet=port, type=self._sensor_types[k][0]), 1.0) for k in table})
        answers = self._get_many([oid for oid, _ in columns.values()])
        if all(a is None for a in answers[:len(table)]):
            return None
        got = dict(zip(columns, answers, strict=True))
        if not digits:
            digits = {k: int(got[f"digits:{k}"]) if got[f"digits:{k}"] is not None else 0 for k in table}
            self._digits[(scope, port)] = digits
        values = {}
        for kind, (_oid, factor) in columns.items():
            if kind in table and got[kind] is not None:
                values[kind] = int(got[kind]) * factor / 10 ** digits.get(kind, 0)
        return Reading(**values)


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

    # Sentry4-MIB: st4OutletMonitorTable (current in hundredths of A, voltage in tenths of V,
    # active power in W, energy in Wh), st4InputCordMonitorTable (power W, energy tenths of
    # kWh) and st4PhaseMonitorTable phase 1 (voltage, current). Sentry3 units are not metered.
    outlet_meter = {"power": (ENT + "1718.4.1.8.3.1.7.{outlet}", 1.0),
                    "current": (ENT + "1718.4.1.8.3.1.3.{outlet}", 0.01),
                    "voltage": (ENT + "1718.4.1.8.3.1.6.{outlet}", 0.1),
                    "energy": (ENT + "1718.4.1.8.3.1.14.{outlet}", 0.001)}
    pdu_meter = {"power": (ENT + "1718.4.1.3.3.1.3.{cord}", 1.0),
                 "current": (ENT + "1718.4.1.5.3.1.6.{cord}.1", 0.01),
                 "voltage": (ENT + "1718.4.1.5.3.1.3.{cord}.1", 0.1),
                 "energy": (ENT + "1718.4.1.3.3.1.10.{cord}", 0.1)}

    @classmethod
    def readings(cls, options: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return super().readings(options) if int(options.get("generation", 4)) == 4 else ((), ())

    def fill(self, template: str) -> str:
        return template.replace("{cord}", f"{self.config['tower']}.{self.config.get('infeed') or 1}")

    def meter_index(self, port: int) -> str:
        return self.outlet_index(port)

    def _meter(self, columns: dict[str, tuple[str, float]]) -> Reading | None:
        return super()._meter(columns) if self.config["generation"] == 4 else None

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
    # outletVoltage (mV), outletCurrent (mA), outletWatts, outletWh; inputVoltage, inputCurrent,
    # inputWatts, inputWh of input 1, phase 1
    outlet_meter = {"power": (ENT + "534.6.6.7.6.5.1.3.{strap}.{outlet}", 1.0),
                    "current": (ENT + "534.6.6.7.6.4.1.3.{strap}.{outlet}", 0.001),
                    "voltage": (ENT + "534.6.6.7.6.3.1.2.{strap}.{outlet}", 0.001),
                    "energy": (ENT + "534.6.6.7.6.5.1.4.{strap}.{outlet}", 0.001)}
    pdu_meter = {"power": (ENT + "534.6.6.7.3.4.1.4.{strap}.1.1", 1.0),
                 "current": (ENT + "534.6.6.7.3.3.1.4.{strap}.1.1", 0.001),
                 "voltage": (ENT + "534.6.6.7.3.2.1.3.{strap}.1.1", 0.001),
                 "energy": (ENT + "534.6.6.7.3.4.1.5.{strap}.1.1", 0.001)}

    def fill(self, template: str) -> str:
        return template.replace("{strap}", str(self.config["strap"]))

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
