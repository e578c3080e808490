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
