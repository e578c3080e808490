"""pdumqtt doctor: findings and exit codes against real brokers, a running daemon and devices."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

from support import accepts, free_port, run_cli, wait_until, write_config


def _doctor(tmp_path, config, *args: str):
    path = write_config(tmp_path, config, "doctor.yaml")
    done = run_cli("doctor", "-c", str(path), *args, timeout=60)
    return done, done.stdout.splitlines()


def _line(lines: list[str], level: str, *words: str) -> str:
    found = [line for line in lines if line.startswith(level.upper()) and all(w in line for w in words)]
    assert found, f"no {level} line with {words} in:\n" + "\n".join(lines)
    return found[0]


def test_bad_config_exits_2_naming_the_key(tmp_path):
    done, _ = _doctor(tmp_path, {"pdus": {"a": {"driver": "sim", "ports": 2, "colour": "red"}}})
    assert done.returncode == 2 and "pdus.a.colour" in done.stderr


def test_a_healthy_setup_with_its_daemon_running_exits_0(daemon, broker, tmp_path, unique):
    listen = f"127.0.0.1:{free_port()}"
    config = {"mqtt": {"host": broker.host, "port": broker.port, "base_topic": unique},
              "pdudaemon": {"listen": listen},
              "pdus": {"lab": {"driver": "sim", "ports": ["dut1", "dut2"]}}}
    daemon(config)
    done, lines = _doctor(tmp_path, config)
    assert done.returncode == 0, done.stdout + done.stderr
    _line(lines, "ok", "round trip")
    _line(lines, "ok", "queued all")
    _line(lines, "ok", "daemon", "serving every PDU")
    _line(lines, "ok", "clock")
    _line(lines, "ok", "pdudaemon listener", "accepts")
    _line(lines, "ok", "PDU lab", "through the daemon", "dut1")


def test_a_stock_mosquitto_is_warned_about(tmp_path):
    port = free_port()
    conf = tmp_path / "stock.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    + ("user root\n" if os.geteuid() == 0 else ""))
    mosquitto = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                                 stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: accepts(port), 10, "the stock mosquitto")
        done, lines = _doctor(tmp_path, {"mqtt": {"host": "127.0.0.1", "port": port},
                                         "pdus": {"lab": {"driver": "sim", "ports": 2}}})
    finally:
        mosquitto.terminate()
        mosquitto.wait(10)
    assert done.returncode == 0, done.stdout  # warnings, not problems
    print("\n".join(lines))
    _line(lines, "warning", "set_tcp_nodelay")
    _line(lines, "warning", "queued only 1000 of 1100", "max_queued_messages")
    _line(lines, "ok", "PDU lab", "answers")


def test_problems_exit_1_and_say_what_to_do(broker, tmp_path):
    dead = free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    try:
        done, lines = _doctor(tmp_path, {
            "mqtt": {"host": broker.host, "port": broker.port, "base_topic": "doctor-nobody"},
            "pdudaemon": {"listen": f"127.0.0.1:{holder.getsockname()[1]}"},
            "pdus": {"relays": {"driver": "devantech_ds", "host": f"127.0.0.1:{dead}", "ports": 2, "timeout": 2},
                     "acme": {"driver": "acme_ssh", "host": "127.0.0.1:2222", "known_hosts": str(known_hosts),
                              "ports": 8}}})
    finally:
        holder.close()
    assert done.returncode == 1
    _line(lines, "problem", "pdudaemon listener", "another program")
    _line(lines, "problem", "PDU relays", f"127.0.0.1:{dead}")
    _line(lines, "problem", "PDU acme", "[127.0.0.1]:2222 is not in", "ssh-keyscan")


def test_an_unreachable_broker_is_a_problem(tmp_path):
    done, lines = _doctor(tmp_path, {"mqtt": {"host": "127.0.0.1", "port": free_port()},
                                     "pdus": {"lab": {"driver": "sim", "ports": 1}}})
    assert done.returncode == 1
    _line(lines, "problem", "broker", "connection refused")


def test_a_driver_that_cannot_read_is_pinged(tmp_path):
    from pdumqtt.simulators.telnet_pdus import GudeTelnetSimulator

    with GudeTelnetSimulator({}) as gude:
        done, lines = _doctor(tmp_path, {"mqtt": {"host": "127.0.0.1", "port": free_port()},
                                         "pdus": {"gude": {"driver": "gude_telnet", "host": gude.address, "ports": 1,
                                                           "timeout": 3},
                                                  "gone": {"driver": "gude_telnet", "host": f"127.0.0.1:{free_port()}",
                                                           "ports": 1, "timeout": 3}}})
    _line(lines, "ok", "PDU gude", "a ping")
    _line(lines, "problem", "PDU gone")
    assert done.returncode == 1
