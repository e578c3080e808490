"""A PDUDaemon driver that switches nothing: the bench's peer of pdumqtt's ``sim`` driver.

Config keys: ``latency`` (seconds to sleep per call) and ``journal`` (a file that gets
one JSON line per call with its start and end, exactly as the sim driver writes it, so
that both daemons pay the same for the bench's overlap check).
"""

import json
import os
import time

from pdudaemon.drivers.driver import PDUDriver


class BenchNoop(PDUDriver):
    def __init__(self, hostname, settings):
        self.hostname = hostname
        self.latency = float(settings.get("latency", 0))
        self.journal = settings.get("journal")
        super().__init__()

    @classmethod
    def accepts(cls, drivername):
        return drivername == "bench_noop"

    def port_interaction(self, command, port_number):
        started = time.monotonic()
        if self.latency:
            time.sleep(self.latency)
        if self.journal:
            line = json.dumps({"pdu": self.hostname, "port": int(port_number), "action": command,
                               "start": started, "end": time.monotonic()})
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
