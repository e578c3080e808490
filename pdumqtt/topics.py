"""The topics the daemon publishes, read back: one parser for the clients that watch them.

``pdumqtt status`` (pdumqtt/client.py) and ``pdumqtt watch`` (pdumqtt/watch.py) both take
the daemon's output topics apart with :func:`parse`, so that they agree on what each means:

- ``{base}/bridge/state`` and ``{base}/bridge/info``: the bridge's;
- ``{base}/bridge/daemons/<client id>`` and ``{base}/<pdu>/owner``: a fleet's (pdumqtt/fleet.py),
  each daemon's liveness record and each PDU's claim;
- ``{base}/<pdu>/availability``;
- ``{base}/<pdu>/<port>/state`` and ``{base}/<pdu>/<port>/ack``;
- ``{base}/<pdu>/<port>/<quantity>`` and ``{base}/<pdu>/<quantity>``: a meter reading
  (quantities from ``READING_UNITS``), of an outlet or of the PDU's totals.

``bridge`` and ``alias`` never name a PDU (config.RESERVED_PDU_NAMES): ``alias/...`` topics
are commands, and whatever else is under the base (commands, replies) parses as None.
"""

from __future__ import annotations

from dataclasses import dataclass

from pdumqtt.config import RESERVED_PDU_NAMES
from pdumqtt.drivers import READING_UNITS

BRIDGE_STATE, BRIDGE_INFO, AVAILABILITY, STATE, ACK, READING, DAEMON, OWNER = (
    "bridge_state", "bridge_info", "availability", "state", "ack", "reading", "daemon", "owner")


@dataclass(frozen=True)
class Published:
    """One published topic: what it carries, and for which PDU, port and meter quantity."""

    kind: str  # one of BRIDGE_STATE, BRIDGE_INFO, AVAILABILITY, STATE, ACK, READING, DAEMON, OWNER
    pdu: str | None = None
    port: str | None = None  # None on a PDU's own topics (availability, totals)
    quantity: str | None = None  # a READING's: power, current, voltage or energy
    daemon: str | None = None  # a DAEMON's client id


def parse(base: str, topic: str) -> Published | None:
    """What ``topic`` is among the daemon's outputs under ``base``; None for anything else."""
    if not topic.startswith(base + "/"):
        return None
    levels = topic[len(base) + 1:].split("/")
    if levels == ["bridge", "state"]:
        return Published(BRIDGE_STATE)
    if levels == ["bridge", "info"]:
        return Published(BRIDGE_INFO)
    if len(levels) == 3 and levels[:2] == ["bridge", "daemons"] and levels[2]:
        return Published(DAEMON, daemon=levels[2])
    if levels[0] in RESERVED_PDU_NAMES or not levels[0] or len(levels) not in (2, 3) or not all(levels):
        return None
    pdu, leaf = levels[0], levels[-1]
    port = levels[1] if len(levels) == 3 else None
    if leaf in READING_UNITS:
        return Published(READING, pdu, port, leaf)
    if port is None and leaf == "availability":
        return Published(AVAILABILITY, pdu)
    if port is None and leaf == OWNER:
        return Published(OWNER, pdu)
    if port is not None and leaf in (STATE, ACK):
        return Published(leaf, pdu, port)
    return None
