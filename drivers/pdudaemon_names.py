"""PDUDaemon's SNMP driver names, taking PDUDaemon's own option names (its APC telnet names are in apc_telnet).

This module owns the translation only: each class here is one of our drivers with a
schema that reads a ``pdudaemon.conf`` entry unchanged (the PDU's name as its host, or
``hostname``; ``community``, ``mib`` + ``controlpoint`` or ``oid`` with
``*``, ``onsetting``/``offsetting``, ``authpassphrase``, pysnmp protocol names...) and
turns it into our options before the real driver starts. No MIB is loaded: the PowerNet-MIB and CPS-MIB
names PDUDaemon configs use are mapped to their numeric OIDs here.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.drivers import DriverError, join_host
from pdumqtt.drivers.snmp import SnmpDriver, oid_template
from pdumqtt.drivers.snmp_presets import CyberpowerSnmp

ENT = "1.3.6.1.4.1."

#: (MIB, object) names that PDUDaemon configs give as ``mib`` + ``controlpoint``.
KNOWN_OBJECTS = {
    ("powernet-mib", "spduoutletctl"): ENT + "318.1.1.4.4.2.1.3",
    ("powernet-mib", "spduoutletcontrolmspoutletcommand"): ENT + "318.1.1.6.5.1.1.5",
    ("powernet-mib", "rpduoutletcontroloutletcommand"): ENT + "318.1.1.12.3.3.1.1.4",
    ("powernet-mib", "rpdu2outletswitchedcontrolcommand"): ENT + "318.1.1.26.9.2.4.1.5",
    ("cps-mib", "epduoutletcontroloutletcommand"): ENT + "3808.1.1.3.3.3.1.1.4",
}
#: pysnmp's protocol names, as PDUDaemon's snmpv3 looks them up (``getattr`` on
#: ``pysnmp.hlapi.v3arch.asyncio``): pysnmp 7's upper-case names and the camelCase ones it
#: still resolves. Lower-cased here; the values are our protocol names.
AUTH_NAMES = {
    "usm_auth_none": "none", "usm_auth_hmac96_md5": "md5", "usm_auth_hmac96_sha": "sha",
    "usm_auth_hmac128_sha224": "sha224", "usm_auth_hmac192_sha256": "sha256",
    "usm_auth_hmac256_sha384": "sha384", "usm_auth_hmac384_sha512": "sha512",
    "usmnoauthprotocol": "none", "usmhmacmd5authprotocol": "md5", "usmhmacshaauthprotocol": "sha",
    "usmhmac128sha224authprotocol": "sha224", "usmhmac192sha256authprotocol": "sha256",
    "usmhmac256sha384authprotocol": "sha384", "usmhmac384sha512authprotocol": "sha512",
}
PRIV_NAMES = {
    "usm_priv_none": "none", "usm_priv_cbc56_des": "des", "usm_priv_cbc168_3des": "3des",
    "usm_priv_cfb128_aes": "aes", "usm_priv_cfb192_aes": "aes192", "usm_priv_cfb256_aes": "aes256",
    "usm_priv_cfb192_aes_blumenthal": "aes192-blumenthal", "usm_priv_cfb256_aes_blumenthal": "aes256-blumenthal",
    "usmnoprivprotocol": "none", "usmdesprivprotocol": "des", "usm3desedeprivprotocol": "3des",
    "usmaescfb128protocol": "aes", "usmaescfb192protocol": "aes192", "usmaescfb256protocol": "aes256",
    "usmaesblumenthalcfb192protocol": "aes192-blumenthal", "usmaesblumenthalcfb256protocol": "aes256-blumenthal",
}


def _address(options: dict[str, Any], pdu: str, port_key: str | None = None) -> str:
    # In pdudaemon.conf the PDU's name is the device's host name.
    host = options.get("host") or options.get("hostname") or pdu
    if not host:
        raise DriverError("no address: set hostname (or host), or name the PDU after its host")
    port = options.get(port_key) if port_key else None
    if port is None:
        return str(host)
    return join_host(str(host), port)


_ADDRESS = {vol.Optional("hostname"): str, vol.Optional("host"): str}


def _control_oid(options: dict[str, Any]) -> str:
    if options.get("oid"):
        return oid_template(options["oid"])
    mib, point = options.get("mib"), options.get("controlpoint")
    if not mib or not point:
        raise DriverError("set oid (numeric, * for the outlet), or mib and controlpoint")
    name, dot, suffix = str(point).partition(".")
    base = KNOWN_OBJECTS.get((str(mib).lower(), name.lower()))
    if base is None:
        try:
            base = oid_template(name)
        except vol.Invalid:
            known = ", ".join(f"{m}::{o}" for m, o in KNOWN_OBJECTS)
            raise DriverError(f"{mib}::{name} is not a MIB object we know by name (no MIB is ever loaded): "
                              f"give its numeric oid with * for the outlet; known names: {known}") from None
    template = base + (dot + suffix.replace("*", "{outlet}") if dot else "")
    if options.get("inside_number"):
        # PDUDaemon: the outlet is inside the controlpoint; static_ending only counts here
        if options.get("static_ending") is not None:
            template += f".{int(options['static_ending'])}"
    elif "{outlet}" not in template:
        template += ".{outlet}"
    return oid_template(template)


class SnmpV1(SnmpDriver):
    """PDUDaemon's snmpv1; like PDUDaemon it speaks SNMP v2c (set version: 1 for v1 only agents)."""

    version = "2c"
    native_driver = "snmp"
    options = {
        **_ADDRESS,
        vol.Optional("community", default="private"): str,
        vol.Optional("mib"): str,
        vol.Optional("controlpoint"): str,
        vol.Optional("oid"): str,
        vol.Optional("onsetting", default=1): vol.Coerce(int),
        vol.Optional("offsetting", default=2): vol.Coerce(int),
        vol.Optional("inside_number", default=False): vol.Any(bool, str, int),
        vol.Optional("static_ending"): vol.Coerce(int),
        vol.Optional("version"): vol.In(["1", "2c", 1]),
    }

    def translate(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"version": str(options.get("version", self.version)), "community": options["community"]}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        try:
            control = _control_oid(options)
        except vol.Invalid as e:
            raise DriverError(str(e)) from None
        ours = {
            "host": _address(options, pdu), "control_oid": control,
            "on_value": options["onsetting"], "off_value": options["offsetting"],
            "snmp_retries": 1, "context": "", "native_cycle": False,
            "auth_protocol": "md5", "priv_protocol": "des", **self.translate(options),
        }
        super().__init__(ours, pdu=pdu, timeout=timeout)


class SnmpV3(SnmpV1):
    """PDUDaemon's snmpv3: username, authpassphrase, privpassphrase, pysnmp protocol names."""

    version = "3"
    options = {
        **{k: v for k, v in SnmpV1.options.items() if str(k) not in ("community", "version")},
        vol.Required("username"): str,
        vol.Optional("authpassphrase"): str,
        vol.Optional("privpassphrase"): str,
        vol.Optional("auth_protocol"): vol.All(str, vol.Lower, vol.Any(vol.In(AUTH_NAMES),
                                                                       vol.In(AUTH_NAMES.values()))),
        vol.Optional("priv_protocol"): vol.All(str, vol.Lower, vol.Any(vol.In(PRIV_NAMES),
                                                                       vol.In(PRIV_NAMES.values()))),
    }

    def translate(self, options: dict[str, Any]) -> dict[str, Any]:
        ours: dict[str, Any] = {"version": "3", "user": options["username"], "community": ""}
        if options.get("authpassphrase"):
            ours["auth_key"] = options["authpassphrase"]
        if options.get("privpassphrase"):
            ours["priv_key"] = options["privpassphrase"]
        # pysnmp's defaults when a key is given without a protocol, as PDUDaemon relied on
        ours["auth_protocol"] = AUTH_NAMES.get(options.get("auth_protocol", ""), options.get("auth_protocol", "md5"))
        ours["priv_protocol"] = PRIV_NAMES.get(options.get("priv_protocol", ""), options.get("priv_protocol", "des"))
        return ours


class Cyberpower81001(CyberpowerSnmp):
    """cyberpower81001 / cyberpower41001: SNMP v1, community ``private`` unless set."""

    native_driver = "cyberpower_snmp"
    options = {**_ADDRESS, vol.Optional("community", default="private"): str}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours = {"host": _address(options, pdu), "community": options["community"], "version": "1",
                "snmp_retries": 1, "context": "", "auth_protocol": "sha", "priv_protocol": "aes",
                "native_cycle": True, "native_cycle_delay": 5.0}
        super().__init__(ours, pdu=pdu, timeout=timeout)


class Ip9258(SnmpDriver):
    """Aviosys IP Power 9258: SNMP v1, community ``public``, 1 on / 0 off at ``92.58.2.N.0``."""

    model = "Aviosys IP Power 9258 (SNMP)"
    native_driver = "snmp"
    options = {**_ADDRESS, vol.Optional("community", default="public"): str}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        ours = {"host": _address(options, pdu), "community": options["community"], "version": "1",
                "control_oid": ENT + "92.58.2.{outlet}.0", "on_value": 1, "off_value": 0,
                "snmp_retries": 1, "context": "", "auth_protocol": "sha", "priv_protocol": "aes",
                "native_cycle": False}
        super().__init__(ours, pdu=pdu, timeout=timeout)
