"""The HTTP transport every HTTP driver shares: one ``requests.Session``, its options, its errors.

A driver for an HTTP device subclasses :class:`HttpDriver` and calls :meth:`HttpDriver.request`
(or :meth:`HttpDriver.request_json`) with a method and a path; everything else is here:

- **Options** (merge the pieces you need into your driver's ``options``):
  :data:`ADDRESS_OPTIONS` = ``host`` (``host[:port]``, :func:`HostAddress`), ``https`` (bool),
  ``verify`` (bool, check the device's certificate), ``ca_file`` (a CA bundle to check it
  with); :data:`AUTH_OPTIONS` = ``username``, ``password``, ``auth`` (``basic``/``digest``,
  sent as an HTTP header when a password is set; ``auto`` asks once without credentials
  and answers whichever scheme the device's 401 challenge names, kept for the driver's
  life). :data:`HTTP_OPTIONS` is both.
  A PDUDaemon-name class maps its own option names onto these in ``__init__``.
- **Timeouts**: ``self.timeout`` for the connect and for each read.
- **Connections**: one session per driver instance, made on the first request and kept
  (keep-alive) between calls; dropped after any failure and in ``close()``, so the next
  call reconnects.
- **Errors**: every failure is a :class:`DriverError` that names the device
  (``host:port``), the request (method and path, never the query string) and a short
  reason: ``cannot connect (connection refused)``, ``no answer within 2 s``,
  ``refused the credentials (HTTP 401)``, ``answered HTTP 500 (Internal Server Error)``,
  ``answered with a body that is not JSON: '<html>…'``. Secrets never appear in them:
  the password, anything passed to :meth:`HttpDriver.add_secret` (query-string
  credentials), and the ``user:password@`` of any URL are replaced by ``***``.
- **Logs**: urllib3 logs each request line, query string included, at DEBUG; a filter
  installed here cuts the query string and masks secrets from those records.

A driver::

    class Plug(HttpDriver):
        options = {**HTTP_OPTIONS}
        def set(self, port, on):
            reply = self.request_json("POST", "/rpc", json={"id": port, "on": on})
            self.expect(reply.get("ok") is True, "/rpc", reply)

``request(method, target, *, params=, json=, data=, headers=, expect=(200,), auth=True)``:
``target`` is a path on the device (``/cm``) or a full URL (for URL templates); ``params``
is the query; ``expect`` the statuses that count as success (any 2xx when ``None``);
``auth=False`` sends no Authorization header even when a password is configured (for
devices that take credentials in the query). It returns the ``requests.Response``.

Devices with a login page override ``session_opened()``: it runs before the first request
of each new session (so again after any failure), and the cookies it gets are kept.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import ssl
import warnings
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import requests
import voluptuous as vol
from requests.auth import AuthBase, HTTPBasicAuth, HTTPDigestAuth
from urllib3.exceptions import InsecureRequestWarning

from pdumqtt.drivers import Driver, DriverError, HostAddress, NoSuchOutlet, join_host, split_host

log = logging.getLogger(__name__)

MASK = "***"
BODY_EXCERPT = 60  # characters of an unexpected body shown in an error


def ca_file_path(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise vol.Invalid("expected the path of a CA certificate file (PEM)")
    if not os.path.isfile(value):
        raise vol.Invalid(f"no such file: {value}")
    return value


#: Where the device is and how to reach it.
ADDRESS_OPTIONS: dict[Any, Any] = {
    vol.Required("host"): HostAddress(default_port=80),
    vol.Optional("https", default=False): bool,
    vol.Optional("verify", default=True): bool,
    vol.Optional("ca_file"): ca_file_path,
}
#: HTTP authentication (an ``Authorization`` header), sent when ``password`` is set.
AUTH_OPTIONS: dict[Any, Any] = {
    vol.Optional("username", default="admin"): str,
    vol.Optional("password"): str,
    vol.Optional("auth", default="basic"): vol.All(vol.Lower, vol.In(["basic", "digest", "auto"])),
}
HTTP_OPTIONS: dict[Any, Any] = {**ADDRESS_OPTIONS, **AUTH_OPTIONS}

_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def redact_url(url: str) -> str:
    """``url`` without its ``user:password@`` and its query string: fit for a message."""
    parts = urlsplit(_USERINFO.sub("", url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class _RedactFilter(logging.Filter):
    """Cuts query strings and userinfo out of urllib3's request log lines, and masks secrets."""

    #: Every driver's secrets: log records come from urllib3, which knows no driver.
    secrets: ClassVar[set[str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record: let logging report it as it would
            return True
        text = _USERINFO.sub("", text)
        text = re.sub(r'(\s/[^\s?"]*)\?[^\s"]*', r"\1?***", text)
        record.msg, record.args = mask(text, self.secrets), None
        return True


_FILTER = _RedactFilter()
for _name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
    logging.getLogger(_name).addFilter(_FILTER)


def mask(text: str, secrets: set[str] | frozenset[str]) -> str:
    """``text`` with every secret (longest first) and any URL's userinfo replaced by ``***``."""
    text = _USERINFO.sub("", text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _root_reason(exc: BaseException) -> str:
    """A short cause for a connection failure, from the OSError deep inside requests' wrapping."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"certificate not trusted ({e.verify_message})"
        if isinstance(e, ssl.SSLError):
            return f"TLS failed ({e.reason or e})"
        if isinstance(e, http.client.RemoteDisconnected | http.client.BadStatusLine):
            return "the device closed the connection without an HTTP answer: does it want https?"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
        stack.extend([getattr(e, "reason", None), e.__cause__, e.__context__])
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
    if "Name or service not known" in str(exc) or "nodename nor servname" in str(exc):
        return "unknown host name"
    return type(exc).__name__


class HttpDriver(Driver):
    """A device spoken to over HTTP(S). See the module docstring for the options and errors."""

    options: ClassVar[dict[Any, Any]] = HTTP_OPTIONS
    #: The port used when ``host`` names none.
    default_port: ClassVar[int] = 80
    default_https_port: ClassVar[int] = 443

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self._session: requests.Session | None = None
        self._digest: HTTPDigestAuth | None = None
        self._learnt_auth: str | None = None  # for auth: auto, what the device's challenge asked for
        self._secrets: set[str] = set()
        if options.get("password"):
            self.add_secret(options["password"])

    # --- what the driver uses ------------------------------------------------------

    def add_secret(self, value: str | None) -> None:
        """Never show ``value`` in an error or a log line (a credential sent in a query string)."""
        if value:
            self._secrets.add(str(value))
            _RedactFilter.secrets.add(str(value))

    @property
    def scheme(self) -> str:
        return "https" if self.config.get("https") else "http"

    @property
    def where(self) -> str:
        """``host:port`` of the device, for messages."""
        host, port = self._host_port()
        return join_host(host, port)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.where}"

    def request(self, method: str, target: str, *, params: dict[str, Any] | str | None = None,
                json: Any = None, data: Any = None, headers: dict[str, str] | None = None,
                expect: tuple[int, ...] | None = (200,), auth: bool = True) -> requests.Response:
        """Send one request; the response if its status is in ``expect``, else a DriverError."""
        url = target if "://" in target else self.base_url + (target if target.startswith("/") else "/" + target)
        what = f"{method} {urlsplit(url).path or '/'}"
        session = self._open()
        verify = self._verify()
        try:
            with warnings.catch_warnings():
                if verify is False:  # the config asked for it; urllib3 would warn on every request
                    warnings.simplefilter("ignore", InsecureRequestWarning)
                def send() -> requests.Response:
                    return session.request(method, url, params=params, json=json, data=data, headers=headers,
                                           auth=self._auth() if auth else None,
                                           timeout=(self.timeout, self.timeout), verify=verify)

                response = send()
                if auth and response.status_code == 401 and self._auth_mode() is None and self.config.get("password"):
                    # auth: auto asked without credentials: answer the scheme the device challenges with
                    challenge = response.headers.get("WWW-Authenticate", "").strip().lower()
                    self._learnt_auth = "digest" if challenge.startswith("digest") else "basic"
                    response = send()
        except requests.Timeout:
            self.close()
            raise self.error(f"{what}: no answer within {self.timeout:g} s") from None
        except requests.exceptions.SSLError as e:
            self.close()
            raise self.error(f"{what}: {_root_reason(e)}") from None
        except requests.ConnectionError as e:
            self.close()
            raise self.error(f"{what}: cannot connect ({_root_reason(e)})") from None
        except requests.RequestException as e:
            self.close()
            raise self.error(f"{what}: {type(e).__name__}") from None
        status = response.status_code
        if (expect is None and 200 <= status < 300) or (expect is not None and status in expect):
            return response
        self.close()
        reason = response.reason or ""
        if status == 401:
            hint = "set username and password" if not self.config.get("password") else "check username and password"
            raise self.error(f"{what}: refused the credentials (HTTP 401): {hint}")
        if status == 403:
            raise self.error(f"{what}: forbidden (HTTP 403{': ' + reason if reason else ''})")
        raise self.error(f"{what}: answered HTTP {status}{f' ({reason})' if reason else ''}")

    def request_json(self, method: str, target: str, **kwargs: Any) -> Any:
        """:meth:`request`, then the body parsed as JSON (a DriverError if it is not JSON)."""
        response = self.request(method, target, **kwargs)
        try:
            return response.json()
        except ValueError:
            self.close()
            raise self.error(f"{method} {urlsplit(response.url).path}: answered with a body that is not JSON: "
                             f"{self.excerpt(response.text)}") from None

    def expect(self, condition: bool, what: str, body: Any) -> None:
        """A DriverError saying the device answered ``what`` with ``body``, unless ``condition``."""
        if not condition:
            self.close()
            raise self.error(f"{what}: unexpected answer {self.excerpt(body)}")

    def error(self, message: str) -> DriverError:
        """A DriverError for this device: ``host:port: message``, secrets masked."""
        return DriverError(mask(f"{self.where}: {message}", self._secrets))

    def excerpt(self, body: Any) -> str:
        """A short, secret-free quote of what the device sent."""
        text = body if isinstance(body, str) else repr(body)
        text = mask(" ".join(text.split()), self._secrets)
        return repr(text if len(text) <= BODY_EXCERPT else text[:BODY_EXCERPT] + "…")

    def check_port(self, port: int, count: int, first: int = 1) -> None:
        """A DriverError unless ``first <= port < first + count``."""
        if not first <= port < first + count:
            raise NoSuchOutlet(f"outlet {port} does not exist: {self.where} has outlets {first} to {first + count - 1}")

    def session_opened(self) -> None:
        """Called once for each new session, before its first request: log in here.

        Cookies the device sets stay in the session until it is dropped (after a failure,
        or ``close()``), and the next session logs in again. ``self.request`` works here.
        """

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            session.close()

    # --- inside ------------------------------------------------------------------------

    def _host_port(self) -> tuple[str, int]:
        default = self.default_https_port if self.config.get("https") else self.default_port
        return split_host(self.config["host"], default)

    def _open(self) -> requests.Session:
        if self._session is None:
            session = self._session = requests.Session()
            session.trust_env = False  # a lab's proxy variables must not reroute device traffic
            session.headers["User-Agent"] = "pdumqtt"
            self._digest = None
            try:
                self.session_opened()
            except BaseException:
                self.close()
                raise
            return session
        return self._session

    def _auth_mode(self) -> str | None:
        """``basic`` or ``digest``; None while ``auth: auto`` has not seen the device's challenge."""
        mode = self.config.get("auth") or "basic"
        return self._learnt_auth if mode == "auto" else mode

    def _auth(self) -> AuthBase | None:
        password = self.config.get("password")
        if not password or self._auth_mode() is None:
            return None
        username = self.config.get("username") or ""
        if self._auth_mode() == "digest":
            if self._digest is None:  # kept with the session: it counts nonces
                self._digest = HTTPDigestAuth(username, password)
            return self._digest
        return HTTPBasicAuth(username, password)

    def _verify(self) -> bool | str:
        if not self.config.get("verify", True):
            return False
        return self.config.get("ca_file") or True
