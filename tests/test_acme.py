"""ACME driver against the asyncssh ACME simulator: commands, host keys, logins, failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.acme import Acme
from pdumqtt.simulators.acme import AcmeSimulator


@pytest.fixture
def acme() -> Iterator[AcmeSimulator]:
    with AcmeSimulator({"password": "letmein"}) as sim:
        yield sim


def known_hosts(tmp_path: Path, *sims: AcmeSimulator) -> str:
    path = tmp_path / "known_hosts"
    path.write_text("".join(s.known_hosts_line() for s in sims))
    return str(path)


def make(sim: AcmeSimulator, timeout: float = 5.0, **options: Any) -> Acme:
    config = vol.Schema(Acme.options)({"host": sim.address, **options})
    return Acme(config, pdu="acme", timeout=timeout)


def test_on_off_cycle(acme: AcmeSimulator, tmp_path: Path) -> None:
    d = make(acme, password="letmein", known_hosts=known_hosts(tmp_path, acme))
    try:
        d.set(3, True)
        assert acme.probes[2] is True
        d.set(3, False)
        assert acme.probes[2] is False
        assert d.cycle(3, 1) is True
        assert acme.probes[2] is True
        assert acme.log == ["dut-switch-on 3", "dut-switch-off 3", "dut-hard-reset 3"]
        assert acme.logins == 1  # one connection kept for all three
        with pytest.raises(DriverError, match="cannot read"):
            d.get(3)
    finally:
        d.close()


def test_unknown_host_key_refused(acme: AcmeSimulator, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text(f"[127.0.0.1]:1 {asyncssh.generate_private_key('ssh-ed25519').export_public_key().decode()}")
    for path in (str(other), str(tmp_path / "missing")):
        d = make(acme, password="letmein", known_hosts=path)
        try:
            with pytest.raises(DriverError, match=r"host key|does not exist"):
                d.set(1, True)
        finally:
            d.close()
    assert acme.log == [] and acme.logins == 0


def test_accept_unknown_host_key(acme: AcmeSimulator, tmp_path: Path) -> None:
    d = make(acme, password="letmein", known_hosts=str(tmp_path / "missing"), accept_unknown_host_key=True)
    try:
        d.set(1, True)
        assert acme.probes[0] is True
    finally:
        d.close()


def test_changed_host_key_refused_even_when_accepting_unknown(acme: AcmeSimulator, tmp_path: Path) -> None:
    with AcmeSimulator({}) as impostor:
        path = tmp_path / "kh"
        # The impostor's address, listed with the real ACME's key.
        path.write_text(acme.known_hosts_line().replace(acme.address.split(":")[1], impostor.address.split(":")[1]))
        d = make(impostor, password="x", known_hosts=str(path), accept_unknown_host_key=True)
        try:
            with pytest.raises(DriverError, match="host key"):
                d.set(1, True)
        finally:
            d.close()


def test_bad_password(acme: AcmeSimulator, tmp_path: Path) -> None:
    d = make(acme, password="wrong-secret", known_hosts=known_hosts(tmp_path, acme))
    try:
        with pytest.raises(DriverError, match="refused the login") as err:
            d.set(1, True)
        assert "wrong-secret" not in str(err.value)
    finally:
        d.close()


def test_key_login(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "id").write_bytes(key.export_private_key())
    (tmp_path / "id.pub").write_bytes(key.export_public_key())
    with AcmeSimulator({"authorized_keys": str(tmp_path / "id.pub")}) as sim:
        d = make(sim, key_file=str(tmp_path / "id"), known_hosts=known_hosts(tmp_path, sim))
        try:
            d.set(2, True)
            assert sim.probes[1] is True
        finally:
            d.close()


def test_probe_out_of_range(acme: AcmeSimulator, tmp_path: Path) -> None:
    d = make(acme, password="letmein", known_hosts=known_hosts(tmp_path, acme))
    with pytest.raises(DriverError, match="has 8"):
        d.set(9, True)


@pytest.mark.parametrize("failure, message", [
    ("silent", "no answer"),
    ("garbage", r"status 1: .*Segmentation"),
    ("drop", r"closed the connection|lost the connection"),
])
def test_failure_modes(acme: AcmeSimulator, tmp_path: Path, failure: str, message: str) -> None:
    d = make(acme, timeout=1.0, password="letmein", known_hosts=known_hosts(tmp_path, acme))
    try:
        d.set(1, True)
        acme.failure = failure
        with pytest.raises(DriverError, match=message):
            d.set(1, False)
        acme.failure = None
        d.set(1, False)
        assert acme.probes[0] is False
    finally:
        d.close()


def test_device_gone_and_back(tmp_path: Path) -> None:
    key = tmp_path / "hostkey"
    key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    sim = AcmeSimulator({"password": "p", "host_key": str(key)})
    sim.start()
    port = sim.address.split(":")[1]
    kh = known_hosts(tmp_path, sim)
    d = make(sim, timeout=2.0, password="p", known_hosts=kh)
    try:
        d.set(1, True)
        sim.stop()
        with pytest.raises(DriverError):
            d.set(1, False)
        with AcmeSimulator({"password": "p", "host_key": str(key), "listen": f"127.0.0.1:{port}"}) as again:
            d.set(1, False)
            assert again.log == ["dut-switch-off 1"]
    finally:
        d.close()
