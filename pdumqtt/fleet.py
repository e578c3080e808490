"""Several daemons, one fleet: which daemon drives which PDU, and the standby's takeover.

Turned on by the config's ``fleet:`` section. Each daemon keeps a retained liveness record on
``{base}/bridge/daemons/<client id>`` (what it owns, stands by for, and is kept from) and claims
each PDU it serves on the retained ``{base}/<pdu>/owner`` (``claiming``, then ``owned``). A claim
waits ``fleet.settle`` seconds for others' claims: a daemon that serves the PDU as its primary beats
a standby, then the lowest client id wins; a live daemon that already owns it keeps it. Only the
owner runs a worker for the PDU, and the runner asks :meth:`Fleet.may_drive` before each driver call.

A standby (``fleet.standby``) keeps a copy of each command it sees for the PDUs it does not drive,
drops it when the owner's ack passes by, and takes the PDU over when the owner is gone: its Last
Will (on ``bridge/state``, naming it in the ``pdumqtt-daemon`` user property), or its clean stop
(which empties its claims). The copies not answered yet then run here, once. The old owner coming
back finds a live owner and stays out.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from pdumqtt.bridge import DAEMON_PROPERTY, ONLINE_EXPIRY, ONLINE_REFRESH
from pdumqtt.commands import Command
from pdumqtt.config import Config, PduConfig

if TYPE_CHECKING:
    from pdumqtt.bridge import MqttBridge

log = logging.getLogger(__name__)

MAX_HELD = 1000  # command copies kept per PDU not driven here; the oldest go first
TICK = 0.2  # how often the fleet's thread looks at the clock, to notice that the process was frozen


@dataclass
class Claim:
    daemon: str
    state: str  # claiming or owned
    standby: bool = False

    @property
    def rank(self) -> tuple[bool, str]:
        """Who wins a race: a primary before a standby, then the lowest client id."""
        return self.standby, self.daemon


class Fleet:
    """This daemon's part of the fleet, on the bridge's connection.

    ``serve`` starts a PDU's worker once owned; ``accept`` hands a command on to be journalled
    and run (a copy a standby kept, run on takeover).
    """

    def __init__(self, config: Config, bridge: MqttBridge, serve: Callable[[PduConfig], None],
                 accept: Callable[[Command], None]) -> None:
        self.config = config
        self.base = config.base_topic
        self.me = config.client_id
        self.bridge = bridge
        self.serve, self.accept = serve, accept
        self._cond = threading.Condition(threading.RLock())
        self.owned: set[str] = set()
        self.conflicts: dict[str, str] = {}  # PDU -> the live daemon that keeps it from us
        self.claims: dict[str, Claim] = {}  # the last claim seen on each PDU's owner topic
        self.live: set[str] = set()  # daemons with a liveness record
        self.dead: set[str] = set()  # daemons whose Last Will we saw
        self._racing: dict[str, dict[str, Claim]] = {}  # PDU -> the claims seen while ours settles
        self._confirming = True  # until our liveness record comes back after a (re)connect
        self._seq = 0  # our liveness records' sequence number
        self._confirm_from = 1  # the first of them whose echo confirms our claims
        self._tick = time.monotonic()
        # frozen this long (SIGSTOP, a paused VM), our Last Will may have fired: confirm before driving
        self._frozen_after = max(1.0, config.mqtt["keepalive"] / 2)
        self._held: dict[str, deque[tuple[Command, Callable[[Command], None]]]] = {}
        self._stopping = threading.Event()
        self._refreshing = threading.Event()
        self.took_over: dict[str, float] = {}  # PDU -> when (monotonic) a takeover made it ours
        self.will_seen: dict[str, float] = {}  # daemon -> when (monotonic) its Last Will arrived
        bridge.on_connected.append(self._on_connected)
        bridge.info_extra = self.info
        client = bridge.client
        client.message_callback_add(f"{self.base}/+/owner", self._on_owner)
        client.message_callback_add(f"{self.base}/bridge/daemons/+", self._on_daemon)
        client.message_callback_add(f"{self.base}/bridge/state", self._on_state)
        client.message_callback_add(f"{self.base}/+/+/ack", self._on_ack)

    @property
    def standby(self) -> set[str]:
        return set(self.config.fleet["standby"])

    @property
    def settle(self) -> float:
        return self.config.fleet["settle"]

    # --- what the daemon and the runner ask ---------------------------------------------

    def owns(self, pdu: str) -> bool:
        with self._cond:
            return pdu in self.owned and not self._confirming

    def may_drive(self, pdu: str) -> bool:
        """The runner's gate before a driver call: wait while a reconnect confirms our claims."""
        with self._cond:
            self._check_frozen()
            # cut off, or back and not yet sure the claim survived: a standby may be taking over
            while (self._confirming or not self.bridge.connected.is_set()) and pdu in self.owned \
                    and not self._stopping.is_set():
                self._cond.wait(1.0)
            return self.owns(pdu)

    def take(self, command: Command, hand_on: Callable[[Command], None]) -> None:
        """A command for ``command.pdu``: on to ``hand_on`` if we drive it, else kept (while we
        claim it, confirm it or stand by for it) or left to its owner."""
        with self._cond:
            if self.owns(command.pdu):
                hand_on(command)
                return
            if command.pdu in self.conflicts and command.pdu not in self.standby:
                log.debug("pdu %s: %s left to its owner %s", command.pdu, command.action, self.conflicts[command.pdu])
                return
            held = self._held.setdefault(command.pdu, deque())
            if len(held) >= MAX_HELD:
                dropped, _ = held.popleft()
                log.warning("pdu %s: more than %d commands waiting for its owner's ack; forgot the oldest (%s %s)",
                            command.pdu, MAX_HELD, dropped.action, dropped.port)
            held.append((command, hand_on))

    def info(self) -> dict[str, Any]:
        """This daemon's word on the fleet, for ``bridge/info`` and its liveness record."""
        with self._cond:
            return {"fleet": {"daemon": self.me, "owned": sorted(self.owned),
                              "standby": sorted(self.standby - self.owned),
                              "conflicts": dict(sorted(self.conflicts.items()))}}

    # --- claims -------------------------------------------------------------------------

    def claim(self, pdu: str) -> None:
        """Claim ``pdu`` now, unless a live daemon owns it (a reload added it, or a takeover)."""
        with self._cond:
            if pdu in self.owned or pdu in self._racing or pdu not in self.config.pdus:
                return
            if self._confirming or not self.bridge.connected.is_set():
                return  # claimed once connected and the retained claims are in (_confirmed)
            seen, rivals = self.claims.get(pdu), {}
            if seen is not None and seen.daemon != self.me and self._alive(seen.daemon):
                if seen.state == "owned":
                    self._conflict(pdu, seen.daemon)
                    return
                rivals[seen.daemon] = seen  # a claim settling now: we race it
            self._racing[pdu] = rivals
            self._publish_claim(pdu, "claiming")
        timer = threading.Timer(self.settle, self._settled, (pdu,))
        timer.daemon = True
        timer.start()

    def _settled(self, pdu: str) -> None:
        with self._cond:
            rivals = self._racing.pop(pdu, None)
            if rivals is None or self._stopping.is_set():
                return
            mine = Claim(self.me, "claiming", pdu in self.standby)
            owner = next((c for c in rivals.values() if c.state == "owned" and self._alive(c.daemon)), None)
            if owner is None:
                owner = min([mine, *(c for c in rivals.values() if self._alive(c.daemon))], key=lambda c: c.rank)
            if owner.daemon != self.me:
                self._conflict(pdu, owner.daemon)
                return
            self.owned.add(pdu)
            self.conflicts.pop(pdu, None)
            self._publish_claim(pdu, "owned")
            if pdu in self.standby:
                self.took_over[pdu] = time.monotonic()
            log.info("pdu %s: owned by this daemon (%s)", pdu, self.me)
            self.serve(self.config.pdus[pdu])
            self._run_held(pdu)
            self._say_who_we_are()
            self._cond.notify_all()

    def _conflict(self, pdu: str, owner: str) -> None:
        """Under the lock: ``owner`` drives ``pdu``; we keep out."""
        if pdu in self.standby:
            log.info("pdu %s: standing by for its owner %s", pdu, owner)
            self.conflicts.pop(pdu, None)
        else:
            if self.conflicts.get(pdu) != owner:
                log.error("pdu %s: daemon %s owns it; this daemon (%s) will not drive it", pdu, owner, self.me)
            self.conflicts[pdu] = owner
            self._held.pop(pdu, None)
        if pdu in self.owned:
            self.owned.discard(pdu)
            log.error("pdu %s: lost to daemon %s; commands for it are left to that daemon", pdu, owner)
        self._say_who_we_are()
        self._cond.notify_all()

    def _run_held(self, pdu: str) -> None:
        """Under the lock, once owned: run the copies no ack has answered, in their order."""
        held = self._held.pop(pdu, deque())
        if held:
            log.info("pdu %s: running the %d commands its former owner did not answer", pdu, len(held))
        for command, hand_on in held:
            hand_on(command)

    def release(self, pdu: str) -> None:
        """We stop serving ``pdu`` (a reload removed it): empty our claim, so a standby may take it."""
        with self._cond:
            self._held.pop(pdu, None)
            self.conflicts.pop(pdu, None)
            if pdu in self.owned:
                self.owned.discard(pdu)
                self._send(f"{self.base}/{pdu}/owner", b"")

    def reconfigure(self, config: Config) -> None:
        with self._cond:
            self.config = config

    def stop(self) -> None:
        """A clean stop: empty our claims and our liveness record, so a standby takes over at once."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
            if not self.bridge.connected.is_set():
                return
            infos = [self._send(f"{self.base}/{pdu}/owner", b"") for pdu in sorted(self.owned)]
            infos.append(self._send(f"{self.base}/bridge/daemons/{self.me}", b""))
            self.owned.clear()
        for info in infos:
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass

    # --- MQTT -----------------------------------------------------------------------

    def _send(self, topic: str, payload: bytes | str, properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        return self.bridge.client.publish(topic, payload, qos=1, retain=True, properties=properties)

    def _publish_claim(self, pdu: str, state: str) -> None:
        body = {"daemon": self.me, "state": state, "standby": pdu in self.standby, "ts": time.time()}
        self._send(f"{self.base}/{pdu}/owner", json.dumps(body))

    def _say_who_we_are(self) -> None:
        if not self.bridge.connected.is_set() or self._stopping.is_set():
            return
        props = None
        if self.bridge.v5:  # a daemon gone for good, and not cleared by anyone, lapses
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = ONLINE_EXPIRY
        self._seq += 1
        self._send(f"{self.base}/bridge/daemons/{self.me}",
                   json.dumps({**self.info()["fleet"], "ts": time.time(), "seq": self._seq}), props)
        self.bridge.publish_info()

    def _on_connected(self, client: mqtt.Client) -> None:
        with self._cond:
            self._confirming, self._confirm_from = True, self._seq + 1
            client.subscribe([(f"{self.base}/+/owner", 1), (f"{self.base}/bridge/daemons/+", 1),
                              (f"{self.base}/bridge/state", 1), (f"{self.base}/+/+/ack", 1)])
            # after the SUBACK's retained messages: when it comes back, we know the claims
            self._say_who_we_are()
        if not self._refreshing.is_set():
            self._refreshing.set()
            threading.Thread(target=self._refresh, name="fleet-liveness", daemon=True).start()

    def _refresh(self) -> None:
        said = time.monotonic()
        while not self._stopping.wait(TICK):
            with self._cond:
                self._check_frozen()
                if time.monotonic() - said >= ONLINE_REFRESH:
                    said = time.monotonic()
                    self._say_who_we_are()

    def _check_frozen(self) -> None:
        """Under the lock: if this process stood still long enough for the broker to declare us
        dead, what it sent meanwhile (still in our socket) must not be driven before we know."""
        now = time.monotonic()
        frozen, self._tick = now - self._tick, now
        if frozen > self._frozen_after and not self._confirming and self._refreshing.is_set():
            log.warning("this daemon stood still for %.1f s: confirming its claims before it drives again", frozen)
            self._confirming, self._confirm_from = True, self._seq + 1
            self._say_who_we_are()

    def _confirmed(self) -> None:
        """Under the lock: our liveness record is back, the retained claims are in."""
        self._confirming = False
        for pdu in sorted(self.owned):
            claim = self.claims.get(pdu)
            if claim is not None and claim.daemon != self.me:
                self._conflict(pdu, claim.daemon)
            else:  # still ours (a broker restart may have lost it): say so again
                self._publish_claim(pdu, "owned")
                self._run_held(pdu)
        for pdu in sorted(self.config.pdus):
            if pdu not in self.owned:
                claim = self.claims.get(pdu)
                if pdu not in self.standby or claim is None or not self._alive(claim.daemon):
                    self.claim(pdu)
                else:
                    self._conflict(pdu, claim.daemon)
        self._cond.notify_all()

    def _alive(self, daemon: str) -> bool:
        return daemon == self.me or (daemon in self.live and daemon not in self.dead)

    def _on_owner(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        pdu = message.topic[len(self.base) + 1: -len("/owner")]
        try:
            body = json.loads(message.payload) if message.payload else None
            claim = Claim(str(body["daemon"]), str(body["state"]), bool(body.get("standby"))) if body else None
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a claim on %s that is not pdumqtt's: %r", message.topic, message.payload[:80])
            return
        with self._cond:
            if claim is None:
                self.claims.pop(pdu, None)
                self._owner_gone(pdu)
                return
            self.claims[pdu] = claim
            if claim.daemon == self.me:
                return
            if pdu in self._racing:
                self._racing[pdu][claim.daemon] = claim
            if pdu in self.owned and not self._confirming:
                if claim.state == "owned":  # it believes us gone (our Last Will fired): it drives now
                    self._conflict(pdu, claim.daemon)
                else:  # a newcomer's claim: tell it we own this
                    self._publish_claim(pdu, "owned")

    def _on_daemon(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        daemon = message.topic.rsplit("/", 1)[1]
        with self._cond:
            if not message.payload:
                self.live.discard(daemon)
                if daemon != self.me:
                    self._gone(daemon)
                return
            self.live.add(daemon)
            if daemon == self.me:
                try:
                    seq = int(json.loads(message.payload).get("seq", 0))
                except (ValueError, TypeError, AttributeError):
                    seq = 0
                # our own, said live after the claims we subscribed to (not a record of an earlier run,
                # nor an echo from before we froze)
                if self._confirming and not message.retain and seq >= self._confirm_from:
                    self._confirmed()
            elif not message.retain:
                self.dead.discard(daemon)  # it is back (and stays out of what is owned by others)

    def _on_state(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        props = getattr(message, "properties", None)
        names = [v for k, v in (getattr(props, "UserProperty", None) or []) if k == DAEMON_PROPERTY]
        if message.payload != b"offline" or not names or message.retain:
            return
        with self._cond:
            for daemon in names:
                if daemon != self.me:
                    self.will_seen[daemon] = time.monotonic()
                    log.warning("daemon %s is gone (its Last Will)", daemon)
                    self.dead.add(daemon)
                    self._send(f"{self.base}/bridge/daemons/{daemon}", b"")  # for those who start later
                    self._gone(daemon)

    def _gone(self, daemon: str) -> None:
        """Under the lock: ``daemon`` is gone; take over the PDUs we stand by for that it owned."""
        for pdu, claim in list(self.claims.items()):
            if claim.daemon == daemon:
                self._owner_gone(pdu)

    def _owner_gone(self, pdu: str) -> None:
        if pdu in self.standby and pdu not in self.owned and not self._confirming and not self._stopping.is_set():
            log.warning("pdu %s: its owner is gone; taking it over", pdu)
            self.conflicts.pop(pdu, None)
            self.claims.pop(pdu, None)
            self.claim(pdu)

    def _on_ack(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """An ack passing by: the copy we kept of the command it answers is done with."""
        try:
            ack = json.loads(message.payload)
            pdu, port, transaction = ack["pdu"], ack["port"], ack["transaction"]
        except (ValueError, KeyError, TypeError):
            return
        with self._cond:
            held = self._held.get(pdu)
            if not held:
                return
            for entry in held:
                command = entry[0]
                if command.port == port and (command.transaction == transaction if command.client_transaction
                                             else command.action == ack.get("action")):
                    held.remove(entry)
                    if command.client_transaction:  # a retry sent to us later gets that answer
                        self.bridge.transactions.complete(command, message.payload)
                    return
