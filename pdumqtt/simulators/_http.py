"""A base for HTTP device simulators: a loopback HTTP(S) server on its own thread.

A device simulator subclasses :class:`HttpSimulator`, sets ``outlet_numbers`` (the device's
own outlet numbering), and returns its routes from :meth:`HttpSimulator.routes`: a map of
``(method, path)`` to a handler taking a :class:`Request` and returning a :class:`Response`
(or a dict/list, sent as JSON, or a str, sent as text/html). The base owns:

- **listening**: ``listen`` (``127.0.0.1:0`` picks a free port; any 127.0.0.0/8 address or
  ``[::1]``), ``address`` after ``start()``, HTTP/1.1 with keep-alive, one thread per
  connection;
- **auth** checked before any route runs: ``auth: basic`` or ``digest`` (``digest_algorithm``
  MD5 or SHA-256, ``realm``) with ``username`` and ``password``; ``auth: none``, the default,
  checks nothing (devices that take credentials in the query check them in their handler,
  with ``self.config``);
- **state**: ``outlets``, a dict of the device's outlet number to on (True) / off;
- **a record**: ``requests``, every :class:`Request` received (method, path, query, headers,
  body), ``connections``, the number of TCP connections accepted, and ``errors``, what a
  handler raised (answered with HTTP 500);
- **TLS**: ``tls: true`` serves HTTPS with a self-signed certificate for ``localhost``,
  ``127.0.0.1`` and ``::1``, made with ``cryptography``; ``ca_file`` is its PEM path;
- **failure injection**, switched while running by setting ``failure``: ``"error"``
  (HTTP 500), ``"unauthorized"`` (HTTP 401), ``"hang"`` (read the request, never answer
  until ``failure`` changes or the simulator stops), ``"garbage"`` (HTTP 200 with
  ``garbage_body``, a body the device never sends), or ``None`` (behave).

A device::

    class PlugSimulator(HttpSimulator):
        outlet_numbers = range(1, 3)
        def routes(self):
            return {("GET", "/relay"): self.relay}
        def relay(self, request):
            n = int(request.query["n"])
            if "on" in request.query:
                self.outlets[n] = request.query["on"] == "1"
            return {"on": self.outlets[n]}
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import voluptuous as vol

from pdumqtt.simulators import Simulator

FAILURES = (None, "error", "unauthorized", "hang", "garbage")
#: Options of a simulator whose device meters: watts an outlet draws while on, the line voltage,
#: and ``metered: false`` for the model without a meter.
METER_OPTIONS: dict[Any, Any] = {
    vol.Optional("metered", default=True): bool,
    vol.Optional("load", default=25.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
    vol.Optional("loads", default={}): {vol.Coerce(int): vol.All(vol.Coerce(float), vol.Range(min=0))},
    vol.Optional("voltage", default=230.0): vol.All(vol.Coerce(float), vol.Range(min=1)),
}
HANG_LIMIT = 60.0  # seconds a hanging request is held at most


def http_listen(value: Any) -> str:
    """Schema type: ``host:port`` on a loopback address (127.0.0.0/8 or [::1]); port 0 picks one."""
    if not isinstance(value, str):
        raise vol.Invalid("expected host:port")
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    try:
        loopback = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise vol.Invalid("simulators listen on loopback only (127.0.0.0/8 or [::1])")
    if not port.isdigit() or int(port) > 65535:
        raise vol.Invalid(f"expected host:port, got {value!r}")
    return value


@dataclass
class Request:
    """One request as the simulator received it."""

    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes | str | Any = b""
    content_type: str = "text/html"
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[Request], "Response | dict[str, Any] | list[Any] | str"]


def self_signed_certificate(directory: str) -> tuple[str, str]:
    """Write a self-signed certificate for localhost/127.0.0.1/::1 and its key; their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pdumqtt simulator")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: HttpSimulator) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.simulator = simulator
        super().__init__(address, _RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        self.simulator.connections += 1
        if self.simulator.tls_context is not None:
            sock = self.simulator.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the record is ``requests``; stderr stays quiet

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ssl.SSLError, ConnectionError, TimeoutError):
            self.close_connection = True

    def _dispatch(self) -> None:
        sim = self.server.simulator
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, parts.path or "/", dict(parse_qsl(parts.query, keep_blank_values=True)),
                          parts.query, {k.lower(): v for k, v in self.headers.items()}, body)
        try:
            response = sim.respond(request)
        except Exception as e:  # a simulator bug: answer it, and keep it for the test to see
            sim.errors.append(e)
            response = Response(500, f"simulator error: {type(e).__name__}: {e}", "text/plain")
        self._send(response)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch  # noqa: N815 - http.server's names

    def _send(self, response: Response | None) -> None:
        if response is None:  # hung, then dropped
            self.close_connection = True
            return
        body, content_type = response.encoded()
        self.send_response(response.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


class HttpSimulator(Simulator):
    """Serves ``routes()`` on loopback from a thread of its own; see the module docstring."""

    #: The device's outlet numbers, as its protocol counts them.
    outlet_numbers: ClassVar[Iterable[int]] = range(1, 9)
    #: What the ``garbage`` failure answers with: a body the device never sends.
    garbage_body: ClassVar[str] = "<html><body>It works!</body></html>"
    realm: ClassVar[str] = "pdumqtt simulator"
    #: ``MD5`` (RFC 2617) or ``SHA-256`` (RFC 7616, as Shelly's Gen2+ devices use).
    digest_algorithm: ClassVar[str] = "MD5"
    common_options: ClassVar[dict[Any, Any]] = {
        vol.Optional("listen", default="127.0.0.1:0"): http_listen,
        vol.Optional("failure", default=None): vol.In(FAILURES),
        vol.Optional("auth", default="none"): vol.All(vol.Lower, vol.In(["none", "basic", "digest"])),
        vol.Optional("username", default="admin"): str,
        vol.Optional("password", default=""): str,
        vol.Optional("tls", default=False): bool,
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # `pdumqtt sim` validates with `options` alone: it must hold the common keys too. A key the
        # device declares itself replaces the common one, default included (factory logins).
        super().__init_subclass__(**kwargs)
        cls.options = {**{k: v for k, v in HttpSimulator.common_options.items() if k not in cls.options},
                       **cls.options}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(vol.Schema(self.options)(options))
        self.failure: str | None = self.config["failure"]
        self.outlets: dict[int, bool] = dict.fromkeys(self.outlet_numbers, False)
        self.requests: list[Request] = []
        self.connections = 0
        self.errors: list[Exception] = []  # exceptions raised by handlers (answered with HTTP 500)
        self._energy_wh: dict[int, float] = {}
        self._metered_at: dict[int, float] = {}
        self.ca_file: str | None = None
        self.tls_context: ssl.SSLContext | None = None
        self.lock = threading.Lock()  # held while a handler runs: handlers need no locking of their own
        self._routes = self.routes()
        self._nonces: set[str] = set()
        self._stopping = False
        self._released = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # --- for device simulators ---------------------------------------------------------

    def routes(self) -> dict[tuple[str, str], Handler]:
        """``(method, path)`` to handler; a path not listed answers 404, a method not listed 405."""
        raise NotImplementedError

    def outlet(self, n: int) -> bool:
        """Whether outlet ``n`` (the device's numbering) is on."""
        return self.outlets[n]

    def reading(self, n: int) -> tuple[float, float, float, float]:
        """Outlet ``n``'s meter (METER_OPTIONS): watts, amps, volts and the Wh drawn so far."""
        now = time.monotonic()
        energy, seen = self._energy_wh, self._metered_at
        load = self.config.get("loads", {}).get(n, self.config.get("load", 25.0))
        watts = load if self.outlets.get(n) else 0.0
        # what it drew since the last look, at the power it draws now: coarse, but never going down
        energy[n] = energy.get(n, 0.0) + watts * (now - seen.get(n, now)) / 3600
        seen[n] = now
        volts = self.config.get("voltage", 230.0)
        return watts, watts / volts, volts, energy[n]

    def set_load(self, n: int, watts: float) -> None:
        """Make outlet ``n`` draw ``watts`` while on."""
        self.reading(n)  # count the energy at the old load first
        self.config["loads"] = {**self.config.get("loads", {}), n: watts}

    # --- the server ----------------------------------------------------------------------

    @property
    def address(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.config['tls'] else 'http'}://{self.address}"

    def set_failure(self, failure: str | None) -> None:
        """Switch the failure mode; a hanging request is released when it changes."""
        with self._released:
            self.failure = failure
            self._released.notify_all()

    def start(self) -> None:
        host, _, port = self.config["listen"].rpartition(":")
        host = host.strip("[]")
        if self.config["tls"]:
            self._tmp = tempfile.TemporaryDirectory(prefix="pdumqtt-sim-tls-")
            cert, key = self_signed_certificate(self._tmp.name)
            self.ca_file = cert
            self.tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls_context.load_cert_chain(cert, key)
        self._server = _Server(("127.0.0.1" if host == "localhost" else host, int(port)), self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sim-{type(self).__name__}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        with self._released:
            self.failure = None
            self._stopping = True
            self._released.notify_all()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def respond(self, request: Request) -> Response | None:
        """Record ``request``, apply the failure mode and auth, run its route."""
        self.requests.append(request)
        failure = self.failure
        if failure == "hang":
            with self._released:
                self._released.wait_for(lambda: self.failure != "hang" or self._stopping,
                                        HANG_LIMIT)
            return None
        if failure == "error":
            return Response(500, "<html><body><h1>500 Internal Server Error</h1></body></html>")
        if failure == "unauthorized":
            return self._challenge()
        if not self._authorized(request):
            return self._challenge()
        if failure == "garbage":
            return Response(200, self.garbage_body)
        handlers = {m: h for (m, p), h in self._routes.items() if p == request.path}
        if not handlers:
            return Response(404, "<html><body><h1>404 Not Found</h1></body></html>")
        handler = handlers.get(request.method)
        if handler is None:
            return Response(405, "Method Not Allowed", headers={"Allow": ", ".join(sorted(handlers))})
        with self.lock:
            result = handler(request)
        if isinstance(result, Response):
            return result
        if isinstance(result, str):
            return Response(200, result)
        return Response(200, result, "application/json")

    # --- auth ----------------------------------------------------------------------------

    def _challenge(self) -> Response:
        if self.config["auth"] == "digest":
            nonce = secrets.token_hex(16)
            self._nonces.add(nonce)
            value = f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", algorithm={self.digest_algorithm}'
        else:
            value = f'Basic realm="{self.realm}"'
        return Response(401, "<html><body><h1>401 Unauthorized</h1></body></html>",
                        headers={"WWW-Authenticate": value})

    def _authorized(self, request: Request) -> bool:
        kind = self.config["auth"]
        header = request.headers.get("authorization", "")
        if kind == "none":
            return True
        if kind == "basic":
            expected = base64.b64encode(f"{self.config['username']}:{self.config['password']}".encode()).decode()
            return header == f"Basic {expected}"
        return self._digest_ok(request, header)

    def _digest_ok(self, request: Request, header: str) -> bool:
        if not header.startswith("Digest "):
            return False
        fields: dict[str, str] = {}
        for part in _split_digest(header[len("Digest "):]):
            key, _, value = part.strip().partition("=")
            fields[key.strip().lower()] = value.strip().strip('"')
        if fields.get("nonce") not in self._nonces or fields.get("username") != self.config["username"]:
            return False

        def md5(text: str) -> str:  # or SHA-256, as the challenge said
            if self.digest_algorithm == "SHA-256":
                return hashlib.sha256(text.encode()).hexdigest()
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.config['username']}:{self.realm}:{self.config['password']}")
        ha2 = md5(f"{request.method}:{fields.get('uri', '')}")
        if fields.get("qop"):
            expected = md5(f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:"
                           f"{fields['qop']}:{ha2}")
        else:
            expected = md5(f"{ha1}:{fields['nonce']}:{ha2}")
        return secrets.compare_digest(expected, fields.get("response", ""))


def _split_digest(text: str) -> list[str]:
    """Split a digest header's ``key=value, key="a, b"`` list at the commas outside quotes."""
    parts, current, quoted = [], "", False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += c
    if current.strip():
        parts.append(current)
    return parts
