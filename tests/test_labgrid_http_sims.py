"""labgrid's HTTP vendors: each simulator built as ``pdumqtt sim`` builds it, and its driver talks to it.

``pdumqtt sim`` validates a simulator's options with its schema before building it, so the
defaults there must be the device's (factory logins) and ``password`` alone must turn on the
device's auth. Each row: simulator kind, driver name, the options both get.
"""

from __future__ import annotations

from typing import Any

import pytest
import voluptuous as vol

from pdumqtt import registry

ROWS = [
    ("shelly_gen1", "shelly_gen1", {"password": "pw"}, {"password": "pw"}),
    ("rest", "rest", {"password": "pw"}, {"password": "pw", "url": "http://{address}/outlet/{{index}}"}),
    ("simple_rest", "simple_rest", {}, {"url": "http://{address}/relay/{{index}}/{{value}}"}),
    ("tinycontrol", "tinycontrol", {"password": "pw"}, {"password": "pw"}),
    ("tinycontrol_tcpdu", "tinycontrol_tcpdu", {"password": "pw"}, {"password": "pw"}),
    ("dli_http", "dli_http", {"password": "pw"}, {"password": "pw"}),
    ("dli_rest", "dli_rest", {"password": "pw"}, {"password": "pw"}),
    ("gude_epc", "gude_epc", {"password": "pw", "model": "8225"}, {"password": "pw", "read": "statusjsn.js"}),
    ("aten_pe", "aten_pe", {}, {}),  # ATEN's factory login on both sides
    ("netio_cgi", "netio_cgi", {}, {}),
    ("lindy_ipower", "digipower", {"username": "snmp", "password": "pw"}, {"password": "pw"}),
    ("energenie_lan", "energenie_lan", {}, {}),
    ("mfi_mpower", "mfi_mpower", {}, {}),
]


@pytest.mark.parametrize("kind, driver, sim_options, options", ROWS, ids=[r[1] for r in ROWS])
def test_simulator_as_pdumqtt_sim_builds_it(kind: str, driver: str, sim_options: dict[str, Any],
                                            options: dict[str, Any]) -> None:
    sim_class = registry.load(kind, registry.SIMULATOR_GROUP)
    with sim_class(vol.Schema(sim_class.options)(sim_options)) as sim:
        cls = registry.load(driver)
        given = {k: v.format(address=sim.address) if isinstance(v, str) else v for k, v in options.items()}
        if "url" not in given:
            given["host"] = sim.address
        d = cls(vol.Schema(cls.options)(given), pdu=driver, timeout=2)
        d.set(2, True)
        assert d.get(2) is True and d.get(1) is False
        if sim_options.get("password"):  # the password turned the device's auth on
            assert any("authorization" in r.headers for r in sim.requests)
        assert cls.model and cls.protocol and cls.tested_against and cls.can_read
