"""The daemon's HTTP port: Prometheus metrics, the status page's events and buttons, over real sockets."""

from __future__ import annotations

import http.client
import json
import re

import pytest
from support import free_port, wait_until

from pdumqtt.drivers import sim


def _get(address: tuple[str, int], path: str, timeout: float = 5) -> tuple[int, str]:
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _post(address: tuple[str, int], path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(*address, timeout=30)
    try:
        conn.request("POST", path, headers={"X-Pdumqtt": "1"} if headers is None else headers)
        response = conn.getresponse()
        body = response.read()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(body) if is_json else {"text": body.decode()}
    finally:
        conn.close()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of metric ``name`` with exactly these labels in a Prometheus text exposition."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match[2] or ""))
            if found == labels:
                return float(match[3])
    return None


@pytest.fixture
def monitored(daemon, unique):
    def start(status_page: bool = False, **pdus):
        d = daemon({"http": {"listen": f"127.0.0.1:{free_port()}", "status_page": status_page},
                    "pdus": {f"{unique}-{k}": v for k, v in pdus.items()}})
        return d, d.monitor.address
    return start


def test_metrics_count_commands_driver_calls_retries_timeouts_and_availability(monitored, probe, unique):
    _, address = monitored(
        good={"driver": "sim", "ports": 2},
        flaky={"driver": "sim", "ports": 1, "fail_first": 1, "retry_delay": 0.01},
        slow={"driver": "sim", "ports": 1, "hang_ports": [1], "timeout": 0.2, "retries": 0})
    good, flaky, slow = f"{unique}-good", f"{unique}-flaky", f"{unique}-slow"
    assert probe.request(f"pdu/{good}/1/set", "ON")["status"] == "ok"
    assert probe.request(f"pdu/{good}/1/set", "OFF")["status"] == "ok"
    assert probe.request(f"pdu/{flaky}/1/set", "ON")["status"] == "ok"  # the second try works
    assert probe.request(f"pdu/{slow}/1/set", "ON")["status"] == "error"
    sim.device(slow).release.set()
    status, text = _get(address, "/metrics")
    assert status == 200
    assert _sample(text, "pdumqtt_commands_total", pdu=good, action="on", result="ok") == 1
    assert _sample(text, "pdumqtt_commands_total", pdu=good, action="off", result="ok") == 1
    assert _sample(text, "pdumqtt_commands_total", pdu=slow, action="on", result="error") == 1
    assert _sample(text, "pdumqtt_driver_retries_total", pdu=flaky) == 1
    # the start-up probe's read and the command's switch
    assert _sample(text, "pdumqtt_driver_timeouts_total", pdu=slow) == 2
    assert _sample(text, "pdumqtt_driver_call_seconds_count", pdu=good, method="set", outcome="ok") == 2
    assert _sample(text, "pdumqtt_pdu_online", pdu=good) == 1
    assert _sample(text, "pdumqtt_pdu_online", pdu=slow) == 0
    assert _sample(text, "pdumqtt_queue_depth", pdu=good) == 0
    assert _sample(text, "pdumqtt_broker_connected") == 1
    assert _sample(text, "pdumqtt_broker_connections_total") == 1
    assert (_sample(text, "process_resident_memory_bytes") or 0) > 0
    assert _get(address, "/")[0] == 404, "the status page is off unless asked for"


class _Events:
    """A reader of the status page's server-sent events."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.conn = http.client.HTTPConnection(*address, timeout=10)
        self.conn.request("GET", "/events")
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type") == "text/event-stream"

    def next(self) -> tuple[str, dict]:
        kind, data = "", ""
        while True:
            line = self.response.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and kind:
                return kind, json.loads(data)

    def until(self, predicate) -> tuple[str, dict]:
        while True:
            event = self.next()
            if predicate(*event):
                return event

    def close(self) -> None:
        self.conn.close()


def test_status_page_events_and_buttons_go_through_the_queue(monitored, unique):
    _, address = monitored(status_page=True, lab={"driver": "sim", "ports": ["dut1", "dut2"]})
    lab = f"{unique}-lab"
    status, page = _get(address, "/")
    assert status == 200 and "EventSource" in page
    events = _Events(address)
    try:
        kind, snapshot = events.next()
        assert kind == "snapshot" and set(snapshot[lab]["ports"]) == {"dut1", "dut2"}
        status, ack = _post(address, f"/api/outlet/{lab}/dut2/on")
        assert status == 200 and ack["status"] == "ok" and ack["state"] == "ON"
        assert sim.device(lab).outlets[2] is True
        events.until(lambda kind, d: kind == "state" and d == {"pdu": lab, "port": "dut2", "state": "ON"})
        events.until(lambda kind, d: kind == "ack" and d["port"] == "dut2" and d["ack"]["status"] == "ok")
    finally:
        events.close()
    assert _post(address, f"/api/outlet/{lab}/dut3/on")[0] == 404
    assert _post(address, f"/api/outlet/{lab}/dut1/explode")[0] == 404
    status, refused = _post(address, f"/api/outlet/{lab}/dut1/on", headers={})
    assert status == 403 and "X-Pdumqtt" in refused["error"], "a cross-site form cannot switch"
    assert 1 not in sim.device(lab).outlets


def test_a_taken_http_port_stops_the_daemon_with_the_key(tmp_path, unique):
    import socket

    from support import run_cli, write_config
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        path = write_config(tmp_path, {"mqtt": {"host": "127.0.0.1", "port": free_port()},
                                       "http": {"listen": f"127.0.0.1:{holder.getsockname()[1]}"},
                                       "pdus": {unique: {"driver": "sim", "ports": 1}}})
        done = run_cli("daemon", "-c", str(path), timeout=30)
    finally:
        holder.close()
    assert done.returncode == 1 and "http.listen" in done.stderr


def test_status_page_in_a_real_browser(monitored, probe, unique):
    """Debian's chromium, driven headless by playwright: a click switches a simulated outlet."""
    import shutil

    from playwright import sync_api as playwright  # the test extra

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not shutil.which(chromium):
        pytest.fail("chromium is not installed: apt-get install chromium (scripts/setup does it)")
    _, address = monitored(status_page=True, lab={"driver": "sim", "ports": ["dut1", "dut2"], "meter_interval": 0.2,
                                                  "loads": {1: 40}})
    lab = f"{unique}-lab"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(f"http://{address[0]}:{address[1]}/")
            page.wait_for_selector("#conn[data-live]", timeout=10_000)
            row = page.locator(f'tr[data-pdu="{lab}"][data-port="dut1"]')
            row.locator('button[data-action="on"]').click()
            row.locator("td.state.ON").wait_for(timeout=10_000)
            assert "on ok" in row.locator("td.ack").inner_text(timeout=10_000)
            assert sim.device(lab).outlets[1] is True
            # the meter's readings, the outlet's in its row and the PDU's over the table
            wait_until(lambda: "40 W" in row.locator("td.readings").inner_text(), 10, "the outlet's 40 W")
            meter = row.locator("td.readings").inner_text()
            assert "230 V" in meter and " A · " in meter and "kWh" in meter
            totals = page.locator(f'section[data-pdu="{lab}"] .totals')
            wait_until(lambda: totals.count() == 1 and "40 W" in totals.inner_text(), 10, "the PDU's 40 W")
            # a switch over MQTT shows up live too
            row2 = page.locator(f'tr[data-pdu="{lab}"][data-port="dut2"]')
            assert probe.request(f"pdu/{lab}/dut2/set", "ON")["status"] == "ok"
            row2.locator("td.state.ON").wait_for(timeout=10_000)
            wait_until(lambda: page.locator(f'section[data-pdu="{lab}"] .availability.online').count() == 1, 10,
                       "the page to show the PDU online")
        finally:
            browser.close()


def test_status_page_takes_the_listeners_logins_and_allow_lists(daemon, tmp_path, unique):
    import base64

    auth = tmp_path / "clients.yaml"
    auth.write_text(f"ci: {{password: s3cret-pass, pdus: [{unique}-a]}}\n")
    d = daemon({"http": {"listen": f"127.0.0.1:{free_port()}", "status_page": True},
                "pdudaemon": {"listen": f"127.0.0.1:{free_port()}", "auth_file": str(auth)},
                "pdus": {f"{unique}-a": {"driver": "sim", "ports": 1}, f"{unique}-b": {"driver": "sim", "ports": 1}}})
    address = d.monitor.address
    login = "Basic " + base64.b64encode(b"ci:s3cret-pass").decode()
    assert _get(address, "/")[0] == 401
    assert _post(address, f"/api/outlet/{unique}-a/1/on")[0] == 401
    wrong = "Basic " + base64.b64encode(b"ci:wrong-pass").decode()
    assert _post(address, f"/api/outlet/{unique}-a/1/on", {"X-Pdumqtt": "1", "Authorization": wrong})[0] == 401
    conn = http.client.HTTPConnection(*address, timeout=5)
    conn.request("GET", "/", headers={"Authorization": login})
    assert conn.getresponse().status == 200
    conn.close()
    status, refused = _post(address, f"/api/outlet/{unique}-b/1/on", {"X-Pdumqtt": "1", "Authorization": login})
    assert status == 403 and "may not switch" in refused["error"]
    assert 1 not in sim.device(f"{unique}-b").outlets
    status, ack = _post(address, f"/api/outlet/{unique}-a/1/on", {"X-Pdumqtt": "1", "Authorization": login})
    assert status == 200 and ack["status"] == "ok" and sim.device(f"{unique}-a").outlets[1] is True
    assert _get(address, "/metrics")[0] == 200, "metrics stay open to the scraper"


def test_a_flood_of_connections_is_capped_and_the_page_still_answers(monitored):
    import socket

    from pdumqtt.monitor import MAX_CONNECTIONS
    _, address = monitored(status_page=True, lab={"driver": "sim", "ports": 1})
    held = [socket.create_connection(address, timeout=5) for _ in range(MAX_CONNECTIONS + 20)]
    try:
        # the extra ones were closed by the server: reading them ends at once
        closed = 0
        for s in held[MAX_CONNECTIONS:]:
            s.settimeout(5)
            closed += s.recv(1) == b""
        assert closed == 20
    finally:
        for s in held:
            s.close()
    wait_until(lambda: _get(address, "/metrics")[0] == 200, 10, "the server to answer again")


def test_readings_are_gauges_and_status_events(monitored, probe, unique):
    _, address = monitored(status_page=True, lab={"driver": "sim", "ports": ["dut1", "dut2"], "meter_interval": 0.1,
                                                  "loads": {1: 40}})
    lab = f"{unique}-lab"
    events = _Events(address)
    try:
        assert probe.request(f"pdu/{lab}/dut1/set", "ON")["status"] == "ok"
        events.until(lambda kind, d: kind == "readings" and d["port"] == "dut1" and d["readings"]["power"] == 40)
        events.until(lambda kind, d: kind == "readings" and d["port"] is None and d["readings"]["power"] == 40)
    finally:
        events.close()

    def metrics() -> str:
        return _get(address, "/metrics")[1]

    def power() -> float | None:
        return _sample(metrics(), "pdumqtt_pdu_power_watts", pdu=lab)
    wait_until(lambda: power() == 40, 10, "the PDU's 40 W in the metrics")
    text = metrics()
    assert _sample(text, "pdumqtt_outlet_power_watts", pdu=lab, port="dut1") == 40
    assert _sample(text, "pdumqtt_outlet_power_watts", pdu=lab, port="dut2") == 0
    assert _sample(text, "pdumqtt_outlet_voltage_volts", pdu=lab, port="dut1") == 230
    assert _sample(text, "pdumqtt_outlet_current_amperes", pdu=lab, port="dut1") == pytest.approx(40 / 230)
    energy = _sample(text, "pdumqtt_outlet_energy_kwh", pdu=lab, port="dut1")
    assert energy is not None and energy >= 0
    assert _sample(text, "pdumqtt_pdu_voltage_volts", pdu=lab) == 230
    assert "# TYPE pdumqtt_outlet_power_watts gauge" in text
    # the page's snapshot carries the last readings too
    events = _Events(address)
    try:
        kind, snapshot = events.next()
        assert kind == "snapshot" and snapshot[lab]["ports"]["dut1"]["readings"]["voltage"] == 230
        assert snapshot[lab]["readings"]["power"] == 40
    finally:
        events.close()


def test_a_reload_takes_the_readings_of_what_it_removed_off_the_metrics(daemon, unique, tmp_path):
    from support import write_config

    keep, gone = f"{unique}-keep", f"{unique}-gone"
    metered = {"driver": "sim", "ports": ["a", "b"], "meter_interval": 0.1, "initial": "on"}
    config = {"mqtt": {"client_id": unique}, "http": {"listen": f"127.0.0.1:{free_port()}"},
              "pdus": {keep: metered, gone: metered}}
    d = daemon(config)

    def sample(name, **labels):
        return _sample(_get(d.monitor.address, "/metrics")[1], name, **labels)
    for pdu in (keep, gone):
        wait_until(lambda pdu=pdu: sample("pdumqtt_outlet_power_watts", pdu=pdu, port="b") == 25, 10, "readings")
        wait_until(lambda pdu=pdu: sample("pdumqtt_pdu_power_watts", pdu=pdu) is not None, 10, "totals")
    config["pdus"] = {keep: {**metered, "ports": ["a"]}}
    assert d.reload(write_config(tmp_path, config, "reloaded.yaml")).ok
    wait_until(lambda: sample("pdumqtt_pdu_power_watts", pdu=gone) is None, 10, "the removed PDU's totals to go")
    assert sample("pdumqtt_outlet_voltage_volts", pdu=gone, port="a") is None
    wait_until(lambda: sample("pdumqtt_outlet_power_watts", pdu=keep, port="b") is None, 10, "the lost port's to go")
    assert sample("pdumqtt_outlet_power_watts", pdu=keep, port="a") == 25
    assert sample("pdumqtt_pdu_power_watts", pdu=keep) is not None
