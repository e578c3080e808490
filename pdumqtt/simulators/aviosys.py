"""An Aviosys IP Power switch's ``set.cmd`` API: ``cmd=setpower&p6N=0|1`` and ``cmd=getpower``.

Both answer ``<html><!--CGI-DATABEG--><p>\\np61=1,p62=0,...</p><!--CGI-DATAEND--></html>``
(``setpower`` lists the outlets it was given). With ``password`` set, ``user`` and ``pass``
must be in the query, else the answer is HTTP 401. ``outlets`` is 4 as on the 9850.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from pdumqtt.simulators._http import HttpSimulator, Request, Response


def cgi(text: str) -> str:
    return f"<html><!--CGI-DATABEG-->\n<p>\n{text}</p>\n<!--CGI-DATAEND-->\n</html>"


class AviosysSimulator(HttpSimulator):
    garbage_body = cgi("Unknown command")
    options = {vol.Optional("outlets", default=4): vol.All(int, vol.Range(min=1, max=8))}

    def __init__(self, options: dict[str, Any]) -> None:
        config = vol.Schema(self.options)(options)
        self.outlet_numbers = range(1, config["outlets"] + 1)
        super().__init__(config)

    def routes(self) -> dict[tuple[str, str], Any]:
        return {("GET", "/set.cmd"): self.command}

    def command(self, request: Request) -> Response | str:
        q = request.query
        if self.config["password"] and (q.get("user") != self.config["username"] or
                                        q.get("pass") != self.config["password"]):
            return Response(401, "<html><body>401 Unauthorized</body></html>")
        if q.get("cmd") == "getpower":
            return cgi(",".join(f"p6{n}={int(on)}" for n, on in self.outlets.items()))
        if q.get("cmd") == "setpower":
            changed = []
            for key, value in q.items():
                if key.startswith("p6") and key[2:].isdigit() and int(key[2:]) in self.outlets and value in "01":
                    self.outlets[int(key[2:])] = value == "1"
                    changed.append(f"{key}={value}")
            return cgi(",".join(changed) or "Unknown command")
        return cgi("Unknown command")
