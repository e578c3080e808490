"""The USB MOCK (tests/usb_mock.py) keeps to the real libraries' API, where they are installed."""

from __future__ import annotations

import inspect

import pytest
from usb_mock import MockBus, MockYkush


def test_mock_hid_matches_hidapi() -> None:
    hid = pytest.importorskip("hid")
    if not hasattr(hid, "device"):
        pytest.skip("the 'hid' module here is not hidapi's")
    bus = MockBus()
    handle = bus.hid.device()
    for method in ("open", "open_path", "write", "read", "close", "error"):
        assert callable(getattr(hid.device, method)) and callable(getattr(handle, method)), method
    # the keys hidapi documents for each enumerated device
    lines = (hid.enumerate.__doc__ or "").splitlines()
    documented = {line.strip(" -'") for line in lines if line.strip().startswith("- '")}
    assert documented and documented == set(MockYkush("YK1").info())


def test_mock_usb_matches_pyusb() -> None:
    core = pytest.importorskip("usb.core")
    util = pytest.importorskip("usb.util")
    bus = MockBus()
    assert list(inspect.signature(core.find).parameters) == list(inspect.signature(bus.usb_core.find).parameters)
    real_error, mock_error = core.USBError("Access denied", -3, 13), bus.usb_core.USBError("Access denied", -3, 13)
    assert (real_error.errno, real_error.strerror) == (mock_error.errno, mock_error.strerror) == (13, "Access denied")
    assert issubclass(core.NoBackendError, ValueError) and issubclass(bus.usb_core.NoBackendError, ValueError)
    for name in ("get_string", "dispose_resources"):
        assert callable(getattr(util, name)) and callable(getattr(bus.usb_util, name))
    real = list(inspect.signature(core.Device.ctrl_transfer).parameters)[1:]
    from usb_mock import MockUsbDevice

    assert real == list(inspect.signature(MockUsbDevice.ctrl_transfer).parameters)[1:]


def test_usb_libraries_are_imported_only_when_a_device_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pdumqtt import registry\n"
        "from pdumqtt.config import load_config_data\n"
        "names = ['yepkit_ykush', 'YKUSH3', 'cleware_switch', 'clewareusbswitch8', 'vusb_relay', 'vusbhid']\n"
        "pdus = {n.replace('-', '_'): {'driver': n, 'ports': 1, 'serial': 1234} for n in names}\n"
        "pdus.update(eg={'driver': 'EG-PM2', 'ports': 4, 'device': '01:02:03:04:05'},\n"
        "            en={'driver': 'energenie_usb', 'ports': 1})\n"
        "config = load_config_data({'pdus': pdus})\n"
        "for pdu in config.pdus.values():\n"
        "    pdu.driver_class(pdu.options, pdu=pdu.name)\n"
        "assert not {'hid', 'usb', 'usb.core'} & set(sys.modules), sorted(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
