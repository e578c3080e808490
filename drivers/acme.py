"""BayLibre ACME cape over ssh: ``dut-switch-on N``, ``dut-switch-off N``, ``dut-hard-reset N``.

Also the ssh machinery other ssh devices share (:class:`SshCommandDriver`): commands run
as ssh exec requests (one channel each) on one connection kept open between calls and
reopened after any failure. asyncssh is asyncio only, so each driver owns a private
event loop on its own thread and hands it coroutines.
The host key is checked against ``known_hosts`` (default ``~/.ssh/known_hosts``);
a host with no entry there is refused unless ``accept_unknown_host_key`` is true,
and a host whose entry does not match is refused always. The probe number is an
integer from the config, formatted by us: nothing from a request reaches the shell.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from typing import Any, ClassVar

import asyncssh
import voluptuous as vol

from pdumqtt.drivers import Driver, DriverError, HostAddress, NoSuchOutlet, split_host

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value or "\0" in value:
        raise vol.Invalid("expected a file path")
    return value


def ssh_options(username: str, password: str | None = None) -> dict[Any, Any]:
    """The login and host-key options of an ssh device: its usual user, a default password if any."""
    return {
        vol.Optional("username", default=username): vol.All(str, vol.Length(min=1, max=64)),
        # "" is a password (the ACME's root often has an empty one), absent is none.
        (vol.Optional("password") if password is None else vol.Optional("password", default=password)): str,
        vol.Optional("key_file"): _path,
        vol.Optional("passphrase"): str,
        vol.Optional("known_hosts", default=DEFAULT_KNOWN_HOSTS): _path,
        vol.Optional("accept_unknown_host_key", default=False): bool,
    }


BASE_OPTIONS: dict[Any, Any] = {
    **ssh_options("root"),
    vol.Optional("probes", default=8): vol.All(vol.Coerce(int), vol.Range(min=1, max=64)),
    # False: the daemon cycles with off, its delay, on; true: the ACME's own dut-hard-reset.
    vol.Optional("native_cycle", default=True): bool,
}


class SshCommandDriver(Driver):
    """A device driven by shell commands over ssh: subclasses call :meth:`run_command`.

    The options are :func:`ssh_options` plus ``host``; ``device`` names the device in messages.
    """

    device: ClassVar[str] = "the device"

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__(options, pdu=pdu, timeout=timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._conn: asyncssh.SSHClientConnection | None = None

    # -- the private loop -------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name=f"ssh-{self.pdu}", daemon=True)
            self._thread.start()
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, self.timeout), self._loop)
        try:
            return future.result(self.timeout + 5)
        except TimeoutError:
            future.cancel()
            self._drop()
            raise DriverError(f"no answer from {self._where()} within {self.timeout:g} s") from None

    def _where(self) -> str:
        host, port = split_host(self.config["host"], 22)
        return f"{host}:{port}"

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(conn.abort)

    def close(self) -> None:
        self._drop()
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()

    # -- ssh ----------------------------------------------------------------------

    def _known_hosts(self, host: str, port: int) -> Any:
        path = os.path.expanduser(self.config["known_hosts"])
        accept = self.config["accept_unknown_host_key"]
        if not os.path.exists(path):
            if accept:
                return None
            raise DriverError(f"cannot check the host key of {host}:{port}: {path} does not exist "
                              f"(add {self.device}'s key to it, or set accept_unknown_host_key)")
        try:
            known = asyncssh.read_known_hosts(path)
        except (OSError, ValueError, asyncssh.KeyImportError) as exc:
            raise DriverError(f"cannot read {path}: {exc}") from None
        listed = any(known.match(host, "", port)[:3])
        if not listed and accept:
            # Unknown host and the user said to trust it; a listed host must still match.
            return None
        return known

    async def _connect(self) -> asyncssh.SSHClientConnection:
        if self._conn is not None:
            if not self._conn.is_closed():
                return self._conn
            self._conn = None
        host, port = split_host(self.config["host"], 22)
        known = self._known_hosts(host, port)
        cfg = self.config
        auth: dict[str, Any] = {}
        if "password" in cfg:
            auth["password"] = cfg["password"]
        if "key_file" in cfg:
            auth["client_keys"] = [os.path.expanduser(cfg["key_file"])]
            auth["passphrase"] = cfg.get("passphrase")
        elif "password" in cfg:
            auth["client_keys"] = None
        if auth:
            # Explicit credentials: do not wander into the agent or the user's default keys.
            auth["agent_path"] = None
        try:
            conn = await asyncssh.connect(
                host, port, username=cfg["username"], known_hosts=known, config=None,
                connect_timeout=self.timeout, login_timeout=self.timeout,
                gss_auth=False, gss_kex=False, **auth)
        except asyncssh.HostKeyNotVerifiable:
            raise DriverError(f"host key of {host}:{port} refused: not in {cfg['known_hosts']} or not matching "
                              "(check the key, add it, or set accept_unknown_host_key)") from None
        except asyncssh.PermissionDenied:
            raise DriverError(f"{host}:{port} refused the login of {cfg['username']!r} (check password or key)") \
                from None
        except asyncssh.KeyImportError as exc:
            raise DriverError(f"cannot load key_file {cfg.get('key_file')}: {exc}") from None
        except (OSError, asyncssh.Error) as exc:
            raise DriverError(f"cannot connect to {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
        if known is None:
            key = conn.get_server_host_key()
            if key is not None:
                log.warning("%s: accepted the unlisted host key of %s:%s (%s)", self.pdu, host, port,
                            key.get_fingerprint())
        self._conn = conn
        return conn

    async def _run(self, command: str) -> str:
        conn = await self._connect()
        try:
            done = await conn.run(command, check=False)
        except (OSError, asyncssh.Error) as exc:
            self._conn = None
            conn.abort()
            raise DriverError(f"{self._where()} lost the connection during {command!r}: {exc}") from None
        if done.exit_status is None:
            # No exit status: the channel or the connection went away under the command.
            self._conn = None
            conn.abort()
            if done.exit_signal is None:
                raise DriverError(f"{self._where()} closed the connection during {command!r}")
        if done.exit_status != 0:
            tail = str(done.stderr or done.stdout or "").strip()[-200:]
            status = done.exit_status if done.exit_status is not None else f"signal {done.exit_signal[0]}"
            raise DriverError(f"{command!r} failed on {self._where()} with status {status}"
                              + (f": {tail}" if tail else ""))
        return str(done.stdout or "")

    def run_command(self, command: str) -> str:
        """Run ``command`` (built by the driver, never from a request) and return its output."""
        try:
            return self._call(self._run(command))
        except DriverError:
            raise
        except Exception as exc:
            self._drop()
            raise DriverError(f"{command!r} on {self._where()} failed: {exc}") from None


class Acme(SshCommandDriver):
    model = "BayLibre ACME"
    protocol = "ssh (exec requests)"
    tested_against = "`acme` simulator (asyncssh server on loopback)"
    can_read = False
    device = "the ACME"
    options: ClassVar[dict[Any, Any]] = {vol.Required("host"): HostAddress(22), **BASE_OPTIONS}

    def _command(self, verb: str, port: int) -> None:
        if not 1 <= port <= self.config["probes"]:
            raise NoSuchOutlet(f"probe {port} does not exist: the ACME has {self.config['probes']}")
        self.run_command(f"{verb} {int(port)}")

    def set(self, port: int, on: bool) -> None:
        self._command("dut-switch-on" if on else "dut-switch-off", port)

    def cycle(self, port: int, delay: float) -> bool:
        if not self.config["native_cycle"]:
            return False
        self._command("dut-hard-reset", port)
        return True


class AcmePdudaemon(Acme):
    """PDUDaemon's ``acme``: the PDU's name is the ssh host unless ``host`` is given."""

    native_driver = "acme_ssh"
    fixed_ports = 8

    options: ClassVar[dict[Any, Any]] = {vol.Optional("host"): HostAddress(22), **BASE_OPTIONS}

    def __init__(self, options: dict[str, Any], *, pdu: str = "", timeout: float = 10.0) -> None:
        super().__init__({"host": pdu, **options}, pdu=pdu, timeout=timeout)
