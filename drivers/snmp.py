"""Generic SNMP outlet driver (pysnmp 7), the base of every SNMP vendor preset.

This module owns the SNMP plumbing: the one asyncio loop thread that all SNMP drivers
of the process share, the option schema for v1/v2c/v3 credentials and OID templates,
and the mapping of SNMP failures (silence, noSuchName, NoSuchInstance, wrongValue, v3
authentication errors) to :class:`DriverError` messages a person can act on.

pysnmp 7 is asyncio only, and an ``SnmpEngine`` must never be used from two event
loops (it hangs with no timeout). So each driver instance builds its own engine inside
the shared loop thread and only ever touches it from there; the calling thread hands
coroutines over with ``asyncio.run_coroutine_threadsafe`` and waits with a deadline.
OIDs are numeric only: no MIB is ever loaded or downloaded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time
import weakref
from collections.abc import Coroutine
from typing import Any

import voluptuous as vol
from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC96_MD5,
    USM_AUTH_HMAC96_SHA,
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_AUTH_NONE,
    USM_PRIV_CBC56_DES,
    USM_PRIV_CBC168_3DES,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES,
    USM_PRIV_CFB192_AES_BLUMENTHAL,
    USM_PRIV_CFB256_AES,
    USM_PRIV_CFB256_AES_BLUMENTHAL,
    USM_PRIV_NONE,
    CommunityData,
    ContextData,
    Integer32,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    get_cmd,
    set_cmd,
)
from pysnmp.hlapi.varbinds import CommandGeneratorVarBinds
from pysnmp.proto import errind
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from pdumqtt.drivers import Driver, DriverError, HostAddress, NoSuchOutlet, split_host

SNMP_PORT = 161
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
_VARBINDS = CommandGeneratorVarBinds()

AUTH_PROTOCOLS = {
    "none": USM_AUTH_NONE,
    "md5": USM_AUTH_HMAC96_MD5,
    "sha": USM_AUTH_HMAC96_SHA,
    "sha224": USM_AUTH_HMAC128_SHA224,
    "sha256": USM_AUTH_HMAC192_SHA256,
    "sha384": USM_AUTH_HMAC256_SHA384,
    "sha512": USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS = {
    "none": USM_PRIV_NONE,
    "des": USM_PRIV_CBC56_DES,
    "3des": USM_PRIV_CBC168_3DES,
    "aes": USM_PRIV_CFB128_AES,
    "aes128": USM_PRIV_CFB128_AES,
    # Reeder's key extension (pysnmp's and Cisco's AES-192/256) ...
    "aes192": USM_PRIV_CFB192_AES,
    "aes256": USM_PRIV_CFB256_AES,
    # ... and Blumenthal's (net-snmp's AES-192/256)
    "aes192-blumenthal": USM_PRIV_CFB192_AES_BLUMENTHAL,
    "aes256-blumenthal": USM_PRIV_CFB256_AES_BLUMENTHAL,
}

_OID_RE = re.compile(r"^\.?\d+(\.\d+)+$")


def oid_template(value: Any) -> str:
    """Schema type: a numeric OID with ``{outlet}`` (or PDUDaemon's ``*``) for the outlet."""
    if not isinstance(value, str):
        raise vol.Invalid("expected a numeric OID such as 1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}")
    text = value.strip().replace("*", "{outlet}")
    probe = text.replace("{outlet}", "1")
    if not _OID_RE.match(probe):
        raise vol.Invalid(f"{value!r} is not a numeric OID (names need MIBs, which are never loaded)")
    return text.lstrip(".")


def numeric_oid(value: Any) -> str:
    """Schema type: a numeric OID without placeholder."""
    text = oid_template(value)
    if "{outlet}" in text:
        raise vol.Invalid(f"{value!r}: no outlet placeholder allowed here")
    return text


def _int_list(value: Any) -> list[int]:
    if isinstance(value, bool):
        raise vol.Invalid("expected an integer or a list of integers")
    if isinstance(value, int):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    raise vol.Invalid("expected an integer or a list of integers")


def _version(value: Any) -> str:
    text = str(value).lower().lstrip("v")
    if text in ("1", "2", "2c", "3"):
        return {"2": "2c"}.get(text, text)
    raise vol.Invalid("SNMP version must be 1, 2c or 3")


_SECRET = vol.All(str, vol.Length(min=8, msg="SNMPv3 keys must be at least 8 characters"))

#: Connection and credential options every SNMP driver shares.
CONNECTION_OPTIONS: dict[Any, Any] = {
    vol.Required("host"): HostAddress(SNMP_PORT),
    vol.Optional("version", default="1"): _version,
    vol.Optional("community", default="private"): str,
    vol.Optional("read_community"): str,
    vol.Optional("user"): str,
    vol.Optional("auth_key"): _SECRET,
    vol.Optional("auth_protocol", default="sha"): vol.All(vol.Lower, vol.In(AUTH_PROTOCOLS)),
    vol.Optional("priv_key"): _SECRET,
    vol.Optional("priv_protocol", default="aes"): vol.All(vol.Lower, vol.In(PRIV_PROTOCOLS)),
    vol.Optional("context", default=""): str,
    vol.Optional("snmp_retries", default=1): vol.All(int, vol.Range(min=0, max=10)),
}

#: Options of the generic driver: where and what to write and read.
TABLE_OPTIONS: dict[Any, Any] = {
    vol.Required("control_oid"): oid_template,
    vol.Optional("on_value", default=1): int,
    vol.Optional("off_value", default=2): int,
    vol.Optional("cycle_value"): int,
    vol.Optional("state_oid"): oid_template,
    vol.Optional("state_on"): _int_list,
    vol.Optional("state_off"): _int_list,
    vol.Optional("name_oid"): oid_template,
    vol.Optional("native_cycle", default=True): bool,
    vol.Optional("native_cycle_delay"): vol.All(vol.Coerce(float), vol.Range(min=0)),
}


class _LoopThread:
    """The process's one asyncio loop for SNMP; engines live and die on it."""

    _lock = threading.Lock()
    _instance: _LoopThread | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="pdumqtt-snmp-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> _LoopThread:
        with cls._lock:
            if cls._instance is None or not cls._instance.thread.is_alive():
                cls._instance = cls()
            return cls._instance

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None


def _indication_message(indication: Any, address: str, budget: float, tries: int, version: str) -> str:
    if isinstance(indication, errind.RequestTimedOut):
        hint = ("check the address and the user" if version == "3"
                else "check the address and the community (agents ignore a wrong community)")
        return f"no SNMP answer from {address} within {budget:g} s ({tries} tries): {hint}"
    if isinstance(indication, errind.UnknownUserName):
        return "SNMPv3: the agent does not know this user"
    if isinstance(indication, errind.WrongDigest | errind.AuthenticationFailure | errind.AuthenticationError):
        return "SNMPv3 authentication failed: wrong auth_key or auth_protocol"
    if isinstance(indication, errind.DecryptionError):
        return "SNMPv3 decryption failed: wrong priv_key or priv_protocol"
    if isinstance(indication, errind.UnsupportedSecurityLevel):
        return "SNMPv3: the agent does not accept this security level for the user (auth/priv keys)"
    if isinstance(indication, errind.NotInTimeWindow):
        return "SNMPv3: request outside the agent's time window, try again"
    return f"SNMP error talking to {address}: {indication}"


class _NoSuchName(Exception):
    """An SNMPv1 agent's noSuchName to a GET: one of the objects asked for is missing."""


def _new_engine() -> SnmpEngine:
    engine = SnmpEngine()
    _VARBINDS.make_varbinds(engine.cache, (ObjectType(ObjectIdentity(SYS_OBJECT_ID)),))
    return engine


class SnmpDriver(Driver):
    """Outlets switched by writing an integer to a per-outlet OID."""

    model = "SNMP PDU"
    protocol = "SNMP v1/v2c/v3"
    tested_against = "`snmp` simulator (snmpsim)"
    options = {**CONNECTION_OPTIONS, **TABLE_OPTIONS}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        # Built here, in the caller's thread and outside any call's time budget: building
        # an engine loads pysnmp's base MIB modules (about half a second of CPU). That is
        # no I/O, and touches no event loop: the engine's UDP transport and its loop are
        # only made by the first request, on the SNMP loop thread, which alone uses it.
        self._engine = _new_engine()
        loop = _LoopThread.get().loop
        weakref.finalize(self, loop.call_soon_threadsafe, self._engine.close_dispatcher)
        self.host, self.port = split_host(options["host"], SNMP_PORT)

    @property
    def can_read(self) -> bool:  # type: ignore[override]
        return "state_oid" in self.config or "state_on" in self.config

    # --- what the vendor presets override -------------------------------------------------

    def control(self, port: int, action: str) -> tuple[str, int]:
        """The OID and value that make outlet ``port`` do ``action`` (on, off, cycle)."""
        value = {"on": self.config["on_value"], "off": self.config["off_value"],
                 "cycle": self.config.get("cycle_value")}[action]
        if value is None:
            raise DriverError(f"{action}: no value configured for this action")
        return self.config["control_oid"].format(outlet=port), value

    def state_oid(self, port: int) -> str:
        """The OID that reads outlet ``port``'s state."""
        return self.config.get("state_oid", self.config["control_oid"]).format(outlet=port)

    def state_values(self) -> tuple[list[int], list[int]]:
        """Values meaning on, values meaning off."""
        return (self.config.get("state_on", [self.config["on_value"]]),
                self.config.get("state_off", [self.config["off_value"]]))

    # --- the SNMP exchange, on the loop thread --------------------------------------------------

    def _auth(self, write: bool) -> CommunityData | UsmUserData:
        cfg = self.config
        if cfg["version"] == "3":
            if not cfg.get("user"):
                raise DriverError("SNMPv3 needs 'user' (and auth_key, priv_key for authPriv)")
            if cfg.get("priv_key") and not cfg.get("auth_key"):
                raise DriverError("SNMPv3 privacy (priv_key) needs an auth_key too")
            auth = cfg.get("auth_key")
            priv = cfg.get("priv_key")
            return UsmUserData(
                cfg["user"], authKey=auth, privKey=priv,
                authProtocol=AUTH_PROTOCOLS[cfg["auth_protocol"]] if auth else USM_AUTH_NONE,
                privProtocol=PRIV_PROTOCOLS[cfg["priv_protocol"]] if priv else USM_PRIV_NONE,
            )
        community = cfg["community"] if write else cfg.get("read_community", cfg["community"])
        return CommunityData(community, mpModel=0 if cfg["version"] == "1" else 1)

    async def _exchange(self, oids: list[str], value: int | None, deadline: float) -> Any:
        retries = self.config["snmp_retries"]
        # Split what is left of the call's time between the tries, leaving room for
        # pysnmp's timer ticks so the runner sees our message and not its own timeout.
        per_try = max(0.05, (deadline - time.monotonic()) * 0.75 / (retries + 1))
        target = await UdpTransportTarget.create((self.host, self.port), timeout=per_try, retries=retries)
        auth = self._auth(write=value is not None)
        context = ContextData(contextName=self.config["context"])
        if value is None:
            return await get_cmd(self._engine, auth, target, context,
                                 *(ObjectType(ObjectIdentity(oid)) for oid in oids), lookupMib=False)
        return await set_cmd(self._engine, auth, target, context,
                             ObjectType(ObjectIdentity(oids[0]), Integer32(value)), lookupMib=False)

    def _request(self, oid: str, value: int | None = None) -> Any:
        """GET ``oid`` (value None) or SET it to ``value``; return the value the agent sent back."""
        try:
            answer = self._transact([oid], value)[0]
        except _NoSuchName:
            answer = None
        if answer is None:
            # the agent answered, so the PDU is there: only this outlet is not
            raise NoSuchOutlet(f"the agent at {self.host}:{self.port} has no object {oid} "
                               "(no such outlet, or wrong OID)")
        return answer

    def _get_many(self, oids: list[str]) -> list[Any]:
        """GET several OIDs in one request; None for each the agent does not have."""
        try:
            return self._transact(oids, None)
        except _NoSuchName:  # SNMPv1 fails the whole request for one missing object: ask one by one
            if len(oids) == 1:
                return [None]
            return [self._get_many([oid])[0] for oid in oids]

    def _transact(self, oids: list[str], value: int | None) -> list[Any]:
        address = f"{self.host}:{self.port}"
        tries = self.config["snmp_retries"] + 1
        started = time.monotonic()
        try:
            indication, status, _index, var_binds = _LoopThread.get().run(
                self._exchange(oids, value, started + self.timeout * 0.85), timeout=self.timeout * 0.9)
        except TimeoutError:
            raise DriverError(_indication_message(errind.requestTimedOut, address, self.timeout, tries,
                                          self.config["version"])) from None
        except DriverError:
            raise
        except Exception as exc:  # pysnmp raises PySnmpError for bad addresses and the like
            raise DriverError(f"SNMP request to {address} failed: {exc}") from None
        oid = oids[0] if len(oids) == 1 else f"{oids[0]} (and {len(oids) - 1} more)"
        if indication:
            waited = round(time.monotonic() - started, 1)
            raise DriverError(_indication_message(indication, address, waited, tries, self.config["version"]))
        if status:
            name = status.prettyPrint()
            what = "write" if value is not None else "read"
            # noSuchName is SNMPv1's answer for a missing object, noCreation v2c's to a SET of one
            if name in ("noSuchName", "noCreation"):
                if value is None:
                    raise _NoSuchName
                raise NoSuchOutlet(f"the agent at {address} has no object {oid} (no such outlet, or wrong OID)")
            if name in ("badValue", "wrongValue", "wrongType", "inconsistentValue", "wrongLength"):
                raise DriverError(f"the agent at {address} refused value {value} for {oid} ({name})")
            if name in ("readOnly", "notWritable", "noAccess", "authorizationError"):
                raise DriverError(f"the agent at {address} did not allow the {what} of {oid} ({name}): "
                                  "is the community read-only?")
            raise DriverError(f"the agent at {address} answered {name} to the {what} of {oid}")
        if len(var_binds) != len(oids):
            raise DriverError(f"the agent at {address} sent {len(var_binds)} values for {len(oids)} objects "
                              f"({oid})")
        return [None if isinstance(answer, NoSuchInstance | NoSuchObject | EndOfMibView) else answer
                for _name, answer in var_binds]

    def _read_int(self, oid: str) -> int:
        answer = self._request(oid)
        try:
            return int(answer)
        except (TypeError, ValueError):
            raise DriverError(f"{oid} holds {answer.prettyPrint()[:40]!r}, not a number") from None

    # --- the Driver contract -------------------------------------------------------------------

    def set(self, port: int, on: bool) -> None:
        oid, value = self.control(port, "on" if on else "off")
        self._request(oid, value)

    def get(self, port: int) -> bool:
        if not self.can_read:
            return super().get(port)
        value = self._read_int(self.state_oid(port))
        on_values, off_values = self.state_values()
        if value in on_values:
            return True
        if value in off_values:
            return False
        raise DriverError(f"outlet {port} reports state {value}, which is neither on nor off")

    def native_cycle_ok(self, delay: float) -> bool:
        if not self.config["native_cycle"]:
            return False
        wanted = self.config.get("native_cycle_delay")
        return wanted is None or abs(delay - wanted) < 1e-6

    def cycle(self, port: int, delay: float) -> bool:
        try:
            oid, value = self.control(port, "cycle")
        except DriverError:
            return False
        if not self.native_cycle_ok(delay):
            return False
        started = time.monotonic()
        self._request(oid, value)
        self._wait_back_on(port, started + self.timeout * 0.8)
        return True

    def _wait_back_on(self, port: int, deadline: float) -> None:
        # The device reboots on its own clock. Holding the port until it is seen on again
        # keeps commands queued behind the cycle from racing with the reboot; the wait
        # stays inside the runner's call timeout so the reboot is never sent twice.
        if not self.can_read:
            return
        seen_off = False
        while time.monotonic() < deadline:
            try:
                on = self.get(port)
            except DriverError:
                return
            if on and seen_off:
                return
            seen_off = seen_off or not on
            time.sleep(0.1)

    def outlet_name(self, port: int) -> str | None:
        """The outlet's name as the device knows it, when the driver has a name OID."""
        template = self.config.get("name_oid")
        if not template:
            return None
        return self._request(template.format(outlet=port)).prettyPrint()

    def close(self) -> None:
        """Nothing to reset: SNMP over UDP keeps no session. The engine's socket is closed
        when the driver is garbage-collected."""
