"""A SainSmart 16-channel ethernet relay board: ``GET /<path>/NN`` with NN = 2(N-1)+1 on, 2(N-1) off.

Each command answers the board's control page (HTTP 200), as ``GET /<path>/`` does; an
unknown code or path is 404.
``path`` is the board's control path (``30000`` by default).
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator


class SainsmartSimulator(HttpSimulator):
    outlet_numbers = range(1, 17)
    options = {vol.Optional("path", default="30000"): str}

    def routes(self) -> dict[tuple[str, str], Any]:
        routes: dict[tuple[str, str], Any] = {("GET", f"/{self.config['path']}/"): self._page}
        for n in self.outlet_numbers:
            for on in (False, True):
                routes[("GET", f"/{self.config['path']}/{2 * (n - 1) + on:02d}")] = self._switch(n, on)
        return routes

    def _page(self, request: Any = None) -> str:
        rows = "".join(f"<p>Relay-{k:02d}: {'ON' if v else 'OFF'}</p>" for k, v in self.outlets.items())
        return f"<html><head><title>Relay Control</title></head><body>{rows}</body></html>"

    def _switch(self, n: int, on: bool) -> Any:
        def switch(request: Any) -> str:
            self.outlets[n] = on
            return self._page()
        return switch
