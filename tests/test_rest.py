"""The URL-template drivers (``rest``, ``simple_rest``) against their simulators, and their template checks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import voluptuous as vol

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.rest import Rest, SimpleRest
from pdumqtt.simulators.rest import RestSimulator, SimpleRestSimulator


def make(cls: type[Rest], timeout: float = 2.0, **options: Any) -> Rest:
    return cls(vol.Schema(cls.options)(options), pdu="relays", timeout=timeout)


def test_rest_puts_and_gets() -> None:
    with RestSimulator({"password": "pw"}) as sim:
        d = make(Rest, url=f"http://{sim.address}/outlet/{{index}}", username="admin", password="pw")
        d.set(3, True)
        assert sim.outlets[3] is True
        assert (sim.requests[0].method, sim.requests[0].path, sim.requests[0].body) == ("PUT", "/outlet/3", b"1")
        assert d.get(3) is True and d.get(0) is False
        d.set(3, False)
        assert d.get(3) is False


def test_simple_rest_gets_with_a_value_and_without() -> None:
    with SimpleRestSimulator({}) as sim:
        d = make(SimpleRest, url=f"http://{sim.address}/relay/{{index}}/{{value}}")
        d.set(2, True)
        assert sim.outlets[2] is True and sim.requests[-1].path == "/relay/2/1"
        assert d.get(2) is True and sim.requests[-1].path == "/relay/2"  # the trailing / cut
        d.set(2, False)
        assert d.get(2) is False


def test_credentials_in_the_url_become_http_auth_and_stay_out_of_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with RestSimulator({"password": "s3cr3t"}) as sim:
        d = make(Rest, url=f"http://admin:s3cr3t@{sim.address}/outlet/{{index}}")
        d.set(1, True)
        assert sim.outlets[1] is True and sim.requests[-1].headers["authorization"].startswith("Basic ")
        sim.set_failure("error")
        with pytest.raises(DriverError, match="HTTP 500") as err:
            d.get(1)
        assert "s3cr3t" not in str(err.value) and sim.address in str(err.value)
        wrong = make(Rest, url=f"http://admin:guess@{sim.address}/outlet/{{index}}")
        sim.set_failure(None)
        with pytest.raises(DriverError, match="check username and password") as err:
            wrong.get(1)
        assert "guess" not in str(err.value)
    assert not [r for r in caplog.records if "s3cr3t" in r.getMessage()]


@pytest.mark.parametrize("url, message", [
    ("http://h/relay", None),
    ("http://h/relay/{index:02d}", None),
    ("http://h/relay/{{literal}}/{index}", None),
    ("http://h/{index}/{other}", "unknown placeholder {other}"),
    ("http://h/{}", "unknown placeholder {}"),
    ("http://h/{index.__class__}", "unknown placeholder"),
    ("http://h/{index[0]}", "unknown placeholder"),
    ("http://h/{index!r}", "no conversion"),
    ("http://h/{index:>{value}}", "no conversion or format"),
    ("http://h/{value}", "unknown placeholder {value}"),
    ("http://{index}.lab/x", "not in the scheme or host"),
    ("http://h:{index}/x", "not in the scheme or host"),
    ("ftp://h/{index}", "http:// or https://"),
    ("/relay/{index}", "http:// or https://"),
    ("http://h:99999/{index}", "bad port"),
    ("http://h/{index", "write a literal brace"),
])
def test_rest_templates_are_checked_when_the_config_loads(url: str, message: str | None) -> None:
    schema = vol.Schema(Rest.options)
    if message is None:
        assert schema({"url": url})["url"] == url
        return
    with pytest.raises(vol.Invalid, match=message.replace("{", r"\{").replace("(", r"\(")):
        schema({"url": url})


def test_simple_rest_templates_need_a_value() -> None:
    schema = vol.Schema(SimpleRest.options)
    assert schema({"url": "http://h/r/{index}/{value}"})
    with pytest.raises(vol.Invalid, match=r"\{value\} is missing"):
        schema({"url": "http://h/r/{index}"})
    with pytest.raises(vol.Invalid) as err:
        schema({"url": "http://u:topsecret@h/r/{bad}/{value}"})
    assert "topsecret" not in str(err.value)


@pytest.mark.parametrize("failure, message", [
    ("error", "HTTP 500"), ("unauthorized", "HTTP 401"), ("hang", "no answer within 0.5 s"),
    ("garbage", "unexpected answer '<html><body>relay server"),
])
def test_faults_then_back(failure: str, message: str) -> None:
    with RestSimulator({}) as sim:
        d = make(Rest, timeout=0.5, url=f"http://{sim.address}/outlet/{{index}}")
        sim.set_failure(failure)
        with pytest.raises(DriverError, match=message):
            d.get(1)
        sim.set_failure(None)
        d.set(1, True)
        assert d.get(1) is True


def test_index_offset_for_devices_that_count_from_0() -> None:
    with SimpleRestSimulator({}) as sim:
        d = make(SimpleRest, url=f"http://{sim.address}/relay/{{index}}/{{value}}", index_offset=-1)
        d.set(1, True)
        assert sim.outlets[0] is True and sim.requests[-1].path == "/relay/0/1" and d.get(1) is True
    with pytest.raises(DriverError, match="ports start at 1"):
        make(Rest, url="http://h/{index}", index_offset=-1).get(0)


def test_read_false_for_devices_that_cannot_report() -> None:
    d = make(SimpleRest, url="http://h/r/{index}/{value}", read=False)
    assert d.can_read is False and SimpleRest.can_read is True
