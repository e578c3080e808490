"""Generic HTTP relays addressed by a URL template: ``rest`` (PUT/GET) and ``simple_rest`` (GET only).

Both take ``url``, a template with ``{index}``, replaced by the outlet's port number (the
number the config gives the port; nothing from an MQTT request reaches the URL but that
number) plus ``index_offset`` (0; -1 for a device that counts from 0, so that port 1 is
index 0), and, for ``simple_rest``, ``{value}``:

- ``rest``: ``PUT <url>`` with the body ``1`` or ``0`` switches; ``GET <url>`` answers
  ``1`` (on) or ``0`` (off).
- ``simple_rest``: ``GET <url>`` with ``{value}`` = ``1`` or ``0`` switches; the state is
  ``GET <url>`` with ``{value}`` empty and any trailing ``/`` cut, answering ``1`` or ``0``
  (labgrid's ``simplerest``).

The template is checked when the config is loaded: http or https, a host, no placeholder
in the scheme or host part, no field but ``{index}`` (with an optional integer format such
as ``{index:02d}``) and ``{value}``. Credentials go in ``username``/``password`` (basic or
digest auth), or in the URL as ``http://user:pass@host/...``; either way they never appear
in messages. ``read: false`` for devices that cannot report state (then ``get`` is not
asked and the last switched state is reported).
"""

from __future__ import annotations

import re
import string
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.http_transport import AUTH_OPTIONS, HttpDriver, ca_file_path, mask

INDEX_FORMAT = re.compile(r"^0?\d{0,2}d?$")  # {index:02d}, {index:3}: an integer, padded


def url_template(*fields: str, required: tuple[str, ...] = ()) -> Any:
    """Schema type: an http(s) URL template with only ``fields`` as placeholders."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise vol.Invalid("expected a URL template such as http://host/relay/{index}")
        shown = repr(mask(value, frozenset()))  # no user:password@ in a config error
        seen = set()
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as e:
            raise vol.Invalid(f"{shown}: {e} (write a literal brace as {{{{ or }}}})") from None
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if name not in fields:
                allowed = " and ".join(f"{{{f}}}" for f in fields)
                raise vol.Invalid(f"{shown}: unknown placeholder {{{name}}}: only {allowed} may appear")
            if conversion or (spec and (name != "index" or not INDEX_FORMAT.match(spec))):
                raise vol.Invalid(f"{shown}: {{{name}}} takes no conversion or format"
                                  + (" but an integer one, such as {index:02d}" if name == "index" else ""))
            seen.add(name)
        for name in required:
            if name not in seen:
                raise vol.Invalid(f"{shown}: {{{name}}} is missing")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise vol.Invalid(f"{shown}: expected an http:// or https:// URL with a host")
        if "{" in parts.netloc or "}" in parts.netloc:
            raise vol.Invalid(f"{shown}: placeholders go in the path or query, not in the scheme or host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise vol.Invalid(f"{shown}: bad port") from None
        return value

    return vol.All(check)


class Rest(HttpDriver):
    """``PUT`` ``1``/``0`` to the URL to switch, ``GET`` it to read."""

    model = "HTTP relay (REST URL template)"
    protocol = "HTTP (PUT/GET on a URL template)"
    tested_against = "`rest` simulator (HTTP on loopback, basic auth)"
    can_read = True
    fields: ClassVar[tuple[str, ...]] = ("index",)
    options: ClassVar[dict[Any, Any]] = {
        vol.Required("url"): url_template("index"),
        vol.Optional("verify", default=True): bool,
        vol.Optional("ca_file"): ca_file_path,
        **AUTH_OPTIONS,
        vol.Optional("read", default=True): bool,
        vol.Optional("index_offset", default=0): vol.All(int, vol.Range(min=-1, max=1000)),
    }

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        parts = urlsplit(options["url"])
        ours = {**options, "https": parts.scheme == "https", "host": parts.netloc.rpartition("@")[2]}
        if parts.password is not None and not options.get("password"):
            # credentials in the URL: sent as HTTP auth, never as part of a URL
            ours.update(username=unquote(parts.username or ""), password=unquote(parts.password))
        if "@" in parts.netloc:
            ours["url"] = parts._replace(netloc=ours["host"]).geturl()
        super().__init__(ours, pdu=pdu, timeout=timeout)
        if not options.get("read", True):
            self.can_read = False  # type: ignore[misc] - this PDU's outlets cannot be read

    def url(self, port: int, value: str = "") -> str:
        index = port + self.config.get("index_offset", 0)
        if index < 0:
            raise DriverError(f"port {port} has no index: with index_offset {self.config['index_offset']}, "
                              f"ports start at {-self.config['index_offset']}")
        return self.config["url"].format(index=index, value=value)

    def state(self, method: str, url: str) -> bool:
        text = self.request(method, url).text
        self.expect(text.strip() in ("0", "1"), f"{method} {urlsplit(url).path}", text)
        return text.strip() == "1"

    def set(self, port: int, on: bool) -> None:
        self.request("PUT", self.url(port), data=b"1" if on else b"0", expect=None)

    def get(self, port: int) -> bool:
        return self.state("GET", self.url(port))


class SimpleRest(Rest):
    """``GET`` the URL with ``{value}`` 1/0 to switch, with it empty to read."""

    model = "HTTP relay (simple REST URL template)"
    protocol = "HTTP (GET on a URL template)"
    tested_against = "`simple_rest` simulator (HTTP on loopback, basic auth)"
    options: ClassVar[dict[Any, Any]] = {**Rest.options,
                                         vol.Required("url"): url_template("index", "value", required=("value",))}

    def set(self, port: int, on: bool) -> None:
        self.request("GET", self.url(port, "1" if on else "0"), expect=None)

    def get(self, port: int) -> bool:
        return self.state("GET", self.url(port).rstrip("/"))
