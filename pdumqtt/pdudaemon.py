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
network thread or a PDU's worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import voluptuous as vol

from pdumqtt.commands import BadCommand, Command, check_delay, request
from pdumqtt.config import Config
from pdumqtt.drivers import split_host
from pdumqtt.runner import answer_within

log = logging.getLogger(__name__)

DEFAULT_PORT = 16421
MAX_REQUEST = 16 * 1024  # PDUDaemon reads at most 16 KiB too
READ_TIMEOUT = 10.0
TCP_REST_TIMEOUT = 0.5  # how long a line cut short may take to come whole
# PDUDaemon's command words and ours
ACTIONS = {"on": "on", "off": "off", "reboot": "cycle"}
HTTP_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT")
OK_BODY = "OK - accepted request"  # PDUDaemon's own words for a 200
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


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
    return repr(value)[:80]


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
        self.address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None  # asyncio.Server
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
        if self._loop is not None and self._server is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._server.close)

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
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port, reuse_address=True))
        except OSError as e:
            errors.append(e)
            loop.close()
            ready.set()
            return
        self.address = self._server.sockets[0].getsockname()[:2]
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self, grace: float) -> None:
        if self._server is not None:
            self._server.close()
        if self._handlers:
            _, pending = await asyncio.wait(set(self._handlers), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)

    # --- one connection -----------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        peer = writer.get_extra_info("peername")
        peer = peer[0] if isinstance(peer, tuple) else "?"
        http = False
        try:
            data = await asyncio.wait_for(reader.read(MAX_REQUEST), READ_TIMEOUT)
            while _may_become_http(data) and (more := await asyncio.wait_for(reader.read(MAX_REQUEST), READ_TIMEOUT)):
                data += more
            if http := _is_http(data):
                await self._http(data, reader, writer, peer)
            else:
                await self._tcp(data, reader, writer, peer)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the daemon stops: say so if the client still listens
            with suppress(OSError, RuntimeError, TimeoutError):
                writer.write(_http_response(Outcome(503, "not run: the daemon is stopping")) if http else b"nack\n")
        finally:
            self._handlers.discard(task)
            with suppress(OSError, RuntimeError, TimeoutError):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _tcp(self, data: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        # PDUDaemon's pduclient sends the line without a newline and waits: one read is the
        # request, unless it is plainly cut short (fewer than three words and no newline)
        while b"\n" not in data and len(data.split()) < 3 and len(data) < MAX_REQUEST:
            try:
                more = await asyncio.wait_for(reader.read(MAX_REQUEST), TCP_REST_TIMEOUT)
            except TimeoutError:
                break
            if not more:
                break
            data += more
        line = data.split(b"\n", 1)[0]
        try:
            words = line.decode("utf-8").split()
        except UnicodeDecodeError:
            words = []
        if not 3 <= len(words) <= 4:
            outcome = Outcome(400, "expected '<pdu> <port> <on|off|reboot> [<delay>]'")
        else:
            outcome = await self.perform(words[2], pdu=words[0], port=words[1],
                                         delay=words[3] if len(words) == 4 else None)
        log.info("pdudaemon tcp from %s: %s -> %s", peer, _short(line.decode("utf-8", "replace")),
                 "ack" if outcome.ok else f"nack ({outcome.reason})")
        writer.write(b"ack\n" if outcome.ok else b"nack\n")
        await writer.drain()

    async def _http(self, data: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    peer: str) -> None:
        while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < MAX_REQUEST:
            more = await asyncio.wait_for(reader.read(MAX_REQUEST), READ_TIMEOUT)
            if not more:
                break
            data += more
        request_line = data.split(b"\n", 1)[0].rstrip(b"\r")
        outcome, extra = await self._http_outcome(request_line), ""
        if outcome.status == 405:
            extra = "Allow: GET\r\n"
        log.info("pdudaemon http from %s: %s -> %d %s", peer, _short(request_line.decode("latin-1")),
                 outcome.status, outcome.reason)
        writer.write(_http_response(outcome, extra))
        await writer.drain()

    async def _http_outcome(self, request_line: bytes) -> Outcome:
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return Outcome(400, "malformed HTTP request line")
        if parts[0] != b"GET":
            return Outcome(405, "only GET /power/control/{on,off,reboot} is served")
        try:
            target = urlsplit(parts[1].decode("ascii"))
            query = parse_qs(target.query, errors="strict")
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
        return await self.perform(levels[3], pdu=first.get("hostname", ""), port=first.get("port", ""),
                                  alias=first.get("alias"), delay=first.get("delay"))

    # --- one request ------------------------------------------------------------------

    async def perform(self, word: str, *, pdu: str = "", port: str = "", alias: str | None = None,
                      delay: str | None = None) -> Outcome:
        """Run PDUDaemon command ``word`` (on, off, reboot) and wait for its ack."""
        action = ACTIONS.get(word)
        if action is None:
            return Outcome(404, f"unknown command {word[:40]!r}: expected on, off or reboot")
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
        raise ValueError(f"delay must be a number of seconds, not {text[:40]!r}") from None
    return value

