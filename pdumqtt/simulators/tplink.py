"""A TP-Link Kasa plug or strip on its legacy TCP protocol (port 9999 on the device).

Frames are a 4-byte big-endian length and autokey-XORed JSON, several per connection.
It answers ``system.get_sysinfo`` (with ``children`` on a strip) and
``system.set_relay_state`` (``context.child_ids`` picks sockets; none switches them all).
``relays[n]`` is socket n+1 (the plug itself when ``children`` is 0); ``log`` records
each request. ``firmware: klap`` behaves as newer firmware does on port 9999: reads the
request and closes without a word. Failures: ``silent``, ``drop``, ``garbage`` (bytes
that are no frame). With ``emeter`` (an HS110 plug, an HS300 strip) ``emeter.get_realtime``
answers each socket's meter as hardware v2 does (``power_mw``, ``current_ma``,
``voltage_mv``, ``total_wh``): ``load`` watts while on; without it, ``module not support``.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from typing import Any

import voluptuous as vol

from pdumqtt.drivers.tplink import decrypt, encrypt
from pdumqtt.simulators._aio import StreamSimulator

DEVICE_ID = "8006A1B2C3D4E5F60718293A4B5C6D7E8F901234"


class KasaSimulator(StreamSimulator):
    options = {
        vol.Optional("children", default=3): vol.All(vol.Coerce(int), vol.Range(min=0, max=8)),
        vol.Optional("aliases"): [str],
        vol.Optional("firmware", default="legacy"): vol.In(["legacy", "klap"]),
        vol.Optional("emeter", default=False): bool,
        vol.Optional("load", default=25.0): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Optional("voltage", default=230.0): vol.All(vol.Coerce(float), vol.Range(min=1)),
    }

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        count = self.config["children"]
        self.relays = [False] * max(count, 1)
        self.aliases = self.config.get("aliases") or [f"Plug {n}" for n in range(1, count + 1)]
        self.log: list[dict[str, Any]] = []
        self._wh = [0.0] * len(self.relays)
        self._seen = [time.monotonic()] * len(self.relays)

    def child_id(self, index: int) -> str:
        return f"{DEVICE_ID}{index:02d}"

    def sysinfo(self) -> dict[str, Any]:
        info: dict[str, Any] = {"sw_ver": "1.0.12 Build 200601 Rel.100500", "hw_ver": "1.0", "deviceId": DEVICE_ID,
                                "alias": "Lab strip", "err_code": 0}
        if self.config["children"]:
            info.update(model="KP303(UK)", child_num=len(self.aliases), children=[
                {"id": self.child_id(i), "state": int(self.relays[i]), "alias": alias, "on_time": 0}
                for i, alias in enumerate(self.aliases)])
        else:
            info.update(model="HS105(US)", relay_state=int(self.relays[0]), alias="Lab plug")
        return info

    def realtime(self, index: int) -> dict[str, Any]:
        """Socket ``index``'s meter, in hardware v2's integer units."""
        now = time.monotonic()
        watts = self.config["load"] if self.relays[index] else 0.0
        self._wh[index] += watts * (now - self._seen[index]) / 3600
        self._seen[index] = now
        volts = self.config["voltage"]
        return {"voltage_mv": round(volts * 1000), "current_ma": round(watts / volts * 1000),
                "power_mw": round(watts * 1000), "total_wh": round(self._wh[index]), "err_code": 0}

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if "emeter" in request:
            if not self.config["emeter"]:
                return {"emeter": {"err_code": -1, "err_msg": "module not support"}}
            ids = (request.get("context") or {}).get("child_ids")
            known = {self.child_id(i): i for i in range(len(self.aliases))}
            index = known.get(ids[0]) if isinstance(ids, list) and ids and self.config["children"] else 0
            if index is None:
                return {"emeter": {"get_realtime": {"err_code": -14, "err_msg": "entry not exist"}}}
            return {"emeter": {"get_realtime": self.realtime(index)}}
        system = request.get("system")
        if not isinstance(system, dict):
            return {"system": {"err_code": -1, "err_msg": "module not support"}}
        reply: dict[str, Any] = {}
        for method, params in system.items():
            if method == "get_sysinfo":
                reply[method] = self.sysinfo()
            elif method == "set_relay_state" and isinstance(params, dict) and params.get("state") in (0, 1):
                ids = (request.get("context") or {}).get("child_ids")
                if ids is None or not self.config["children"]:
                    targets = list(range(len(self.relays)))
                else:
                    known = {self.child_id(i): i for i in range(len(self.aliases))}
                    if not isinstance(ids, list) or any(i not in known for i in ids):
                        reply[method] = {"err_code": -14, "err_msg": "entry not exist"}
                        continue
                    targets = [known[i] for i in ids]
                for i in targets:
                    self.relays[i] = params["state"] == 1
                reply[method] = {"err_code": 0}
            else:
                reply[method] = {"err_code": -2, "err_msg": "member not support"}
        return {"system": reply}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            (length,) = struct.unpack(">I", await reader.readexactly(4))
            text = decrypt(await reader.readexactly(length))
            if self.config["firmware"] == "klap":
                return  # newer firmware: no answer on the legacy port
            if await self.misbehave(writer, b"HTTP/1.1 400 Bad Request\r\n\r\n"):
                continue
            try:
                request = json.loads(text)
            except ValueError:
                return  # the device hangs up on what it cannot parse
            self.log.append(request)
            writer.write(encrypt(json.dumps(self.answer(request) if isinstance(request, dict) else {})))
            await writer.drain()
