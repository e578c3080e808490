"""The ssh, raw TCP, XML-RPC and IPMI devices as a user meets them: `pdumqtt sim` and `pdumqtt migrate`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import voluptuous as vol
import yaml
from support import run_cli

from pdumqtt import registry


def test_pdumqtt_sim_starts_each_simulator_and_its_driver_drives_it(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    sims = {
        "mpower": ({"kind": "mfi", "outlets": 3, "known_hosts_file": str(known_hosts)},
                   "mfi_ssh", {"outlets": 3, "password": "ubnt", "known_hosts": str(known_hosts)}),
        "kasa": ({"kind": "tplink", "children": 2}, "kasa", {}),
        "eg": ({"kind": "egpms", "password": "pw"}, "egpms_lan", {"password": "pw"}),
        "servo": ({"kind": "servod"}, "servod", {}),
        "bmc": ({"kind": "ipmi", "username": "lab", "password": "pw"}, "ipmi", {"username": "lab", "password": "pw"}),
    }
    config = tmp_path / "sims.yaml"
    config.write_text(yaml.safe_dump({name: sim for name, (sim, _, _) in sims.items()}))
    proc = subprocess.Popen([sys.executable, "-m", "pdumqtt", "sim", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    addresses: dict[str, str] = {}
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            name, _, rest = line.partition(":")
            if " at 127.0.0.1:" in rest:
                addresses[name.strip()] = rest.rsplit(" at ", 1)[1].strip()
            if len(addresses) == len(sims):
                done.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert done.wait(30), f"simulators did not all start: {addresses}"
        for name, (_, driver_name, options) in sims.items():
            cls = registry.load(driver_name)
            d = cls(vol.Schema(cls.options)({"host": addresses[name], **options}), pdu=name, timeout=5)
            try:
                d.set(1, True)
                assert d.get(1) is True, name
            finally:
                d.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_pdumqtt_migrate_keeps_pdudaemon_names_and_options(tmp_path: Path) -> None:
    conf = tmp_path / "pdudaemon.conf"
    conf.write_text(json.dumps({
        "daemon": {"hostname": "0.0.0.0", "port": 16421, "logging_level": "INFO", "listener": "tcp"},
        "pdus": {
            "mfi-1.lab": {"driver": "ubntmfi6port", "username": "ubnt", "password": "s3cr3t-mfi",
                          "verify_hostkey": False},
            "mfi-2.lab": {"driver": "ubntmfi8port", "sshport": 2222},
            "kp303.lab": {"driver": "tplink"},
            "eg-pms": {"driver": "egpms", "ip": "192.0.2.20", "password": "s3cr3t"},
            "servo-dut": {"driver": "SERVO", "ip": "192.0.2.21", "port": 9902, "ctrls": ["cold_reset", "warm_reset"]},
        },
        "aliases": {"dut-1": {"hostname": "kp303.lab", "port": 2}},
    }))
    done = run_cli("migrate", str(conf))
    assert done.returncode == 0, done.stderr
    converted = yaml.safe_load(done.stdout)["pdus"]
    assert {name: (pdu["driver"], pdu["ports"]) for name, pdu in converted.items()} == {
        "mfi-1.lab": ("ubntmfi6port", 6), "mfi-2.lab": ("ubntmfi8port", 8), "kp303.lab": ("tplink", 6),
        "eg-pms": ("egpms", 4), "servo-dut": ("SERVO", 1)}
    assert converted["servo-dut"]["ctrls"] == ["cold_reset", "warm_reset"]
    assert converted["mfi-1.lab"]["verify_hostkey"] is False
    path = tmp_path / "migrated.yaml"
    path.write_text(done.stdout)
    assert run_cli("check", "-c", str(path)).returncode == 0
