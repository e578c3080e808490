"""snmpsim variation module ``pdusim``: outlets whose state follows control writes.

This file is not imported by pdumqtt: the SNMP simulator copies it into its work folder
and snmpsim executes it with ``moduleContext`` and ``recordContext`` in its globals.
It owns the simulated outlets of one agent, shared by every data file (community or
SNMPv3 context) of that agent, so a write to a control OID shows in a different state
OID as on real rPDU/rPDU2 units. State is saved to ``state.json`` after each change (the
simulator reads it, and it outlives an agent restart); ``control.json`` is re-read
when it changes and sets the failure modes (``delay`` seconds before each answer,
``silent`` to drop every request), the native reboot time, and ``switch_delay``: the
seconds an on or off waits before the outlet moves, during which state records with
``pending_on``/``pending_off`` read those values (Eaton's pendingOn/pendingOff, Sentry3's
onWait/offWait).

Record values are ``key=value`` lists, for example ``role=control,outlet=3,on=1,off=2,reboot=3``:

- ``const``: a fixed ``value``, not writable;
- ``control``: writing ``on``/``off``/``reboot`` switches ``outlet``; reads give its state as ``on``/``off``;
- ``state``: read-only state of ``outlet`` as ``on``/``off``;
- ``action``: a write of 0 or more does ``action`` (on, off, reboot) to ``outlet`` after
  that many seconds (plus ``switch_delay``), -1 cancels a pending one; reads -1.

- ``meter``: what ``outlet`` draws (outlet 0: all outlets together), as ``kind`` (power,
  current, voltage, energy) in units of ``unit`` (0.1 for tenths of amps, 10 for hundredths
  of kW, 0.001 for Wh as kWh...). An outlet that is on draws ``loads[n]`` or ``load`` watts
  (``control.json``) at ``voltage``; energy counts up while it draws.

``ro=1`` on a record refuses writes (a read-only community).
"""

import json
import os
import time

from pysnmp.smi import error as smi_error
from snmpsim import error as sim_error
from snmpsim.grammar.snmprec import SnmprecGrammar

_G = globals()


def _work() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(_G["path"])))


def _load(name, default):
    try:
        with open(os.path.join(_work(), name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _save_state(mc) -> None:
    path = os.path.join(_work(), "state.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(mc["outlets"], f)
    os.replace(tmp, path)


def _control(mc):
    path = os.path.join(_work(), "control.json")
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return mc.setdefault("control", {})
    if mc.get("control_mtime") != mtime:
        mc["control"] = _load("control.json", {})
        mc["control_mtime"] = mtime
    return mc["control"]


def init(**context):
    mc = _G["moduleContext"]
    mc["outlets"] = _load("state.json", {})


def _outlet(mc, n):
    out = mc["outlets"].setdefault(str(n), {"on": False, "back_on_at": None})
    if out.get("back_on_at") and time.time() >= out["back_on_at"]:
        out["on"], out["back_on_at"] = True, None
        _save_state(mc)
    if out.get("pending") and time.time() >= out.get("pending_at", 0):
        out["on"] = out.pop("pending") == "on"
        out.pop("pending_at", None)
        _save_state(mc)
    return out


def _switch(mc, n, action, wait=0.0):
    out = _outlet(mc, n)
    out.pop("pending", None)
    out.pop("pending_at", None)
    wait += float(_control(mc).get("switch_delay", 0.0))
    if action in ("on", "off") and wait > 0:
        out["pending"], out["pending_at"] = action, time.time() + wait
    elif action == "on":
        out["on"], out["back_on_at"] = True, None
    elif action == "off":
        out["on"], out["back_on_at"] = False, None
    else:
        out["on"] = False
        out["reboots"] = out.get("reboots", 0) + 1
        out["back_on_at"] = time.time() + float(_control(mc).get("reboot_time", 1.0))
    _save_state(mc)


def _power(mc, n):
    ctl = _control(mc)
    if not _outlet(mc, n)["on"]:
        return 0.0
    return float(ctl.get("loads", {}).get(str(n), ctl.get("load", 25.0)))


def _energy_wh(mc, n):
    """Outlet n's energy so far, counting what it drew since the last look."""
    now = time.time()
    energy, seen = mc.setdefault("energy", {}), mc.setdefault("energy_seen", {})
    energy[n] = energy.get(n, 0.0) + _power(mc, n) * (now - seen.get(n, now)) / 3600
    seen[n] = now
    return energy[n]


def _meter(mc, n, kind):
    outlets = [int(k) for k in mc["outlets"]] if n == 0 else [n]
    volts = float(_control(mc).get("voltage", 230.0))
    if kind == "voltage":
        return volts
    if kind == "energy":
        return sum(_energy_wh(mc, m) for m in outlets) / 1000
    power = sum(_power(mc, m) for m in outlets)
    return power if kind == "power" else power / volts


def _settings(value):
    rc = _G["recordContext"]
    if "settings" not in rc:
        rc["settings"] = dict(item.split("=", 1) for item in value.split(",") if "=" in item)
    return rc["settings"]


def variate(oid, tag, value, **context):
    if not context["nextFlag"] and not context["exactMatch"]:
        return context["origOid"], tag, context["errorStatus"]
    mc = _G["moduleContext"]
    ctl = _control(mc)
    if ctl.get("silent"):
        raise sim_error.NoDataNotification()
    if ctl.get("delay"):
        time.sleep(float(ctl["delay"]))
    s = _settings(value)
    role = s.get("role", "const")
    make = SnmprecGrammar.TAG_MAP[tag.rstrip("x")]
    idx = max(0, context["varsTotal"] - context["varsRemaining"] - 1)
    if context["setFlag"]:
        if role in ("const", "state") or s.get("ro") == "1":
            raise smi_error.NotWritableError(name=oid, idx=idx)
        try:
            written = int(context["origValue"])
        except (TypeError, ValueError):
            raise smi_error.WrongTypeError(name=oid, idx=idx) from None
        if role == "control":
            actions = {int(s[k]): k for k in ("on", "off", "reboot") if k in s}
            if written not in actions:
                raise smi_error.WrongValueError(name=oid, idx=idx)
            _switch(mc, s["outlet"], actions[written])
        elif role == "action":
            if written < -1:
                raise smi_error.WrongValueError(name=oid, idx=idx)
            if written >= 0:
                _switch(mc, s["outlet"], s["action"], wait=float(written))
            else:
                out = _outlet(mc, s["outlet"])
                out.pop("pending", None)
                out.pop("pending_at", None)
                _save_state(mc)
        return oid, tag, context["origValue"]
    if role in ("control", "state"):
        out = _outlet(mc, s["outlet"])
        pending = out.get("pending")
        if pending and f"pending_{pending}" in s:
            return oid, tag, make(int(s[f"pending_{pending}"]))
        return oid, tag, make(int(s["on"] if out["on"] else s["off"]))
    if role == "action":
        return oid, tag, make(-1)
    if role == "meter":
        return oid, tag, make(round(_meter(mc, int(s["outlet"]), s["kind"]) / float(s["unit"])))
    raw = s.get("value", "")
    return oid, tag, make(int(raw) if tag in ("2", "65", "66", "67", "70") else raw)


def shutdown(**context):
    pass
