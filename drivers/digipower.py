"""Digipower switched PDUs over their CGI pages (``digipower``): the Lindy iPower Classic's protocol.

Lindy's iPower Classic 8 is a Digipower unit, so this is ``lindy_ipower``'s code with
Digipower's factory user, ``snmp``: ``ons.cgi``/``offs.cgi?led=<24 binary digits>`` switch,
``status.xml`` reads, HTTP basic auth. Set ``password`` (Digipower's factory password is
``1234``); without one no credentials are sent.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers.lindy_ipower import LindyIpower


class Digipower(LindyIpower):
    model = "Digipower switched PDU"
    tested_against = "`lindy_ipower` simulator (HTTP on loopback, basic auth)"
    options: ClassVar[dict[Any, Any]] = {**{k: v for k, v in LindyIpower.options.items() if k != "username"},
                                         vol.Optional("username", default="snmp"): str}
