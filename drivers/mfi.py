"""Ubiquiti mFi mPower strips over ssh: each outlet is the file ``/proc/power/relayN``.

Switching writes the file as PDUDaemon does (``sh -c 'echo 1 > /proc/power/relayN'``, an
ssh exec request), then reads it back with ``cat``: the outlet is confirmed only when the
file says what was written. The ssh connection, host-key checks and logins are the ACME
driver's (:class:`pdumqtt.drivers.acme.SshCommandDriver`). The relay number is an integer
from the config, formatted by us: nothing from a request reaches the device's shell.
PDUDaemon's names (``ubntmfi3port``, ``ubntmfi6port``, ``ubntmfi8port``) take its options:
the PDU's name is the host, ``sshport``, ``username``/``password`` (ubnt/ubnt) and
``verify_hostkey``, which is our ``accept_unknown_host_key`` turned round.
"""

from __future__ import annotations

from typing import Any, ClassVar

import voluptuous as vol

from pdumqtt.drivers import DriverError, HostAddress, NoSuchOutlet, join_host, split_host
from pdumqtt.drivers.acme import SshCommandDriver, ssh_options

FACTORY_LOGIN = "ubnt"  # user and password of an mPower as it leaves the factory

OPTIONS: dict[Any, Any] = {
    vol.Required("host"): HostAddress(22),
    **ssh_options(FACTORY_LOGIN),
    # mPower mini 1, mPower 3, mPower Pro 6 or 8
    vol.Optional("outlets", default=8): vol.All(vol.Coerce(int), vol.Range(min=1, max=8)),
}


class MfiSsh(SshCommandDriver):
    model = "Ubiquiti mFi mPower"
    protocol = "ssh (exec requests, /proc/power/relayN)"
    tested_against = "`mfi` simulator (asyncssh server on loopback)"
    can_read = True
    device = "the mPower"
    options: ClassVar[dict[Any, Any]] = OPTIONS

    def _relay(self, port: int) -> str:
        if not 1 <= port <= self.config["outlets"]:
            raise NoSuchOutlet(f"outlet {port} does not exist: the mPower has {self.config['outlets']}")
        return f"/proc/power/relay{int(port)}"

    def _read(self, path: str) -> bool:
        answer = self.run_command(f"cat {path}").strip()
        if answer not in ("0", "1"):
            raise DriverError(f"{path} on {self._where()} reads {answer[:60]!r}, expected 0 or 1 "
                              "(is this an mFi mPower?)")
        return answer == "1"

    def set(self, port: int, on: bool) -> None:
        path = self._relay(port)
        self.run_command(f"sh -c 'echo {int(on)} > {path}'")
        if self._read(path) != on:
            raise DriverError(f"{path} on {self._where()} still reads {int(not on)} after writing {int(on)}")

    def get(self, port: int) -> bool:
        return self._read(self._relay(port))


def _pdudaemon_class(name: str, outlets: int) -> type[MfiSsh]:
    class Compat(MfiSsh):
        __doc__ = f"PDUDaemon's ``{name}``: the PDU's name is the ssh host unless ``host`` is given."

        model = f"Ubiquiti mFi mPower ({outlets} outlets)"
        native_driver = "mfi_ssh"
        fixed_ports = outlets
        options: ClassVar[dict[Any, Any]] = {
            vol.Optional("host"): HostAddress(22),
            vol.Optional("sshport", default=22): vol.All(vol.Coerce(int), vol.Range(min=1, max=65535)),
            **{k: v for k, v in ssh_options(FACTORY_LOGIN, FACTORY_LOGIN).items()
               if str(k) != "accept_unknown_host_key"},
            # PDUDaemon: true refuses a host missing from known_hosts; a listed host must match either way
            vol.Optional("verify_hostkey", default=True): bool,
        }

        def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
            options = dict(options)
            host, port = split_host(options.pop("host", None) or pdu, options.pop("sshport"))  # host's port wins
            options["host"] = join_host(host, port)
            options["accept_unknown_host_key"] = not options.pop("verify_hostkey")
            options["outlets"] = outlets
            super().__init__(options, pdu=pdu, timeout=timeout)

    Compat.__name__ = Compat.__qualname__ = name
    return Compat


# PDUDaemon's names: options sshport, username, password, verify_hostkey.
Ubiquity3Port = _pdudaemon_class("Ubiquity3Port", 3)
Ubiquity6Port = _pdudaemon_class("Ubiquity6Port", 6)
Ubiquity8Port = _pdudaemon_class("Ubiquity8Port", 8)
