"""The driver contract: what every PDU driver is, and the helpers drivers share.

Installed, this folder is the package ``pdumqtt.drivers``. A driver is one small
module here: a :class:`Driver` subclass with its option schema beside its code,
registered by name in ``setup.cfg`` under the ``pdumqtt.drivers`` entry-point group.
See ``drivers/README.md`` for the guide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import voluptuous as vol

#: What a meter can report, with the unit each is given in.
READING_UNITS: dict[str, str] = {"power": "W", "current": "A", "voltage": "V", "energy": "kWh"}


class DriverError(Exception):
    """The device refused, failed or could not be reached.

    The message is shown to users in the error ack, so it says what happened in
    words a person can act on, and never contains a secret.
    """


class NoSuchOutlet(DriverError):
    """The device answered, and it has no outlet of that number (a strip with fewer outlets
    than the config gives it). The PDU stays online: the runner's probe skips that port."""


@dataclass(frozen=True)
class Reading:
    """One meter read of an outlet or of the whole PDU: whichever quantities the device gives.

    ``power`` in W (active power), ``current`` in A, ``voltage`` in V, ``energy`` in kWh as
    the device counts it (it only goes up, until someone resets the device's meter).
    """

    power: float | None = None
    current: float | None = None
    voltage: float | None = None
    energy: float | None = None

    def values(self) -> dict[str, float]:
        """The quantities present, by name."""
        return {k: float(v) for k, v in asdict(self).items() if v is not None}


class Driver:
    """One PDU: switch one outlet, read one outlet back.

    The runner guarantees that a driver instance is only ever called one call at a
    time, so drivers need no locking of their own. The calls may come from more than
    one thread over time (after a call that overran its timeout), so keep nothing per thread.
    Construction must not do I/O: a driver is built lazily by the PDU's worker and
    the first ``set``/``get`` opens whatever connection it needs.
    """

    #: Options this driver takes, as a voluptuous schema dict. Validated at start,
    #: merged with the common PDU keys (driver, ports, retries, ...).
    options: ClassVar[dict[Any, Any]] = {}
    #: Free text shown in ``bridge/info`` and Home Assistant's device model.
    model: ClassVar[str] = ""
    #: True when ``get`` reads the outlet from the device.
    can_read: ClassVar[bool] = False
    #: The wire protocol, for the README's devices table: "HTTP (JSON-RPC)", "telnet menu", "USB HID"...
    protocol: ClassVar[str] = ""
    #: What the tests drive it against, for the devices table: "`shelly` simulator (HTTP on loopback)".
    tested_against: ClassVar[str] = ""
    #: Set on a class that exists to take a PDUDaemon driver name and its options unchanged:
    #: the name of the pdumqtt driver it is a dialect of. The devices table lists it in that row.
    native_driver: ClassVar[str] = ""
    #: The outlets of the model a PDUDaemon name stands for, where the name fixes them;
    #: ``pdumqtt migrate`` gives a converted PDU that many ports.
    fixed_ports: ClassVar[int | None] = None
    #: The number of the device's first outlet: 1, or 0 on a PDUDaemon name whose driver numbered
    #: outlets from 0 (conrad197720, shelly_gen2, intellinet), so that its users' requests keep their numbers. With 0,
    #: ``ports: N`` means ports 0 to N-1 and ``set``/``get`` are given those numbers.
    first_port: ClassVar[int] = 1
    #: True when the driver has ``meter_outlet`` and/or ``meter_pdu``: power, current, voltage, energy.
    can_meter: ClassVar[bool] = False
    #: The quantities ``meter_outlet`` and ``meter_pdu`` give (names from READING_UNITS), for
    #: Home Assistant's sensors; :meth:`readings` may narrow them from the options.
    outlet_readings: ClassVar[tuple[str, ...]] = ()
    pdu_readings: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        self.config = options
        self.pdu = pdu
        self.timeout = timeout
        #: The PDU's port names by number, from the config's ``ports`` (set by the runner before
        #: the first call), for devices that address outlets by name: ESPHome entity ids, Home
        #: Assistant entities. Empty when the driver is used on its own.
        self.port_names: dict[int, str] = {}

    def set(self, port: int, on: bool) -> Reading | None:
        """Switch outlet ``port`` (1-based) on or off; raise DriverError on failure.

        A metering device whose answer to the switch carries the outlet's meter may return
        it as a :class:`Reading`: it goes into the command's ack and the reading topics."""
        raise NotImplementedError

    def get(self, port: int) -> bool:
        """Return True when outlet ``port`` is on, read from the device."""
        raise DriverError(f"{type(self).__name__} cannot read outlet state")

    def ping(self) -> None:
        """Check that the device answers, switching nothing; raise DriverError when it does not.

        For drivers that cannot read outlets: the runner probes with it (while the PDU is
        offline, or every ``poll_interval``), so such a PDU comes back online by itself.
        """
        raise NotImplementedError

    @classmethod
    def ports_for(cls, options: dict[str, Any]) -> tuple[int, str] | None:
        """The outlet count a PDU with these options has, and why, where ``fixed_ports`` cannot say
        (the model is the device's, not the name's): what ``pdumqtt migrate`` gives it. None when
        the options tell nothing; then ``fixed_ports``, else the migrate default, is used."""
        return None

    @classmethod
    def has_ping(cls) -> bool:
        """True when the driver overrides :meth:`ping`."""
        return cls.ping is not Driver.ping

    @classmethod
    def has_native_cycle(cls) -> bool:
        """True when the driver overrides :meth:`cycle` to use the device's own reboot."""
        return cls.cycle is not Driver.cycle

    def cycle(self, port: int, delay: float) -> bool:
        """Power-cycle with the device's own reboot command, if it has one.

        Return False (the default) to let the runner do off, wait, on itself.
        """
        return False

    @classmethod
    def readings(cls, options: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The quantities a PDU with these options reports per outlet and for the whole unit."""
        return (cls.outlet_readings, cls.pdu_readings) if cls.can_meter else ((), ())

    def meter_outlet(self, port: int) -> Reading | None:
        """Read outlet ``port``'s meter; DriverError on failure, None when this device has no
        outlet meters after all (the runner then stops asking)."""
        return None

    def meter_pdu(self) -> Reading | None:
        """Read the whole PDU's meter (its inlet, or phase 1); as :meth:`meter_outlet`."""
        return None

    def outlet_name(self, port: int) -> str | None:
        """The outlet's name as the device knows it, if it keeps names; shown in ``bridge/info``."""
        return None

    def close(self) -> None:
        """Release connections; the driver may be used again afterwards."""


def parse_host(address: str) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (a bare IPv6 address has no port);
    ValueError saying what is wrong."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    if not host:
        raise ValueError(f"no host in {address!r}")
    if not port:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {address!r}")
    return host, int(port)


def split_host(address: str, default_port: int) -> tuple[str, int]:
    """Split ``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` into host and port."""
    try:
        host, port = parse_host(address)
    except ValueError as e:
        raise vol.Invalid(str(e)) from None
    return host, default_port if port is None else port


def join_host(host: str, port: int | str) -> str:
    """``host:port``, with an IPv6 address in brackets: the form :func:`split_host` reads."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def HostAddress(default_port: int) -> vol.All:  # noqa: N802 - reads as a schema type
    """Schema type: a ``host[:port]`` string, validated and kept as text."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise vol.Invalid("expected a host name or address, with :port if not standard")
        split_host(value, default_port)
        return value

    return vol.All(check)
