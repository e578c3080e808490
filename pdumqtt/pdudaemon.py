"""The PDUDaemon-compatible listener: PDUDaemon's HTTP and TCP requests on one port.

LAVA calls ``pduclient`` (a TCP line ``<pdu> <port> <on|off|reboot> [<delay>]``, answered
``ack`` or ``nack``; with ``-H`` an HTTP GET), labgrid's PDUDaemonDriver sends
``GET /power/control/<cmd>?hostname=&port=[&delay=]``. PDUDaemon serves only one of the
two at a time; here one port serves both, told apart by the first bytes (an HTTP request
line starts with a method and a ``/``, which no TCP line can: PDU names have no ``/``).

Each request becomes a :class:`~pdumqtt.commands.Command` checked as a ``/set`` would be
(the PDU and port must be configured, the delay in range) and goes through the PDU's own
queue; its ack is published on MQTT as for any command, and answers the client through
``Command.on_ack``. The answer comes once the command has run, as with PDUDaemon.
Request data is only ever looked up in the config: it never reaches a shell.

The server is asyncio streams on a thread of its own, so it never waits on paho's
network thread or a PDU's worker. It defends itself, as PDUDaemon does not: at most
``max_connections`` connections are open at once (the rest wait in the kernel's backlog, so
the listener can never take the process's last descriptors from the MQTT side), each must
send its whole request within ``request_timeout``, faults are logged one line per kind per
minute, and with ``auth_file`` each request needs a client's token or password and may
switch only that client's PDUs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import voluptuous as vol

from pdumqtt.commands import BadCommand, Command, check_delay, quote, request
from pdumqtt.config import Config, ListenerClient
from pdumqtt.drivers import split_host
from pdumqtt.runner import answer_within

log = logging.getLogger(__name__)

DEFAULT_PORT = 16421
MAX_REQUEST = 16 * 1024  # PDUDaemon reads at most 16 KiB too
TCP_REST_TIMEOUT = 0.5  # how long a line cut short may take to come whole
FAULT_LOG_INTERVAL = 60.0  # seconds: one log line per kind of fault in each
ACCEPT_BACKOFF = 0.5  # seconds to wait after accept() failed (out of descriptors, say)
# PDUDaemon's command words and ours
ACTIONS = {"on": "on", "off": "off", "reboot": "cycle"}
HTTP_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT")
OK_BODY = "OK - accepted request"  # PDUDaemon's own words for a 200
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


class ListenerError(Exception):
    """The listener could not start (the address is taken, or not ours)."""


@dataclass
class Outcome:
    """How a request ended: an HTTP status (200 only when the command succeeded) and why."""

    status: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.status == 200


def _short(value: Any) -> str:
    return quote(value)


class FaultLog:
    """Logs the first fault of each kind in an interval, and how many more there were with
    the next line of that kind: a flood of bad requests costs a few log lines, not thousands."""

    def __init__(self, logger: logging.Logger, interval: float = FAULT_LOG_INTERVAL) -> None:
        self.logger = logger
        self.interval = interval
        self._kinds: dict[str, tuple[float, int]] = {}  # kind: (when last logged, suppressed since)
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}  # every fault, logged or not, for tests and figures

    def report(self, kind: str, message: str, *args: Any, level: int = logging.WARNING,
               exc_info: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            last, suppressed = self._kinds.get(kind, (None, 0))
            if last is not None and now - last < self.interval:
                self._kinds[kind] = (last, suppressed + 1)
                return
            self._kinds[kind] = (now, 0)
        if suppressed:
            message += f" ({suppressed} more like it in the last {now - last:.0f} s)"  # type: ignore[operator]
        self.logger.log(level, message, *args, exc_info=exc_info)


def _is_http(data: bytes) -> bool:
    method, _, rest = data.partition(b" ")
    return method in HTTP_METHODS and rest.startswith(b"/")


def _may_become_http(data: bytes) -> bool:
    """Too short to tell yet: a prefix of some ``METHOD /``."""
    return len(data) < 9 and any((m + b" /").startswith(data) for m in HTTP_METHODS)


class PduDaemonListener:
    """Serves PDUDaemon's HTTP and TCP protocols on ``config.pdudaemon['listen']``."""

    def __init__(self, config: Config, submit: Callable[[Command], None], listen: str | None = None) -> None:
        self.config = config
        self.submit = submit
        listen = listen or (config.pdudaemon or {}).get("listen", f"127.0.0.1:{DEFAULT_PORT}")
        try:
            self.host, self.port = split_host(listen, DEFAULT_PORT)
        except vol.Invalid as e:
            raise ListenerError(f"pdudaemon.listen: {e.msg}") from None
        settings = config.pdudaemon or {}
        self.request_timeout: float = settings.get("request_timeout", 10.0)
        self.max_connections: int = settings.get("max_connections", 64)
        self.clients: dict[str, ListenerClient] | None = settings.get("clients")  # None: no authentication
        self.faults = FaultLog(log)
        self.address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sockets: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[Any]] = []
        self._slots: asyncio.Semaphore | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # --- life cycle (called from the daemon's thread) ----------------------------------

    def start(self) -> None:
        """Bind and serve; ListenerError when the address cannot be bound."""
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(ready, errors), name="pdudaemon-listener",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread.join()
            raise ListenerError(f"cannot listen on {self.host}:{self.port} for PDUDaemon clients: {errors[0]}")
        log.info("PDUDaemon-compatible listener (HTTP and TCP) on %s:%s", *self.address)  # type: ignore[misc]

    def close(self) -> None:
        """Stop accepting connections; requests under way still get their answer."""
        if self._loop is not None and not self._loop.is_closed():
            with suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop_accepting)

    def _stop_accepting(self) -> None:
        for task in self._acceptors:
            task.cancel()
        for sock in self._sockets:
            sock.close()

    def stop(self, grace: float = 2.0) -> None:
        """Close, give requests under way ``grace`` seconds to be answered, then end the thread."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(grace), self._loop)
        try:
            future.result(grace + 5)
        except Exception:  # the thread is a daemon: never hang the daemon's stop on it
            log.debug("listener shutdown", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._loop_fault)
        try:
            self._sockets = _listening_sockets(self.host, self.port)
        except OSError as e:
            errors.append(e)
            loop.close()
            ready.set()
            return
        self.address = self._sockets[0].getsockname()[:2]
        # a connection takes a descriptor: keep half of them for the broker, the drivers, the logs
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY and self.max_connections > soft // 2:
            log.warning("pdudaemon.max_connections %d lowered to %d: the process may open %d files",
                        self.max_connections, max(1, soft // 2), soft)
            self.max_connections = max(1, soft // 2)
        self._slots = asyncio.Semaphore(self.max_connections)
        self._acceptors = [loop.create_task(self._accept(sock)) for sock in self._sockets]
        ready.set()
        try:
            loop.run_forever()
        finally:
            for sock in self._sockets:
                sock.close()
            loop.close()

    def _loop_fault(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        self.faults.report("asyncio", "pdudaemon listener: %s%s", context.get("message", "fault"),
                           f" ({type(error).__name__}: {error})" if error else "")

    async def _accept(self, sock: socket.socket) -> None:
        """Accept while fewer than max_connections are open; beyond, clients wait in the backlog."""
        loop = asyncio.get_running_loop()
        assert self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as e:  # out of descriptors (EMFILE, ENFILE), a connection reset early
                self._slots.release()
                self.faults.report("accept", "pdudaemon listener cannot accept a connection: %s", e.strerror or e)
                await asyncio.sleep(ACCEPT_BACKOFF)  # a pause before trying again, not a wait for an event
                continue
            except BaseException:
                self._slots.release()
                raise
            task = loop.create_task(self._connection(conn))
            self._handlers.add(task)

    async def _connection(self, conn: socket.socket) -> None:
        assert self._slots is not None
        try:
            try:
                reader, writer = await asyncio.open_connection(sock=conn)
            except OSError:
                conn.close()
                return
            await self._handle(reader, writer)
        finally:
            self._slots.release()
            self._handlers.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _shutdown(self, grace: float) -> None:
        self._stop_accepting()
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)

    # --- one connection -----------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer = peer[0] if isinstance(peer, tuple) else "?"
        http = False
        try:
            try:
                async with asyncio.timeout(self.request_timeout):
                    data = await self._read_request(reader)
            except TimeoutError:
                self.faults.report("slow", "pdudaemon listener: closed a connection from %s that sent no whole "
                                   "request within %g s", peer, self.request_timeout, level=logging.INFO)
                return
            if not data:
                return
            if http := _is_http(data):
                await self._http(data, writer, peer)
            else:
                await self._tcp(data, writer, peer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the daemon stops: say so if the client still listens
            with suppress(OSError, RuntimeError, TimeoutError):
                writer.write(_http_response(Outcome(503, "not run: the daemon is stopping")) if http else b"nack\n")
        except Exception as e:  # a bug: one traceback per interval, and the listener goes on
            self.faults.report("internal", "pdudaemon listener: request from %s failed: %s: %s", peer,
                               type(e).__name__, quote(e), level=logging.ERROR, exc_info=True)
        finally:
            with suppress(OSError, RuntimeError, TimeoutError):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _read_request(self, reader: asyncio.StreamReader) -> bytes:
        """The request's bytes: an HTTP head, or a TCP line (PDUDaemon's pduclient sends it
        without a newline, in one write: one read is the request unless plainly cut short)."""
        data = await reader.read(MAX_REQUEST)
        while data and _may_become_http(data) and (more := await reader.read(MAX_REQUEST)):
            data += more
        if _is_http(data):
            while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < MAX_REQUEST:
                more = await reader.read(MAX_REQUEST - len(data))
                if not more:
                    break
                data += more
            return data
        while data and b"\n" not in data and len(data.split()) < 3 and len(data) < MAX_REQUEST:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the request deadline's
            # cancellation when a byte arrives at the same moment, and a trickling client is never cut
            try:
                async with asyncio.timeout(TCP_REST_TIMEOUT):
                    more = await reader.read(MAX_REQUEST - len(data))
            except TimeoutError:
                break
            if not more:
                break
            data += more
        return data

    async def _answer(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), self.request_timeout)  # a client that never reads

    async def _tcp(self, data: bytes, writer: asyncio.StreamWriter, peer: str) -> None:
        line = data.split(b"\n", 1)[0]
        try:
            words = line.decode("utf-8").split()
        except UnicodeDecodeError:
            words = []
        token = words.pop(0)[len("token="):] if words and words[0].startswith("token=") else None
        shown = " ".join(words) if token is None else "token=... " + " ".join(words)
        if not 3 <= len(words) <= 4:
            outcome = Outcome(400, "expected '[token=TOKEN] <pdu> <port> <on|off|reboot> [<delay>]'")
        else:
            client = self._client(token=token)
            outcome = self._authorise(client, words[0], None) or await self.perform(
                words[2], pdu=words[0], port=words[1], delay=words[3] if len(words) == 4 else None)
        self._log(f"pdudaemon tcp from {peer}: {_short(shown)}", outcome,
                  "ack" if outcome.ok else f"nack ({outcome.reason})")
        await self._answer(writer, b"ack\n" if outcome.ok else b"nack\n")

    async def _http(self, data: bytes, writer: asyncio.StreamWriter, peer: str) -> None:
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        request_line, *header_lines = head.split(b"\n")
        request_line = request_line.rstrip(b"\r")
        headers = {}
        for raw in header_lines:
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        outcome = await self._http_outcome(request_line, headers)
        extra = ""
        if outcome.status == 405:
            extra = "Allow: GET\r\n"
        elif outcome.status == 401:
            extra = 'WWW-Authenticate: Basic realm="pdumqtt", charset="UTF-8"\r\n'
        self._log(f"pdudaemon http from {peer}: {_short(request_line.decode('latin-1'))}", outcome,
                  f"{outcome.status} {outcome.reason}")
        await self._answer(writer, _http_response(outcome, extra))

    def _log(self, what: str, outcome: Outcome, answer: str) -> None:
        """A request that reached a PDU is logged; a refused one is a fault, logged once per interval."""
        if outcome.status in (400, 401, 403, 404, 405):
            kind = "unauthorised" if outcome.status in (401, 403) else "refused"
            self.faults.report(kind, "%s -> %s", what, answer, level=logging.INFO)
        else:
            log.info("%s -> %s", what, answer)

    async def _http_outcome(self, request_line: bytes, headers: dict[str, str]) -> Outcome:
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return Outcome(400, "malformed HTTP request line")
        if parts[0] != b"GET":
            return Outcome(405, "only GET /power/control/{on,off,reboot} is served")
        try:
            target = urlsplit(parts[1].decode("ascii"))
            query = parse_qs(target.query, errors="strict", max_num_fields=16)
        except (UnicodeDecodeError, ValueError):
            return Outcome(400, "the request target is not valid URL text")
        levels = target.path.split("/")
        if len(levels) != 4 or levels[:3] != ["", "power", "control"] or levels[3] not in ACTIONS:
            return Outcome(404, "not found: the API is GET /power/control/{on,off,reboot}"
                                "?hostname=PDU&port=PORT[&delay=S] or ?alias=ALIAS")
        first = {key: values[0] for key, values in query.items()}
        if "alias" in first and ("hostname" in first or "port" in first):
            return Outcome(400, "give either alias, or hostname and port, not both")
        if "alias" not in first and ("hostname" not in first or "port" not in first):
            return Outcome(400, "missing hostname or port (or give alias)")
        client = self._client(authorization=headers.get("authorization"))
        refused = self._authorise(client, first.get("hostname", ""), first.get("alias"))
        if refused:
            return refused
        return await self.perform(levels[3], pdu=first.get("hostname", ""), port=first.get("port", ""),
                                  alias=first.get("alias"), delay=first.get("delay"))

    # --- authentication -------------------------------------------------------------

    def _client(self, *, token: str | None = None, authorization: str | None = None) -> ListenerClient | None:
        """The client whose credentials came with the request, or None."""
        return client_for(self.clients, token=token, authorization=authorization)

    def _authorise(self, client: ListenerClient | None, pdu: str, alias: str | None) -> Outcome | None:
        """None when the request may go on; else why not (401 no or wrong credentials, 403 not its PDU)."""
        if self.clients is None:
            return None
        if client is None:
            return Outcome(401, "authentication required: HTTP basic auth or 'Authorization: Bearer TOKEN', "
                                "or 'token=TOKEN' before a TCP line (pdudaemon.auth_file)")
        if alias is not None:
            target = self.config.aliases.get(alias)
            pdu = target.pdu if target is not None else ""
        if not client.may_switch(pdu):
            what = f"alias {quote(alias)}" if alias is not None else f"PDU {quote(pdu)}"
            return Outcome(403, f"client {client.name!r} may not switch {what}")
        return None

    # --- one request ------------------------------------------------------------------

    async def perform(self, word: str, *, pdu: str = "", port: str = "", alias: str | None = None,
                      delay: str | None = None) -> Outcome:
        """Run PDUDaemon command ``word`` (on, off, reboot) and wait for its ack."""
        action = ACTIONS.get(word)
        if action is None:
            return Outcome(404, f"unknown command {quote(word)}: expected on, off or reboot")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()

        def on_ack(payload: bytes) -> None:  # on a PDU's worker thread
            try:
                loop.call_soon_threadsafe(lambda: answer.done() or answer.set_result(payload))
            except RuntimeError:  # the listener has already stopped: nobody waits any more
                pass

        seconds: float | None = None
        try:
            if delay is not None:
                seconds = _delay(delay)
            command = request(self.config, action, pdu=pdu, port=port, alias=alias,
                              delay=seconds if action == "cycle" else None, on_ack=on_ack)
            if seconds is not None:
                seconds = check_delay(seconds, command)
        except BadCommand as e:
            return Outcome(404 if str(e).startswith("unknown ") else 400, str(e))
        except ValueError as e:
            return Outcome(400, str(e))
        if action != "cycle" and seconds:
            # PDUDaemon waits this long before switching; so do we, outside the PDU's queue
            await asyncio.sleep(seconds)
            command.received = time.monotonic()
            command.deadline = command.received + self.config.mqtt["max_command_age"]
        self.submit(command)
        try:
            payload = await asyncio.wait_for(asyncio.shield(answer), answer_within(self.config, command))
        except TimeoutError:
            return Outcome(504, "no answer from the PDU's queue in time (the command may still run)")
        ack = json.loads(payload)
        if ack["status"] == "ok":
            return Outcome(200, f"{ack['action']} ok, now {ack['state']}")
        error = ack.get("error") or "failed"
        if error.startswith(("not run:", "expired:")):
            return Outcome(503, error)
        return Outcome(502, error)


def client_for(clients: dict[str, ListenerClient] | None, *, token: str | None = None,
               authorization: str | None = None) -> ListenerClient | None:
    """The client of ``pdudaemon.auth_file`` whose credentials came with a request, or None.

    ``authorization`` is an HTTP Authorization header (Bearer token, or basic with the client's
    name and password); ``token`` a bare token (a TCP line's ``token=``). Shared with the status page.
    """
    if not clients:
        return None
    name = secret = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            secret = value.strip()
        elif scheme.lower() == "basic":
            try:
                name, _, secret = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
    elif token is not None:
        secret = token
    if not secret:
        return None
    found = None
    for client in clients.values():  # compare with every one, in constant time each
        if name is not None and client.name != name:
            continue
        for known in (client.token, client.password if name is not None else None):
            if known and hmac.compare_digest(known.encode(), secret.encode()):
                found = client
    return found


def _http_response(outcome: Outcome, extra_headers: str = "") -> bytes:
    body = ((OK_BODY if outcome.ok else outcome.reason) + "\n").encode()
    head = (f"HTTP/1.1 {outcome.status} {REASONS.get(outcome.status, 'Error')}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            f"{extra_headers}Connection: close\r\n\r\n")
    return head.encode() + body


def _delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"delay must be a number of seconds, not {quote(text)}") from None
    return value



def _listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` has (as asyncio's
    start_server would make), so that accepting can be paused while the listener is full."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            sock.listen(128)
            sock.setblocking(False)
            if port == 0:  # every address on the same port as the first
                port = sock.getsockname()[1]
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
