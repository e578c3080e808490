"""The relay simulators as `pdumqtt sim` builds them: by entry-point name, options validated by the class."""

from __future__ import annotations

import socket

import pytest
import voluptuous as vol

from pdumqtt import registry

TCP = ["devantech_eth", "devantech_ds", "acme", "modbus_tcp"]
PTY = ["devantech_usb", "numato_usb", "lcus_usb"]


@pytest.mark.parametrize("kind", TCP)
def test_tcp_simulators_listen_where_asked(kind: str) -> None:
    cls = registry.load(kind, registry.SIMULATOR_GROUP)
    options = vol.Schema(cls.options)({"listen": "127.0.0.1:0", "failure": "silent"})
    sim = cls(options)
    sim.start()
    try:
        host, port = sim.address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        socket.create_connection((host, int(port)), timeout=2).close()
    finally:
        sim.stop()
    with pytest.raises(vol.Invalid):
        vol.Schema(cls.options)({"listen": "0.0.0.0:0"})


@pytest.mark.parametrize("kind", PTY)
def test_pty_simulators_make_their_link(kind: str, tmp_path) -> None:
    cls = registry.load(kind, registry.SIMULATOR_GROUP)
    link = tmp_path / "dev"
    sim = cls(vol.Schema(cls.options)({"link": str(link)}))
    sim.start()
    try:
        assert sim.address == str(link) and link.is_symlink()
    finally:
        sim.stop()
    assert not link.exists()
