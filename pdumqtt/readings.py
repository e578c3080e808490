"""Power and energy readings: which ones are worth publishing, and how they look on MQTT.

A reading goes out on ``{base}/<pdu>/<port>/<kind>`` (an outlet) or ``{base}/<pdu>/<kind>``
(the PDU's totals), retained, as a plain number in the kind's unit (READING_UNITS). The
:class:`Deadband` keeps the last value published of each and lets a new one through only
when it moved by more than the PDU's ``meter_deadband``; a change to or from zero always
goes out, so a board that stops drawing shows at once.
"""

from __future__ import annotations

import threading

from pdumqtt.config import Config
from pdumqtt.drivers import READING_UNITS

KINDS = tuple(READING_UNITS)


def payload(value: float) -> bytes:
    """A reading as its topic carries it: a plain number, at most three decimals."""
    rounded = round(value, 3)
    return (str(int(rounded)) if rounded == int(rounded) else repr(rounded)).encode()


class Deadband:
    """The last value published per (PDU, port or None, kind), and the filter against it."""

    def __init__(self, config: Config) -> None:
        self.bands = {name: pdu.meter_deadband for name, pdu in config.pdus.items()}
        self.published: dict[tuple[str, str | None, str], float] = {}
        self._lock = threading.Lock()

    def admit(self, pdu: str, port: str | None, values: dict[str, float]) -> dict[str, float]:
        """The values that moved beyond the deadband (recorded as published)."""
        band = self.bands.get(pdu, {})
        out = {}
        with self._lock:
            for kind, raw in values.items():
                if kind not in READING_UNITS:
                    continue
                value = round(raw, 3)  # as published: a change below the last decimal is none
                key = (pdu, port, kind)
                old = self.published.get(key)
                if old is None or _beyond(old, value, band.get(kind, 0.0), band.get("percent", 0.0)):
                    self.published[key] = value
                    out[kind] = value
        return out


    def forget(self, pdu: str, ports: set[str] | None = None) -> list[tuple[str | None, str]]:
        """Drop what was published for PDU ``pdu`` (only for ``ports``, when given): its (port, kind)s."""
        with self._lock:
            keys = [k for k in self.published if k[0] == pdu and (ports is None or k[1] in ports)]
            for key in keys:
                del self.published[key]
        return [(port, kind) for _, port, kind in keys]


def _beyond(old: float, new: float, absolute: float, percent: float) -> bool:
    change = abs(new - old)
    if change == 0:
        return False
    if old == 0 or new == 0:
        return True
    return change > absolute and change > abs(old) * percent / 100
