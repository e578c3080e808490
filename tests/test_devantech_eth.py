"""Devantech ETH driver against the ETH simulator over real loopback TCP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.devantech_eth import DevantechEth, DevantechETH008
from pdumqtt.simulators.devantech_eth import DevantechEthSimulator


def make(sim: DevantechEthSimulator, timeout: float = 2.0, **options: object) -> DevantechEth:
    config = vol.Schema(DevantechEth.options)({"host": sim.address, **options})
    return DevantechEth(config, pdu="eth", timeout=timeout)


@pytest.fixture
def sim() -> Iterator[DevantechEthSimulator]:
    with DevantechEthSimulator({"board": "eth008"}) as s:
        yield s


@pytest.fixture
def locked() -> Iterator[DevantechEthSimulator]:
    with DevantechEthSimulator({"board": "eth8020", "password": "s3cret"}) as s:
        yield s


def test_on_off_get(sim: DevantechEthSimulator) -> None:
    d = make(sim)
    d.set(3, True)
    assert sim.relays[2] is True
    assert d.get(3) is True
    assert d.get(2) is False
    d.set(3, False)
    assert sim.relays[2] is False
    assert d.get(3) is False
    assert sim.requests[0] == bytes([0x20, 3, 0])


def test_password_login_and_logout(locked: DevantechEthSimulator) -> None:
    d = make(locked, password="s3cret", board="eth8020")
    d.set(17, True)
    assert locked.relays[16] is True
    assert d.get(17) is True
    assert locked.logins == 2 and locked.logouts == 2


def test_bad_password(locked: DevantechEthSimulator) -> None:
    d = make(locked, password="wrong", board="eth8020")
    with pytest.raises(DriverError, match="refused the password") as err:
        d.set(1, True)
    assert "wrong" not in str(err.value)
    assert locked.relays[0] is False


def test_missing_password_says_so(locked: DevantechEthSimulator) -> None:
    with pytest.raises(DriverError, match="password protected"):
        make(locked, board="eth8020").set(1, True)


def test_nc_board_inverts() -> None:
    with DevantechEthSimulator({"board": "eth002", "logic": "NC"}) as sim:
        d = make(sim, board="eth002", logic="nc")
        assert d.get(1) is True  # relay idle: the NC contact is closed, the load has power
        d.set(1, False)
        assert sim.relays[0] is True and sim.outlet(1) is False
        assert d.get(1) is False
        d.set(1, True)
        assert sim.outlet(1) is True


def test_pulse_frame(sim: DevantechEthSimulator) -> None:
    make(sim, pulse=2.5).set(1, True)
    assert sim.requests[-1] == bytes([0x20, 1, 25])


def test_relay_out_of_range(sim: DevantechEthSimulator) -> None:
    with pytest.raises(DriverError, match="has 8"):
        make(sim).set(9, True)


@pytest.mark.parametrize("failure, message", [
    ("silent", "no answer"), ("garbage", "0x55"), ("drop", "closed the connection|failed during")])
def test_failure_modes(sim: DevantechEthSimulator, failure: str, message: str) -> None:
    d = make(sim, timeout=0.5)
    sim.failure = failure
    with pytest.raises(DriverError, match=message):
        d.set(1, True)
    if failure != "garbage":  # any byte is a valid ETH008 state: a wrong one cannot be told
        with pytest.raises(DriverError):
            d.get(1)
    sim.failure = None
    d.set(1, True)
    assert d.get(1) is True


def test_device_gone_and_back() -> None:
    sim = DevantechEthSimulator({})
    sim.start()
    port = sim.address.rsplit(":", 1)[1]
    d = make(sim)
    d.set(1, True)
    sim.stop()
    with pytest.raises(DriverError, match="cannot connect"):
        d.get(1)
    with DevantechEthSimulator({"listen": f"127.0.0.1:{port}"}) as again:
        d.set(2, True)
        assert again.relays[1] is True


def test_pdudaemon_names_take_ip_and_port(sim: DevantechEthSimulator) -> None:
    host, port = sim.address.rsplit(":", 1)
    config = vol.Schema(DevantechETH008.options)({"ip": host, "port": port, "logic": "NO"})
    d = DevantechETH008(config, pdu="x", timeout=2)
    d.set(8, True)
    assert sim.relays[7] is True
    with pytest.raises(vol.Invalid):
        vol.Schema(DevantechETH008.options)({"port": 1})


# Module ids from the vendor's manuals (0x10 GET MODULE INFO), written out here rather
# than taken from the driver's table, which the simulator shares.
MANUAL_MODULE_IDS = {"eth002": 18, "eth008": 19, "eth484": 20, "eth8020": 21, "eth0621": 23}


@pytest.mark.parametrize("board", sorted(MANUAL_MODULE_IDS))
def test_module_ids_are_the_manuals(board: str) -> None:
    with DevantechEthSimulator({"board": board}) as s:
        assert make(s, board=board).module_info()[0] == MANUAL_MODULE_IDS[board]


def test_a_wrong_board_setting_is_named() -> None:
    with DevantechEthSimulator({"board": "eth0621"}) as s:
        with pytest.raises(DriverError, match=r"refused to switch relay 5: the board reports ETH0621 "
                                              r"\(module id 23, 2 relays\), not the configured eth008"):
            make(s, board="eth008").set(5, True)
