"""A base for simulators that serve from an asyncio event loop on their own thread.

It owns the thread, the loop and the ``listen`` option (``"127.0.0.1:0"`` picks a free
port), and the failure switch shared by the relay simulators: ``failure`` is ``None``
(behave), ``"silent"`` (read requests, never answer), ``"garbage"`` (answer with bytes
the protocol does not allow) or ``"drop"`` (close the connection on the first request).
Tests flip ``failure`` while the simulator runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.simulators import Simulator

FAILURES = (None, "silent", "garbage", "drop")


def loopback_listen(value: Any) -> str:
    """Schema type: a ``127.0.0.1:port`` to listen on (port 0 picks a free one)."""
    if not isinstance(value, str):
        raise vol.Invalid("expected host:port")
    host, _port = parse_listen(value)
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise vol.Invalid("simulators listen on loopback only")
    return value


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` where port 0 (pick a free one) is allowed."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise vol.Invalid(f"expected host:port, got {value!r}")
    return host, int(port)


async def _cancel_others() -> None:
    """Cancel the connection tasks still running, so the loop closes cleanly."""
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me]
    for t in rest:
        t.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


class LoopSimulator(Simulator):
    """Runs ``serve()`` on a private event loop thread; ``serve`` returns the bound port."""

    default_port: ClassVar[int] = 0
    common_options: ClassVar[dict[Any, Any]] = {
        vol.Optional("listen", default="127.0.0.1:0"): loopback_listen,
        vol.Optional("failure", default=None): vol.In(FAILURES),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # `pdumqtt sim` validates with `options` alone: it must hold the common keys too.
        super().__init_subclass__(**kwargs)
        cls.options = {**LoopSimulator.common_options, **cls.options}

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(vol.Schema(self.options)(options))
        self.failure: str | None = self.config["failure"]
        self.host, self.port = parse_listen(self.config["listen"])
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bound = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self._bound}"

    async def serve(self) -> int:
        """Start listening on ``self.host``/``self.port``; return the bound port."""
        raise NotImplementedError

    async def shutdown(self) -> None:
        """Stop serving; called on the loop before it stops."""

    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()

        def run() -> None:
            assert self.loop is not None
            asyncio.set_event_loop(self.loop)
            try:
                ready.set_result(self.loop.run_until_complete(self.serve()))
            except BaseException as exc:  # handed to start()'s caller
                ready.set_exception(exc)
                return
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"sim-{type(self).__name__}", daemon=True)
        self._thread.start()
        self._bound = ready.result(10)

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        """Run ``coro`` on the simulator's loop from another thread and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is None or self._thread is None:
            return
        try:
            self.call(self.shutdown())
            self.call(_cancel_others())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
            self.loop = None


class StreamSimulator(LoopSimulator):
    """A TCP device: ``handle`` gets each accepted connection's reader and writer."""

    async def serve(self) -> int:
        self._writers: set[asyncio.StreamWriter] = set()
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        return self._server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def shutdown(self) -> None:
        self._server.close()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()

    async def misbehave(self, writer: asyncio.StreamWriter, garbage: bytes) -> bool:
        """Apply the failure mode to one request; True when the request must not be answered."""
        if self.failure == "silent":
            return True
        if self.failure == "drop":
            writer.close()
            raise ConnectionResetError
        if self.failure == "garbage":
            writer.write(garbage)
            await writer.drain()
            return True
        return False
