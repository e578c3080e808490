"""Switching an outlet later, for simulators of devices with their own reboot or flip-back timer.

A simulator mixes in :class:`LaterMixin` before its ``HttpSimulator`` base and calls
``self.later(seconds, outlet, on)``; pending switches are cancelled when it stops.
"""

from __future__ import annotations

import threading


class LaterMixin:
    lock: threading.Lock
    outlets: dict[int, bool]

    def later(self, seconds: float, outlet: int, on: bool) -> None:
        """Switch ``outlet`` to ``on`` after ``seconds``, under the simulator's lock."""
        timers: list[threading.Timer] = self.__dict__.setdefault("_later_timers", [])

        def switch() -> None:
            with self.lock:
                self.outlets[outlet] = on

        timer = threading.Timer(seconds, switch)
        timer.daemon = True
        timers.append(timer)
        timer.start()

    def stop(self) -> None:
        for timer in self.__dict__.get("_later_timers", []):
            timer.cancel()
        super().stop()  # type: ignore[misc]

