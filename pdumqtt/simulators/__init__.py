"""Device simulators: real protocol servers on loopback, for tests and users' own labs.

A simulator is a class registered under the ``pdumqtt.simulators`` entry-point group.
It takes its options (a dict, validated by its ``options`` voluptuous schema), starts
serving in ``start()`` without blocking (its own thread or event loop), tells where it
listens through ``address`` (``"127.0.0.1:port"`` or a device path), and stops in
``stop()``. ``pdumqtt sim -c sims.yaml`` starts several from a small config.
"""

from __future__ import annotations

from typing import Any, ClassVar


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
