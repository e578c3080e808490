"""Finds drivers and simulators by name through their entry-point groups."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

DRIVER_GROUP = "pdumqtt.drivers"
SIMULATOR_GROUP = "pdumqtt.simulators"


@cache
def names(group: str = DRIVER_GROUP) -> dict[str, Any]:
    """Entry points of ``group`` by name, not yet imported."""
    return {ep.name: ep for ep in entry_points(group=group)}


@cache
def load(name: str, group: str = DRIVER_GROUP) -> Any:
    """The class registered as ``name``; KeyError when there is none."""
    return names(group)[name].load()
