"""The pdumqtt command as a user runs it: client commands, status, drivers, the daemon's lifecycle."""

from __future__ import annotations

import json
import signal

from support import free_port, run_cli, wait_until

from pdumqtt.drivers import sim


def broker_env(broker) -> dict[str, str]:
    return {"PDUMQTT_BROKER": broker.address}


def test_on_off_cycle_toggle_get_print_the_ack_and_exit_0(daemon, broker, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": 4}}})
    env = broker_env(broker)
    done = run_cli("on", unique, "2", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{unique}/2: on ok, now ON")
    assert sim.device(unique).outlets[2] is True
    assert run_cli("off", unique, "2", env=env).returncode == 0
    assert sim.device(unique).outlets[2] is False
    done = run_cli("toggle", unique, "2", "--json", env=env)
    assert json.loads(done.stdout)["state"] == "ON"
    done = run_cli("cycle", unique, "3", "--delay", "0.2", "--json", env=env)
    ack = json.loads(done.stdout)
    assert done.returncode == 0 and ack["action"] == "cycle" and ack["took_ms"] >= 200
    done = run_cli("get", unique, "2", env=env)
    assert done.returncode == 0 and "now ON" in done.stdout


def test_an_alias_alone_and_broker_given_as_an_option(daemon, broker, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": ["a", "b"]}}, "aliases": {f"{unique}-x": {"pdu": unique,
                                                                                                 "port": "b"}}})
    done = run_cli("on", f"{unique}-x", "--broker", broker.address)
    assert done.returncode == 0 and done.stdout.startswith(f"{unique}-x: on ok")
    assert sim.device(unique).outlets[2] is True


def test_an_error_ack_exits_1_and_says_why(daemon, broker, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": 4, "fail_ports": [4], "retries": 0}}})
    done = run_cli("on", unique, "4", env=broker_env(broker))
    assert done.returncode == 1
    assert "on failed: outlet 4 did not switch" in done.stderr
    done = run_cli("on", unique, "9", env=broker_env(broker))
    assert done.returncode == 1 and "unknown port '9'" in done.stderr


def test_no_answer_exits_3(broker, unique):
    done = run_cli("on", unique, "1", "--timeout", "0.5", "--base-topic", f"{unique}-nobody", env=broker_env(broker))
    assert done.returncode == 3 and "no answer within" in done.stderr
    done = run_cli("on", unique, "1", "--timeout", "1", "--broker", f"127.0.0.1:{free_port()}")
    assert done.returncode == 3 and "cannot reach the broker" in done.stderr


def test_usage_errors_exit_2(broker):
    assert run_cli("on").returncode == 2
    assert run_cli("cycle", "x", "1", "--delay", "-3").returncode == 2
    assert run_cli("on", "x", "1", "--broker", "host:notaport").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_no_wait_returns_at_once(daemon, probe, broker, unique):
    daemon({"pdus": {unique: {"driver": "sim", "ports": 4}}})
    probe.subscribe(f"pdu/{unique}/1/ack")
    done = run_cli("on", unique, "1", "--no-wait", env=broker_env(broker))
    assert done.returncode == 0 and "sent on" in done.stdout
    assert json.loads(probe.wait_for(f"pdu/{unique}/1/ack").payload)["status"] == "ok"


def test_status_shows_every_outlet_and_availability(daemon, probe, broker, unique):
    base = f"{unique}base"
    daemon({"mqtt": {"base_topic": base},
            "pdus": {"rack": {"driver": "sim", "ports": {"dut1": 1, "fan": 2}},
                     "dead": {"driver": "sim", "ports": 1, "unreachable": True, "retries": 0}}})
    assert probe.request(f"{base}/rack/fan/set", "ON")["status"] == "ok"
    probe.subscribe(f"{base}/dead/availability")
    probe.wait_for(f"{base}/dead/availability", lambda m: m.payload == b"offline")
    done = run_cli("status", "--base-topic", base, env=broker_env(broker))
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    assert rows[0][:2] == ["bridge:", "online"]
    assert ["rack", "fan", "ON", "online"] in rows and ["rack", "dut1", "OFF", "online"] in rows
    assert ["dead", "1", "?", "offline"] in rows
    one = run_cli("status", "rack", "--json", "--base-topic", base, env=broker_env(broker))
    outlets = json.loads(one.stdout)["outlets"]
    assert {o["pdu"] for o in outlets} == {"rack"} and len(outlets) == 2
    assert run_cli("status", "nope", "--base-topic", base, env=broker_env(broker)).returncode == 2
    assert run_cli("status", "--base-topic", f"{unique}-empty", env=broker_env(broker)).returncode == 1


def test_drivers_lists_each_driver_with_its_options():
    done = run_cli("drivers")
    assert done.returncode == 0
    assert "sim - simulated PDU" in done.stdout and "latency (default 0.0)" in done.stdout
    assert "localcmdline" in done.stdout and "cmd_on (required)" in done.stdout


def test_sigterm_publishes_offline_and_exits_0(daemon_process, probe, broker, unique):
    proc = daemon_process({"mqtt": {"base_topic": unique}, "pdus": {"p": {"driver": "sim", "ports": 2}}},
                          "--broker", broker.address)
    probe.subscribe(f"{unique}/bridge/state")
    probe.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"online", timeout=20)
    assert probe.request(f"{unique}/p/1/set", "ON")["status"] == "ok"
    proc.process.send_signal(signal.SIGTERM)
    assert proc.process.wait(15) == 0
    assert probe.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"offline").payload == b"offline"


def test_sigkill_leaves_the_last_will(daemon_process, probe, broker, unique):
    proc = daemon_process({"mqtt": {"base_topic": unique, "keepalive": 5},
                           "pdus": {"p": {"driver": "sim", "ports": 2}}}, "--broker", broker.address)
    probe.subscribe(f"{unique}/bridge/state")
    probe.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"online", timeout=20)
    proc.process.kill()
    proc.process.wait(10)
    will = probe.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"offline", timeout=15)
    assert will.payload == b"offline"


def test_environment_overrides_the_configured_broker(daemon_process, probe, broker, unique):
    # the config names a broker that is not there; PDUMQTT_BROKER wins
    proc = daemon_process({"mqtt": {"host": "127.0.0.1", "port": free_port(), "base_topic": unique},
                           "pdus": {"p": {"driver": "sim", "ports": 2}}}, env={"PDUMQTT_BROKER": broker.address})
    probe.subscribe(f"{unique}/bridge/state")
    probe.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"online", timeout=20)
    proc.stop()


def test_embedded_broker_starts_and_stops_with_the_daemon(daemon_process, unique):
    from support import Broker, Probe, accepts

    port = free_port()
    proc = daemon_process({"mqtt": {"port": port, "base_topic": unique}, "pdus": {"p": {"driver": "sim", "ports": 2}}})

    def daemon_listening() -> bool:
        assert proc.process.poll() is None, proc.process.stdout.read()
        return accepts(port)

    wait_until(daemon_listening, 20, "the embedded mosquitto")
    client = Probe(Broker("127.0.0.1", port, None))  # type: ignore[arg-type]
    try:
        client.subscribe(f"{unique}/bridge/state")
        client.wait_for(f"{unique}/bridge/state", lambda m: m.payload == b"online", timeout=20)
        assert client.request(f"{unique}/p/2/set", "ON", timeout=15)["status"] == "ok"
    finally:
        client.close()
    proc.process.send_signal(signal.SIGTERM)
    assert proc.process.wait(15) == 0
    wait_until(lambda: not accepts(port), 10, "the embedded mosquitto to stop")


def test_missing_mosquitto_says_how_to_install_it(tmp_path):
    from support import write_config

    path = write_config(tmp_path, {"mqtt": {"port": free_port()}, "pdus": {"p": {"driver": "sim", "ports": 1}}})
    done = run_cli("daemon", "-c", str(path), env={"PDUMQTT_MOSQUITTO": str(tmp_path / "no-mosquitto")})
    assert done.returncode == 1
    assert "mosquitto is not installed" in done.stderr and "apt-get install mosquitto" in done.stderr
