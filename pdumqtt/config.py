"""The configuration: reading a YAML or JSON file, validating it, resolving defaults.

Validation happens once, at start, with voluptuous. Every error names the key path and
the reason (``pdus.apc1.ports: expected ...``) so ``pdumqtt check`` and the daemon can
exit with status 2 and a message a person can act on.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from pdumqtt import registry

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
RESERVED_PDU_NAMES = {"bridge", "alias"}


class ConfigError(Exception):
    """The configuration is invalid; the message names the key path and the reason."""


MAX_NAME = 128  # characters of a PDU, port or alias name, so every topic fits commands.MAX_TOPIC


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value) or len(value) > MAX_NAME:
        raise vol.Invalid(f"expected a name of letters, digits, '_', '.' or '-', at most {MAX_NAME} characters")
    return value


def _readable_file(value: Any) -> str:
    """A path that names a readable file now, so that a typo stops the daemon at start with
    the key's name rather than as a traceback when the file is first needed."""
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected a file path")
    try:
        with open(value, "rb"):
            pass
    except OSError as e:
        raise vol.Invalid(f"cannot read {value}: {e.strerror}") from None
    return value


def _prefixes(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise vol.Invalid("expected a topic prefix or a list of them")
    return [_base_topic(item.rstrip("/") if isinstance(item, str) else item) for item in items]


def _base_topic(value: Any) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "#+\0") or value.startswith(("/", "$")) \
            or value.endswith("/") or "//" in value or len(value) > MAX_NAME:
        raise vol.Invalid(f"expected a topic prefix such as 'pdu' or 'lab/pdu', without wildcards, "
                          f"at most {MAX_NAME} characters")
    return value


def _ports(value: Any, first: int = 1) -> dict[str, int]:
    """A count, a list of names or a map of name to number, as a map of name to number.

    Ports are numbered from 1, or from ``first`` (0 for a driver whose device counts from 0).
    """
    error = vol.Invalid("expected an int, a list of names or a map of name to number")
    if isinstance(value, bool):
        raise error
    if isinstance(value, int):
        if not 1 <= value <= 1024:
            raise vol.Invalid("expected a port count from 1 to 1024")
        return {str(n): n for n in range(first, first + value)}
    if isinstance(value, list) and value:
        pairs = [(name, n) for n, name in enumerate(value, first)]
    elif isinstance(value, dict) and value:
        pairs = list(value.items())
    else:
        raise error
    ports: dict[str, int] = {}
    for name, number in pairs:
        name = str(name) if isinstance(name, int) and not isinstance(name, bool) else name
        if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME:
            raise vol.Invalid(f"port name {str(name)[:40]!r}: expected letters, digits, '_', '.' or '-', "
                              f"at most {MAX_NAME} characters")
        if name.isdigit() and name[0] == "0" and name != "0":
            raise vol.Invalid(f"port name {name!r}: a number is written without leading zeros")
        if isinstance(number, bool) or not isinstance(number, int) or number < first:
            raise vol.Invalid(f"port {name!r}: expected a number from {first}")
        if name.isdigit() and int(name) != number:
            raise vol.Invalid(f"port name {name!r} is a number other than its port {number}")
        if name in ports:
            raise vol.Invalid(f"port name {name!r} given twice")
        if number in ports.values():
            raise vol.Invalid(f"port number {number} given twice")
        ports[name] = number
    return ports


def _host_port(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected HOST:PORT")
    from pdumqtt.drivers import split_host

    split_host(value, 1)  # vol.Invalid naming what is wrong
    return value


Seconds = vol.All(vol.Coerce(float), vol.Range(min=0))
PositiveSeconds = vol.All(vol.Coerce(float), vol.Range(min=0.001))
_Band = vol.All(vol.Coerce(float), vol.Range(min=0))

#: How much a reading must change to be published again: per quantity, in its unit, and/or
#: ``percent`` of the value last published. Changes to or from zero always go out.
DEADBAND_SCHEMA = vol.Schema({vol.Optional(k): _Band for k in ("power", "current", "voltage", "energy", "percent")})

# The per-PDU keys that a `defaults` section can set: (default, validator).
COMMON_PDU_KEYS: dict[str, tuple[Any, Any]] = {
    "retries": (3, vol.All(int, vol.Range(min=0, max=100))),
    "retry_delay": (1.0, Seconds),
    "timeout": (10.0, PositiveSeconds),
    "cycle_delay": (5.0, Seconds),
    "max_cycle_delay": (300.0, Seconds),
    "poll_interval": (60.0, Seconds),
    # seconds between meter reads on a driver that can meter; 0 = never
    "meter_interval": (0.0, Seconds),
    "meter_deadband": ({}, DEADBAND_SCHEMA),
}
DEFAULTS_SCHEMA = vol.Schema({vol.Optional(k, default=d): v for k, (d, v) in COMMON_PDU_KEYS.items()})

MQTT_SCHEMA = vol.Schema({
    vol.Optional("host"): str,
    vol.Optional("port", default=1883): vol.All(int, vol.Range(min=1, max=65535)),
    vol.Optional("username"): str,
    vol.Exclusive("password", "password", msg="give password or password_file, not both"): str,
    vol.Exclusive("password_file", "password", msg="give password or password_file, not both"): _readable_file,
    vol.Optional("tls"): vol.Any(bool, {
        vol.Optional("ca_certs"): _readable_file,
        vol.Optional("certfile"): _readable_file,
        vol.Optional("keyfile"): _readable_file,
        vol.Optional("insecure", default=False): bool,
    }),
    vol.Optional("base_topic", default="pdu"): _base_topic,
    vol.Optional("client_id"): vol.All(str, vol.Length(min=1, max=200)),
    vol.Optional("protocol", default="5"): vol.All(vol.Coerce(str), vol.In(["5", "3.1.1"])),
    # 2 at least: a fleet's takeover waits for the broker to fire a Last Will, after keepalive x 1.5
    vol.Optional("keepalive", default=60): vol.All(int, vol.Range(min=2, max=65535)),
    vol.Optional("session_expiry", default=300): vol.All(int, vol.Range(min=0)),
    vol.Optional("max_command_age", default=60.0): PositiveSeconds,
    vol.Optional("transaction_window", default=600.0): Seconds,
    vol.Optional("response_topic_prefix"): _prefixes,
})

PDUDAEMON_SCHEMA = vol.Schema({
    vol.Optional("listen", default="127.0.0.1:16421"): _host_port,
    vol.Optional("auth_file"): _readable_file,
    vol.Optional("request_timeout", default=10.0): PositiveSeconds,
    vol.Optional("max_connections", default=64): vol.All(int, vol.Range(min=1, max=10000)),
})

# several daemons serving one fleet of PDUs (pdumqtt/fleet.py); absent: one daemon, no claims
FLEET_SCHEMA = vol.Schema({
    # PDUs this daemon drives only once their owner is gone (its Last Will, or a clean stop)
    vol.Optional("standby", default=[]): vol.All(vol.Any(None, [_name]), lambda v: v or []),
    # how long a claim waits for others' claims on the same PDU before it owns it
    vol.Optional("settle", default=1.0): vol.All(vol.Coerce(float), vol.Range(min=0.05, max=60)),
})

TOP_SCHEMA = vol.Schema({
    vol.Optional("mqtt", default={}): MQTT_SCHEMA,
    vol.Optional("homeassistant", default={}): {
        vol.Optional("discovery", default=False): bool,
        vol.Optional("prefix", default="homeassistant"): _base_topic,
        vol.Optional("device_based", default=False): bool,
    },
    vol.Optional("pdudaemon"): vol.Any(None, PDUDAEMON_SCHEMA),
    # the optional HTTP port: /metrics always, the live status page only when asked for
    vol.Optional("http"): vol.Any(None, {
        vol.Optional("listen", default="127.0.0.1:9421"): _host_port,
        vol.Optional("status_page", default=False): bool,
    }),
    vol.Optional("defaults", default={}): DEFAULTS_SCHEMA,
    vol.Required("pdus"): vol.All(dict, vol.Length(min=1, msg="expected at least one PDU")),
    vol.Optional("aliases", default={}): vol.Any(None, dict),
    vol.Optional("state_dir"): vol.All(str, vol.Length(min=1)),
    vol.Optional("fleet"): vol.Any(None, FLEET_SCHEMA),
})


@dataclass(frozen=True)
class PduConfig:
    name: str
    driver: str
    options: dict[str, Any]
    ports: dict[str, int]
    retries: int = 3
    retry_delay: float = 1.0
    timeout: float = 10.0
    cycle_delay: float = 5.0
    max_cycle_delay: float = 300.0
    poll_interval: float = 60.0
    meter_interval: float = 0.0
    meter_deadband: dict[str, float] = field(default_factory=dict, compare=False)
    names_by_number: dict[int, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.names_by_number.update({n: name for name, n in self.ports.items()})

    def resolve_port(self, segment: str) -> tuple[str, int] | None:
        """The port's (name, number) for a topic segment that is a name or a number."""
        number = self.ports.get(segment)
        if number is not None:
            return segment, number
        # one spelling per number, so that a topic ACL on pdu/x/1/set cannot be gone round
        # through 01, ' 1', fullwidth or Arabic-Indic digits (str.isdigit and int() take them all)
        if segment.isascii() and segment.isdigit() and (segment[0] != "0" or segment == "0") and len(segment) <= 6:
            name = self.names_by_number.get(int(segment))
            if name is not None:
                return name, int(segment)
        return None

    @property
    def driver_class(self) -> Any:
        return registry.load(self.driver)


@dataclass(frozen=True)
class Alias:
    name: str
    pdu: str
    port: str


@dataclass
class Config:
    mqtt: dict[str, Any]
    pdus: dict[str, PduConfig]
    aliases: dict[str, Alias]
    homeassistant: dict[str, Any]
    pdudaemon: dict[str, Any] | None
    http: dict[str, Any] | None = None
    source: str = "<data>"
    state_dir: str | None = None  # where the journal lives; None: journal.default_state_dir()
    fleet: dict[str, Any] | None = None  # the fleet section; None: claims off (pdumqtt/fleet.py)

    @property
    def base_topic(self) -> str:
        return self.mqtt["base_topic"]

    @property
    def client_id(self) -> str:
        return self.mqtt.get("client_id") or default_client_id(self.base_topic)


def default_client_id(base_topic: str) -> str:
    """The client id of a config that names none: stable per host and base topic."""
    return f"pdumqtt-{socket.gethostname()}-{base_topic.replace('/', '-')}"


def _path(error: vol.Invalid, prefix: list[Any]) -> str:
    return ".".join(str(p).strip("<>") for p in [*prefix, *error.path]) or "(top level)"


def _describe(error: vol.Invalid, prefix: list[Any]) -> str:
    msg = error.msg
    if msg == "extra keys not allowed":
        msg = "unknown key"
    elif msg == "required key not provided":
        msg = "required key missing"
    return f"{_path(error, prefix)}: {msg}"


def _validate(schema: vol.Schema, data: Any, prefix: list[Any]) -> Any:
    try:
        return schema(data)
    except vol.MultipleInvalid as e:
        raise ConfigError("; ".join(sorted({_describe(err, prefix) for err in e.errors}))) from None
    except vol.Invalid as e:
        raise ConfigError(_describe(e, prefix)) from None


_Schemas = dict[type, tuple[dict[Any, Any], vol.Schema]]  # per driver class: its PDU keys, their schema


def _pdu(name: Any, raw: Any, defaults: dict[str, Any], schemas: _Schemas) -> PduConfig:
    where: list[Any] = ["pdus", name]
    try:
        _name(name)
    except vol.Invalid:
        raise ConfigError(f"pdus.{name}: a PDU name must be letters, digits, '_', '.' or '-'") from None
    if name in RESERVED_PDU_NAMES:
        raise ConfigError(f"pdus.{name}: '{name}' is reserved for topics and cannot name a PDU")
    if not isinstance(raw, dict):
        raise ConfigError(f"pdus.{name}: expected a map with at least 'driver' and 'ports'")
    driver_name = raw.get("driver")
    if not isinstance(driver_name, str):
        raise ConfigError(f"pdus.{name}.driver: required key missing (see `pdumqtt drivers`)")
    if driver_name not in registry.names():
        known = ", ".join(sorted(registry.names()))
        raise ConfigError(f"pdus.{name}.driver: unknown driver {driver_name!r} (known: {known})")
    try:
        driver_class = registry.load(driver_name)
    except Exception as e:  # an installed driver that fails to import is a config-time error
        raise ConfigError(f"pdus.{name}.driver: driver {driver_name!r} cannot be loaded: {e}") from None
    if driver_class not in schemas:  # compiling a schema costs more than validating with it
        first = getattr(driver_class, "first_port", 1)
        common = {vol.Required("driver"): str, vol.Required("ports"): lambda value: _ports(value, first)}
        common.update({vol.Optional(k, default=defaults[k]): v for k, (_, v) in COMMON_PDU_KEYS.items()})
        schemas[driver_class] = common, vol.Schema({**common, **driver_class.options})
    common, schema = schemas[driver_class]
    data = _validate(schema, raw, where)
    if data["cycle_delay"] > data["max_cycle_delay"]:
        raise ConfigError(f"pdus.{name}.cycle_delay: {data['cycle_delay']:g} s is above max_cycle_delay "
                          f"({data['max_cycle_delay']:g} s)")
    if raw.get("meter_interval") and not getattr(driver_class, "can_meter", False):
        # a default for every PDU is fine; asked for on this PDU, it would silently do nothing
        raise ConfigError(f"pdus.{name}.meter_interval: driver {driver_name!r} cannot read power or energy")
    options = {k: v for k, v in data.items() if k not in common and k not in ("driver", "ports")}
    return PduConfig(name=name, driver=driver_name, options=options, ports=data["ports"],
                     **{k: data[k] for k in COMMON_PDU_KEYS})


def _aliases(raw: dict[str, Any], pdus: dict[str, PduConfig]) -> dict[str, Alias]:
    aliases = {}
    for name, target in (raw or {}).items():
        if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME:
            raise ConfigError(f"aliases.{name}: an alias must be letters, digits, '_', '.' or '-', "
                              f"at most {MAX_NAME} characters")
        data = _validate(vol.Schema({vol.Required("pdu"): str, vol.Required("port"): vol.Coerce(str)}),
                         target, ["aliases", name])
        pdu = pdus.get(data["pdu"])
        if pdu is None:
            raise ConfigError(f"aliases.{name}.pdu: no PDU named {data['pdu']!r}")
        port = pdu.resolve_port(data["port"])
        if port is None:
            raise ConfigError(f"aliases.{name}.port: PDU {pdu.name!r} has no port {data['port']!r}")
        aliases[name] = Alias(name, pdu.name, port[0])
    return aliases


def load_config_data(data: Any, source: str = "<data>") -> Config:
    """Validate already-parsed config data; raise ConfigError naming the bad key."""
    if not isinstance(data, dict):
        raise ConfigError("(top level): expected a map with a 'pdus' section")
    from pdumqtt import pdudaemon_conf

    if pdudaemon_conf.is_pdudaemon_conf(data):  # an unchanged pdudaemon.conf
        data = pdudaemon_conf.load(data, source)
    top = _validate(TOP_SCHEMA, data, [])
    defaults = top["defaults"]
    schemas: _Schemas = {}  # for this config's defaults
    pdus = {name: _pdu(name, raw, defaults, schemas) for name, raw in top["pdus"].items()}
    listener = top.get("pdudaemon")
    if listener and "auth_file" in listener:
        listener["clients"] = _listener_clients(listener["auth_file"], pdus)
    fleet = top.get("fleet")
    if "fleet" in top and fleet is None:  # "fleet:" with nothing under it: claims on, the defaults
        fleet = FLEET_SCHEMA({})
    for name in (fleet or {}).get("standby", []):
        if name not in pdus:
            raise ConfigError(f"fleet.standby: {name!r} is not a PDU of this configuration")
    return Config(mqtt=top["mqtt"], pdus=pdus, aliases=_aliases(top["aliases"], pdus),
                  homeassistant=top["homeassistant"], pdudaemon=listener, http=top.get("http"),
                  source=source, state_dir=top.get("state_dir"), fleet=fleet)


@dataclass(frozen=True)
class ListenerClient:
    """One client of the PDUDaemon listener: its secret and the PDUs it may switch."""

    name: str
    token: str | None = field(default=None, repr=False)  # HTTP Bearer, or token=... before a TCP line
    password: str | None = field(default=None, repr=False)  # HTTP basic auth, user = name
    pdus: frozenset[str] = frozenset()  # "*": every PDU

    def may_switch(self, pdu: str) -> bool:
        return "*" in self.pdus or pdu in self.pdus


def _listener_clients(path: str, pdus: dict[str, PduConfig]) -> dict[str, ListenerClient]:
    """The clients in ``pdudaemon.auth_file``: ``{name: {token | password, pdus: [...]}}``."""
    where = f"pdudaemon.auth_file ({path})"
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"{where}: cannot read it: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {e}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{where}: expected a map of client names to {{token or password, pdus}}")
    schema = vol.Schema({
        vol.Exclusive("token", "secret", msg="give token or password, not both"): vol.All(str, vol.Length(min=8)),
        vol.Exclusive("password", "secret", msg="give token or password, not both"): vol.All(str, vol.Length(min=8)),
        vol.Required("pdus"): vol.All([str], vol.Length(min=1)),
    })
    clients: dict[str, ListenerClient] = {}
    for name, raw in data.items():
        try:
            _name(name)
        except vol.Invalid:
            raise ConfigError(f"{where}: client {str(name)[:40]!r}: a client name must be letters, digits, "
                              "'_', '.' or '-'") from None
        entry = _validate(schema, raw, [name])
        if "token" not in entry and "password" not in entry:
            raise ConfigError(f"{where}: {name}: give a token or a password (at least 8 characters)")
        for pdu in entry["pdus"]:
            if pdu != "*" and pdu not in pdus:
                raise ConfigError(f"{where}: {name}.pdus: no PDU named {pdu[:40]!r}")
        clients[name] = ListenerClient(name, entry.get("token"), entry.get("password"), frozenset(entry["pdus"]))
    tokens = [c.token for c in clients.values() if c.token]
    if len(set(tokens)) != len(tokens):
        raise ConfigError(f"{where}: two clients share a token")
    return clients


def read_config_file(path: str | Path) -> Any:
    """Parse a YAML or JSON file into plain data; ConfigError when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    try:
        # JSON by name or by look (pdudaemon.conf is JSON): YAML parsers trip on some JSON
        if path.suffix == ".json" or text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                if path.suffix == ".json":
                    raise
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a config file."""
    return load_config_data(read_config_file(path), source=str(path))
