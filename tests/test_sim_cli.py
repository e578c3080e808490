"""`pdumqtt sim` starts the SNMP and APC telnet simulators from a small config, and they answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import voluptuous as vol
import yaml

from pdumqtt import registry


def test_pdumqtt_sim_starts_snmp_and_telnet_simulators(tmp_path: Path) -> None:
    config = tmp_path / "sims.yaml"
    config.write_text(yaml.safe_dump({
        "rack": {"kind": "snmp", "device": "apc_rpdu", "outlets": 4},
        "oldapc": {"kind": "apc_telnet", "firmware": "menu", "page_size": 2},
        "newapc": {"kind": "apc_telnet", "firmware": "cli"},
    }))
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
            if len(addresses) == 3:
                done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert done.wait(30), f"simulators did not all start: {addresses}"
        for name, driver_name in (("rack", "apc_snmp"), ("oldapc", "apc_telnet"), ("newapc", "apc_telnet")):
            cls = registry.load(driver_name)
            d = cls(vol.Schema(cls.options)({"host": addresses[name]}), pdu=name, timeout=5)
            d.set(3, True)
            assert d.get(3) is True
            d.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
