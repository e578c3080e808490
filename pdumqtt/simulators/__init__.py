"""Device simulators: real protocol servers on loopback, for tests and users' own labs.

A simulator is a class registered under the ``pdumqtt.simulators`` entry-point group.
It takes its options (a dict, validated by its ``options`` voluptuous schema), starts
serving in ``start()`` without blocking (its own thread or event loop), tells where it
listens through ``address`` (``"127.0.0.1:port"`` or a device path), and stops in
``stop()``. ``pdumqtt sim -c sims.yaml`` starts several from a small config.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol


def loopback_port(listen: str) -> int:
    """The port of an IPv4 loopback ``listen`` option, ``127.0.0.1:PORT`` (0 picks a free port)."""
    host, _, port = listen.rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit() or int(port) > 65535:
        raise vol.Invalid("listen must be 127.0.0.1:PORT (0 picks a free port)")
    return int(port)


class Simulator:
    options: ClassVar[dict[Any, Any]] = {}

    def __init__(self, options: dict[str, Any]) -> None:
        self.config = options

    @property
    def address(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
