"""The one parser of the daemon's published topics that `pdumqtt status` and `pdumqtt watch` share."""

from __future__ import annotations

import pytest

from pdumqtt.topics import Published, parse
from pdumqtt.watch import Fleet


@pytest.mark.parametrize(("topic", "expected"), [
    ("pdu/bridge/state", Published("bridge_state")),
    ("pdu/bridge/info", Published("bridge_info")),
    ("pdu/lab/availability", Published("availability", "lab")),
    ("pdu/lab/dut1/state", Published("state", "lab", "dut1")),
    ("pdu/lab/3/ack", Published("ack", "lab", "3")),
    ("pdu/lab/3/power", Published("reading", "lab", "3", "power")),
    ("pdu/lab/energy", Published("reading", "lab", None, "energy")),
    ("pdu/lab/3/set", None),  # a command, not an output
    ("pdu/lab/3/get", None),
    ("pdu/alias/dut/state", None),  # alias/... are commands
    ("pdu/bridge/availability", None),
    ("pdu/bridge/x/state", None),
    ("pdu/lab/3/state/extra", None),
    ("pdu/lab/state", None),
    ("pdu/lab//state", None),
    ("other/lab/3/state", None),
    ("pdux/lab/3/state", None),
])
def test_parse(topic: str, expected: Published | None) -> None:
    assert parse("pdu", topic) == expected


def test_a_base_with_levels() -> None:
    assert parse("site/a/pdu", "site/a/pdu/lab/1/state") == Published("state", "lab", "1")
    assert parse("site/a/pdu", "site/a/lab/1/state") is None


def test_watch_takes_only_what_the_parser_knows() -> None:
    fleet = Fleet("pdu", only_pdu="lab")
    assert fleet.apply("pdu/lab/1/state", b"ON") == {"event": "state", "pdu": "lab", "port": "1", "state": "ON"}
    assert fleet.apply("pdu/other/1/state", b"ON") is None
    assert fleet.apply("pdu/lab/1/power", b"40") is None  # watch shows no readings
    assert fleet.apply("pdu/lab/1/ack", b"[1]") is None
    assert fleet.apply("pdu/bridge/state", b"online") == {"event": "bridge", "state": "online"}
    assert fleet.apply("pdu/lab/availability", b"offline")["availability"] == "offline"
