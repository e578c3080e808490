"""The README's devices table matches the installed drivers, and every driver fills it in."""

from __future__ import annotations

from support import ROOT

from pdumqtt import registry
from pdumqtt.devices_table import markdown, replace_in, rows


def test_readme_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    assert replace_in(readme) == readme, "the README's devices table is stale: run scripts/devices-table"


def test_every_entry_point_is_in_the_table() -> None:
    listed = set()
    for row in rows():
        listed.add(row.driver)
        listed.update(row.pdudaemon_names)
    assert listed == set(registry.names())


def test_every_native_driver_says_what_it_speaks_and_how_it_is_tested() -> None:
    missing = [row.driver for row in rows() if not (row.model and row.protocol and row.tested_against)]
    assert not missing, f"set model, protocol and tested_against on: {', '.join(missing)}"


def test_pdudaemon_names_sit_in_their_native_row() -> None:
    table = markdown()
    apc = next(line for line in table.splitlines() if line.startswith("| `apc_telnet` "))
    assert "`apc7952`" in apc and "`apc8959`" in apc
