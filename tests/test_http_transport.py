"""The shared HTTP transport and simulator base, over real loopback HTTP(S).

A small device defined here (one JSON route and one text route) stands for every HTTP
driver: auth (basic, digest), TLS with verify and a CA file, one kept-alive session
dropped after failures, each failure mode of the simulator base, errors that name host,
request and reason, and credentials that never reach an error, a log line or a URL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import pytest
import voluptuous as vol
from support import free_port

from pdumqtt.drivers import DriverError
from pdumqtt.drivers.http_transport import HTTP_OPTIONS, HttpDriver, mask, redact_url
from pdumqtt.simulators._http import HttpSimulator, Request, Response, http_listen

SECRET = "pa55-w0rd!"


class RelaySim(HttpSimulator):
    outlet_numbers = range(1, 5)

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/relay"): self.relay, ("POST", "/relay"): self.relay, ("GET", "/text"): lambda r: "ok"}

    def relay(self, request: Request) -> dict[str, Any]:
        n = int(request.query.get("n") or request.json()["n"])
        if request.method == "POST":
            self.outlets[n] = bool(request.json()["on"])
        return {"n": n, "on": self.outlets[n]}


class RelayDriver(HttpDriver):
    options: ClassVar[dict[Any, Any]] = HTTP_OPTIONS
    can_read = True

    def set(self, port: int, on: bool) -> None:
        reply = self.request_json("POST", "/relay", json={"n": port, "on": on})
        self.expect(reply.get("on") is on, "POST /relay", reply)

    def get(self, port: int) -> bool:
        return self.request_json("GET", "/relay", params={"n": port})["on"]


class LoginSim(RelaySim):
    """A device with a login form that sets a session cookie, as the mFi or Energenie do."""

    def routes(self) -> dict[tuple[str, str], Any]:
        return {**super().routes(), ("POST", "/login.cgi"): self.login}

    def login(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode()))
        if form != {"username": "lab", "password": SECRET}:
            return Response(403, "<html>login failed</html>")
        return Response(200, "<html>ok</html>", headers={"Set-Cookie": "AIROS_SESSIONID=abc123; Path=/"})

    def respond(self, request: Request) -> Response | None:
        if request.path != "/login.cgi" and "AIROS_SESSIONID=abc123" not in request.headers.get("cookie", ""):
            self.requests.append(request)
            return Response(302, "", headers={"Location": "/login.cgi"})
        return super().respond(request)


class LoginDriver(RelayDriver):
    logins = 0

    def session_opened(self) -> None:
        self.logins += 1
        self.request("POST", "/login.cgi", data={"username": "lab", "password": SECRET}, auth=False)


def test_session_opened_logs_in_again_after_a_failure() -> None:
    with LoginSim({}) as sim:
        d = LoginDriver(vol.Schema(HTTP_OPTIONS)({"host": sim.address}), timeout=1)
        d.set(1, True)
        assert d.get(1) is True and d.logins == 1  # the cookie is kept between calls
        sim.set_failure("error")
        with pytest.raises(DriverError, match="HTTP 500"):
            d.get(1)
        sim.set_failure(None)
        assert d.get(1) is True and d.logins == 2


def make(sim: HttpSimulator, timeout: float = 2.0, **options: Any) -> RelayDriver:
    return RelayDriver(vol.Schema(RelayDriver.options)({"host": sim.address, **options}), pdu="r", timeout=timeout)


@pytest.fixture
def sim() -> Iterator[RelaySim]:
    with RelaySim({}) as s:
        yield s


def test_switch_read_and_one_kept_session(sim: RelaySim) -> None:
    d = make(sim)
    d.set(3, True)
    assert d.get(3) is True and d.get(2) is False
    d.set(3, False)
    assert sim.outlets[3] is False
    assert sim.connections == 1  # keep-alive: one TCP connection for all four requests
    assert [r.method for r in sim.requests] == ["POST", "GET", "GET", "POST"]
    assert sim.requests[0].json() == {"n": 3, "on": True}
    d.close()
    d.get(1)
    assert sim.connections == 2  # close() dropped it; the next call reconnects


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_auth_accepted_and_refused(auth: str) -> None:
    with RelaySim({"auth": auth, "username": "lab", "password": SECRET}) as sim:
        d = make(sim, username="lab", password=SECRET, auth=auth)
        d.set(1, True)
        assert d.get(1) is True
        header = sim.requests[-1].headers["authorization"]
        assert header.startswith("Basic " if auth == "basic" else "Digest ")
        for wrong in ({"password": "nope", "auth": auth}, {}):
            with pytest.raises(DriverError, match=r"refused the credentials \(HTTP 401\)") as err:
                make(sim, **wrong).get(1)
            assert sim.address in str(err.value)


def test_tls_verified_with_the_ca_file_refused_without_it_or_skipped_by_choice() -> None:
    with RelaySim({"tls": True}) as sim:
        assert sim.ca_file and sim.url.startswith("https://")
        make(sim, https=True, ca_file=sim.ca_file).set(2, True)
        with pytest.raises(DriverError, match="certificate not trusted"):
            make(sim, https=True).get(2)
        assert make(sim, https=True, verify=False).get(2) is True
        with pytest.raises(DriverError, match="without an HTTP answer: does it want https"):  # plain HTTP
            make(sim, timeout=1).get(2)


def test_ca_file_must_exist() -> None:
    with pytest.raises(vol.Invalid, match="ca_file"):
        vol.Schema(HTTP_OPTIONS)({"host": "192.0.2.1", "ca_file": "/nonexistent.pem"})


def test_https_default_port_is_443() -> None:
    d = RelayDriver(vol.Schema(HTTP_OPTIONS)({"host": "192.0.2.1", "https": True}))
    assert d.base_url == "https://192.0.2.1:443"
    assert RelayDriver(vol.Schema(HTTP_OPTIONS)({"host": "[::1]:8080"})).base_url == "http://[::1]:8080"


@pytest.mark.parametrize("failure, message", [
    ("error", r"POST /relay: answered HTTP 500 \(Internal Server Error\)"),
    ("unauthorized", r"refused the credentials \(HTTP 401\): set username and password"),
    ("hang", r"POST /relay: no answer within 0.5 s"),
    ("garbage", r"POST /relay: answered with a body that is not JSON: '<html><body>It works!"),
])
def test_failure_modes_and_recovery(sim: RelaySim, failure: str, message: str) -> None:
    d = make(sim, timeout=0.5)
    d.get(1)
    sim.set_failure(failure)
    with pytest.raises(DriverError, match=message) as err:
        d.set(1, True)
    assert str(err.value).startswith(sim.address)
    before = sim.connections
    sim.set_failure(None)
    d.set(1, True)
    assert sim.outlets[1] is True
    assert sim.connections == before + 1  # the failed session was dropped


def test_unreachable_and_wrong_route(sim: RelaySim) -> None:
    gone = RelayDriver(vol.Schema(HTTP_OPTIONS)({"host": f"127.0.0.1:{free_port()}"}), timeout=1)
    with pytest.raises(DriverError, match=r"127.0.0.1:\d+: GET /relay: cannot connect \(connection refused\)"):
        gone.get(1)
    d = make(sim)
    with pytest.raises(DriverError, match="GET /nowhere: answered HTTP 404"):
        d.request("GET", "/nowhere")
    with pytest.raises(DriverError, match="DELETE /relay: answered HTTP 405"):
        d.request("DELETE", "/relay")
    assert d.request("GET", "/text").text == "ok"


def test_no_credential_in_errors_or_log_lines(sim: RelaySim, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    d = make(sim, timeout=0.5)
    d.add_secret(SECRET)
    sim.set_failure("garbage")
    sim.garbage_body = f"denied for password={SECRET}"  # a device that echoes the query back
    errors = []
    for target in (f"/relay?n=1&password={SECRET}", f"http://admin:{SECRET}@{sim.address}/relay?n=1"):
        with pytest.raises(DriverError) as err:
            d.request_json("GET", target)
        errors.append(str(err.value))
    sim.set_failure("error")
    with pytest.raises(DriverError) as err:
        d.request("GET", "/relay", params={"n": 1, "password": SECRET})
    errors.append(str(err.value))
    assert all(SECRET not in e for e in errors), errors
    assert "***" in errors[0]
    logged = [r.getMessage() for r in caplog.records]
    assert any("GET /relay?***" in line for line in logged), logged
    assert not [line for line in logged if SECRET in line]


def test_redact_and_mask() -> None:
    assert redact_url(f"http://admin:{SECRET}@10.0.0.1:8080/netio.json?a=b") == "http://10.0.0.1:8080/netio.json"
    assert mask(f"GET http://u:{SECRET}@h/x token {SECRET}", {SECRET}) == "GET http://h/x token ***"


def test_listen_is_loopback_only() -> None:
    assert http_listen("127.0.0.9:80") == "127.0.0.9:80"
    assert http_listen("[::1]:0") == "[::1]:0"
    for bad in ("0.0.0.0:80", "192.0.2.1:80", "localhost", 5):
        with pytest.raises(vol.Invalid):
            http_listen(bad)


def test_ipv6_loopback() -> None:
    with RelaySim({"listen": "[::1]:0"}) as sim:
        assert sim.address.startswith("[::1]:")
        make(sim).set(4, True)
        assert sim.outlets[4] is True


def test_every_http_simulator_starts_from_pdumqtt_sim_options() -> None:
    """Each HTTP device simulator registered for `pdumqtt sim` starts from its own defaults and answers."""
    import requests

    from pdumqtt import registry

    kinds = {name: ep for name, ep in registry.names(registry.SIMULATOR_GROUP).items()
             if ep.value.startswith("pdumqtt.simulators.") and issubclass(ep.load(), HttpSimulator)}
    assert len(kinds) >= 12, sorted(kinds)
    for name, ep in kinds.items():
        cls = ep.load()
        with cls(vol.Schema(cls.options)({})) as sim:
            reply = requests.get(f"{sim.url}/no-such-page", verify=sim.ca_file or True, timeout=5)
            assert reply.status_code in (401, 404, 405), (name, reply.status_code, reply.text)
            assert not sim.errors, (name, sim.errors)
