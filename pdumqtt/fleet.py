"""Several daemons, one fleet: which daemon drives which PDU, the owner's lease, and the standby's takeover.

Turned on by the config's ``fleet:`` section. Each daemon keeps a retained liveness record on
``{base}/bridge/daemons/<client id>`` (what it owns, stands by for, and is kept from) and claims
each PDU it serves on the retained ``{base}/<pdu>/owner`` (``claiming``, then ``owned``). A claim
waits ``fleet.settle`` seconds for others' claims: a daemon that serves the PDU as its primary beats
a standby, then the lowest client id wins; a live daemon that already owns it keeps it. Only the
owner runs a worker for the PDU, and the runner asks :meth:`Fleet.may_drive` before each driver call.

The lease: each daemon beats on ``{base}/bridge/daemons/<client id>/beat`` (not retained) every
keepalive/4 and hears its own beats come back; the echo of a beat sent at T lets it drive until
T + keepalive. A daemon whose lease ran out (it stood still, or its beats do not come back)
drives nothing until a beat it sent a keepalive later comes back: by then the claim of a standby
that took it for gone has reached it. A standby takes over from an owner it has not heard beat for
keepalive x 1.5, which is later than the owner's lease ends (README: "What the guarantee rests on").

A standby (``fleet.standby``) keeps a copy of each command it sees for the PDUs it does not drive,
drops it when the owner's ack passes by, and marks it when the owner says that it starts it
(``{base}/<pdu>/running``, published just before the driver call). It takes the PDU over when the
owner is gone: its silence, its Last Will (on ``bridge/state``, naming it in the ``pdumqtt-daemon``
user property), or its clean stop (which empties its claims). The copies never marked then run
here, once; a marked one is answered as a crash of the daemon leaves a command (outcome unknown,
not run again). The old owner coming back finds a live owner and stays out.
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
TICK = 0.1  # how often the fleet's thread looks at the clock: beats due, leases run out, owners silent
BEATS_PER_LEASE = 4  # three beats in a row may be lost before a lease runs out
SILENCE = 1.5  # a daemon not heard beating for this many of its leases is gone, as its Last Will says


@dataclass
class Claim:
    daemon: str
    state: str  # claiming or owned
    standby: bool = False

    @property
    def rank(self) -> tuple[bool, str]:
        """Who wins a race: a primary before a standby, then the lowest client id."""
        return self.standby, self.daemon


@dataclass
class _Copy:
    """A command for a PDU another daemon drives, kept until its ack passes by."""

    command: Command
    hand_on: Callable[[Command], None]
    running: bool = False  # its owner said it started it: at a takeover its outcome is unknown


class Fleet:
    """This daemon's part of the fleet, on the bridge's connection.

    ``serve`` starts a PDU's worker once owned, ``unserve`` ends it once lost to another daemon
    (after the call under way: it would go on probing the PDU); ``resume`` hands on a copy a
    standby kept that its owner had started, to be answered as a crash leaves it
    (Journal.accept_interrupted).
    """

    def __init__(self, config: Config, bridge: MqttBridge, serve: Callable[[PduConfig], None],
                 unserve: Callable[[str], None], resume: Callable[[Command], None]) -> None:
        self.config = config
        self.base = config.base_topic
        self.me = config.client_id
        self.bridge = bridge
        self.serve, self.unserve, self.resume = serve, unserve, resume
        self.lease = float(config.mqtt["keepalive"])  # a restart, not a reload, changes the keepalive
        # beats say something only between daemons on one broker: across a bridge, an owner's beats
        # come back to it from its own broker while the bridge is down and the standby hears none
        self.broker = f"{bridge.host}:{bridge.port}"
        self._cond = threading.Condition(threading.RLock())
        self.owned: set[str] = set()
        self.conflicts: dict[str, str] = {}  # PDU -> the live daemon that keeps it from us
        self.claims: dict[str, Claim] = {}  # the last claim seen on each PDU's owner topic
        self.live: set[str] = set()  # daemons with a liveness record
        self._pdus_of: dict[str, set[str]] = {}  # daemon -> the PDUs its record says it has
        self.dead: set[str] = set()  # daemons whose Last Will we saw
        self._racing: dict[str, dict[str, Claim]] = {}  # PDU -> the claims seen while ours settles
        self._confirming = True  # until a beat of ours comes back after a (re)connect or a lapsed lease
        self._confirm_after = 0.0  # the beat that confirms was sent then or later (monotonic)
        self._hold_pending = False  # our lease ran out: the next beat sent puts _confirm_after a keepalive on
        self._held_for = 0.0  # the end of the lease whose lapse we hold off for (once per lapse)
        self._beat_seq = 0
        self._beats_sent: dict[int, float] = {}  # our beats young enough to renew the lease -> when sent
        self._beat_at = 0.0  # when our last beat went out (monotonic)
        self._lease_until = 0.0  # we may drive until then (monotonic): a beat's sending, plus keepalive
        self._beating: dict[str, float] = {}  # daemon on our broker that beats -> its lease (its record says)
        self._heard: dict[str, tuple[float, float]] = {}  # such a daemon -> (when we last heard it, its lease)
        self._held: dict[str, deque[_Copy]] = {}
        self._stopping = threading.Event()
        self._ticking = threading.Event()
        self.took_over: dict[str, float] = {}  # PDU -> when (monotonic) a takeover made it ours
        self.will_seen: dict[str, float] = {}  # daemon -> when (monotonic) its Last Will arrived
        self.silence_seen: dict[str, float] = {}  # daemon -> when (monotonic) we took its silence for death
        bridge.on_connected.append(self._on_connected)
        bridge.info_extra = self.info
        bridge.refuses = self.refuses
        client = bridge.client
        client.message_callback_add(f"{self.base}/+/owner", self._on_owner)
        client.message_callback_add(f"{self.base}/bridge/daemons/+", self._on_daemon)
        client.message_callback_add(f"{self.base}/bridge/state", self._on_state)
        client.message_callback_add(f"{self.base}/+/+/ack", self._on_ack)
        client.message_callback_add(f"{self.base}/bridge/daemons/+/beat", self._on_beat)
        client.message_callback_add(f"{self.base}/+/running", self._on_running)

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
        """The runner's gate before a driver call: only while our lease holds. Cut off, or back
        (reconnected, woken) and not yet sure the claim survived, it waits: a standby may be
        taking over."""
        with self._cond:
            while pdu in self.owned and not self._stopping.is_set():
                self._beat_if_lapsed()
                if not self._confirming and self.bridge.connected.is_set():
                    break
                self._cond.wait(1.0)
            return self.owns(pdu) and self._leased()

    def running(self, command: Command) -> None:
        """We are about to drive ``command`` (the journal's running mark, on the PDU's worker):
        tell the standbys before the call starts, so that a takeover answers it as our crash
        left it rather than run it again. Waits for the broker's PUBACK while our lease lasts."""
        body = json.dumps({"daemon": self.me, "pdu": command.pdu, "port": command.port,
                           "action": command.action, "transaction": command.transaction})
        with self._cond:
            left = max(0.0, self._lease_until - time.monotonic())
        info = self.bridge.client.publish(f"{self.base}/{command.pdu}/running", body, qos=1)
        try:
            info.wait_for_publish(left)
        except (RuntimeError, ValueError):  # not queued: disconnected, the lease ends soon
            pass
        if not info.is_published():
            log.warning("pdu %s: the broker did not confirm in time that %s %s runs; a takeover now would run it "
                        "again", command.pdu, command.action.upper(), command.port)

    def driven_by(self, pdu: str) -> str | None:
        """The other live daemon that owns ``pdu``, if one does."""
        with self._cond:
            claim = self.claims.get(pdu)
            if pdu in self.owned or claim is None or claim.daemon == self.me or not self._alive(claim.daemon):
                return None
            return claim.daemon

    def refuses(self, pdu: str) -> bool:
        """Whether a command for ``pdu`` that cannot run (malformed) is ours to refuse, so that it
        gets one error ack: the owner's; while no live daemon owns it, the lowest client id's
        among the live daemons that have the PDU."""
        with self._cond:
            if pdu in self.owned:
                return True
            claim = self.claims.get(pdu)
            if claim is not None and self._alive(claim.daemon):
                return claim.daemon == self.me
            having = [d for d, pdus in self._pdus_of.items() if pdu in pdus and self._alive(d)]
            return self.me == min([self.me, *having])

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
                dropped = held.popleft().command
                log.warning("pdu %s: more than %d commands waiting for its owner's ack; forgot the oldest (%s %s)",
                            command.pdu, MAX_HELD, dropped.action, dropped.port)
            held.append(_Copy(command, hand_on))

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
            self.unserve(pdu)
        self._say_who_we_are()
        self._cond.notify_all()

    def _run_held(self, pdu: str) -> None:
        """Under the lock, once owned: run the copies no ack has answered, in their order; those
        the former owner had started are answered, not run again."""
        held = self._held.pop(pdu, deque())
        started = sum(copy.running for copy in held)
        if held:
            log.info("pdu %s: %d commands its former owner did not answer: %d to run, %d it had started "
                     "(answered as outcome unknown, not run again)", pdu, len(held), len(held) - started, started)
        for copy in held:
            (self.resume if copy.running else copy.hand_on)(copy.command)

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
        # the lease and the broker tell a standby whether our silence means death, and after how long
        self._send(f"{self.base}/bridge/daemons/{self.me}",
                   json.dumps({**self.info()["fleet"], "lease": self.lease, "broker": self.broker, "ts": time.time()}),
                   props)
        self.bridge.publish_info()

    def _on_connected(self, client: mqtt.Client) -> None:
        with self._cond:
            client.subscribe([(f"{self.base}/+/owner", 1), (f"{self.base}/bridge/daemons/+", 1),
                              (f"{self.base}/bridge/state", 1), (f"{self.base}/+/+/ack", 1),
                              (f"{self.base}/bridge/daemons/+/beat", 0), (f"{self.base}/+/running", 1)])
            self._say_who_we_are()
            # the beat goes after the SUBACK's retained messages: when it comes back, we know the claims
            self._confirm(hold=bool(self.owned) and not self._leased())
        if not self._ticking.is_set():
            self._ticking.set()
            threading.Thread(target=self._tick, name="fleet-lease", daemon=True).start()

    def _tick(self) -> None:
        said = time.monotonic()
        while not self._stopping.wait(TICK):
            with self._cond:
                now = time.monotonic()
                self._beat_if_lapsed()
                if now - self._beat_at >= self.lease / BEATS_PER_LEASE:
                    self._beat()
                self._check_silence()
                if now - said >= ONLINE_REFRESH:
                    said = now
                    self._say_who_we_are()

    # --- the lease ------------------------------------------------------------------------

    def _beat(self) -> None:
        """Under the lock: one beat; its echo renews our lease (:meth:`_on_beat`), one per daemon
        whatever the number of PDUs."""
        if not self.bridge.connected.is_set() or self._stopping.is_set():
            return
        self._check_lease()  # had we stood still since the caller looked, this beat starts the hold-off
        now = self._beat_at = time.monotonic()
        if self._hold_pending:  # the first beat since our lease ran out (README: "The takeover of a silent owner")
            self._hold_pending = False
            self._confirm_after = max(self._confirm_after, now + self.lease)
        self._beat_seq += 1
        self._beats_sent = {seq: sent for seq, sent in self._beats_sent.items() if sent > now - self.lease}
        self._beats_sent[self._beat_seq] = now
        self.bridge.client.publish(f"{self.base}/bridge/daemons/{self.me}/beat", json.dumps({"seq": self._beat_seq}),
                                   qos=0)

    def _leased(self) -> bool:
        return time.monotonic() < self._lease_until

    def _confirm(self, hold: bool) -> None:
        """Under the lock: drive nothing until a beat of ours, sent from now on (with ``hold``: a
        keepalive after the next one that goes out), comes back after what the broker had for us."""
        self._start_confirming(hold)
        self._beat()

    def _start_confirming(self, hold: bool) -> None:
        now = time.monotonic()
        self._confirm_after = max(self._confirm_after, now) if self._confirming else now
        self._confirming = True
        self._hold_pending = self._hold_pending or hold

    def _check_lease(self) -> None:
        """Under the lock: our lease ran out while we own PDUs (we stood still, or our beats stopped
        coming back), so a standby may be taking them over. What our socket holds must not be
        driven before we know: we hold off a keepalive from our next beat, by when the claim of a
        standby that took us for gone has reached us (the README's argument), then confirm."""
        if self._newly_lapsed():
            self._held_for = self._lease_until
            log.warning("this daemon's lease ran out (no beat of its own back for %.1f s): it drives nothing "
                        "until it is sure of its claims", time.monotonic() - self._lease_until + self.lease)
            self._start_confirming(hold=True)

    def _newly_lapsed(self) -> bool:
        """Under the lock: our lease ran out while we own PDUs, and we have not held off for it yet."""
        return bool(self.owned) and not self._leased() and self._held_for != self._lease_until

    def _beat_if_lapsed(self) -> None:
        """Under the lock: the hold-off of a lease that ran out starts with a beat, at once."""
        if self._newly_lapsed():
            self._beat()

    def _check_silence(self) -> None:
        """Under the lock: a daemon not heard beating for SILENCE of its leases is gone, as its
        Last Will would say (which a broker fires late for a frozen owner): we take over the PDUs
        we stand by for that it owns. Only while our own beats come back: had we stood still,
        what we heard of the others is old."""
        if self._confirming or not self._leased():
            return
        now = time.monotonic()
        for daemon, (heard, lease) in list(self._heard.items()):
            if now - heard <= SILENCE * lease:
                continue
            theirs = [pdu for pdu, claim in self.claims.items()
                      if claim.daemon == daemon and pdu in self.standby and pdu not in self.owned]
            if not theirs:
                continue
            log.warning("daemon %s is gone (no beat for %.1f s, its lease being %g s); taking over %s",
                        daemon, now - heard, lease, ", ".join(sorted(theirs)))
            self.silence_seen[daemon] = now
            # its clock starts again: if it is there after all and answers our claim, it keeps its PDUs
            self._heard[daemon] = (now, lease)
            self._gone(daemon)

    def _on_beat(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        daemon = message.topic.rsplit("/", 2)[1]
        now = time.monotonic()
        with self._cond:
            if daemon != self.me:
                if daemon in self._beating:
                    self._heard[daemon] = (now, self._beating[daemon])
                return
            try:
                seq = int((_json_object(message.payload) or {})["seq"])
            except (ValueError, KeyError, TypeError):
                return
            sent = self._beats_sent.get(seq)
            if sent is None:  # too old to renew anything
                return
            self._lease_until = max(self._lease_until, sent + self.lease)
            if self._confirming and sent >= self._confirm_after:
                self._confirmed()
            self._cond.notify_all()

    def _confirmed(self) -> None:
        """Under the lock: a beat of ours is back; what the broker had for us before it, is in."""
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
            if pdu in self.owned and claim.state == "owned":  # it believes us gone (our will, our silence)
                self._conflict(pdu, claim.daemon)
            elif pdu in self.owned and not self._confirming:  # a newcomer's claim: tell it we own this
                self._publish_claim(pdu, "owned")

    def _on_daemon(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        daemon = message.topic.rsplit("/", 1)[1]
        with self._cond:
            if not message.payload:
                self.live.discard(daemon)
                self._heard.pop(daemon, None)
                self._beating.pop(daemon, None)
                self._pdus_of.pop(daemon, None)
                if daemon != self.me:
                    self._gone(daemon)
                return
            self.live.add(daemon)
            if daemon == self.me:
                return
            record = _json_object(message.payload) or {}
            try:
                self._pdus_of[daemon] = {*record.get("owned", ()), *record.get("standby", ()),
                                         *record.get("conflicts", ())}
            except TypeError:
                self._pdus_of.pop(daemon, None)
            try:
                lease = float(record["lease"]) if record.get("broker") == self.broker else 0.0
            except (ValueError, KeyError, TypeError):
                lease = 0.0
            if lease > 0:  # silent from now on (a frozen one's retained record), it is gone after SILENCE x lease
                self._beating[daemon] = lease
                self._heard[daemon] = (time.monotonic(), lease)
            else:  # it does not beat, or not on our broker: only its Last Will says it is gone
                self._beating.pop(daemon, None)
                self._heard.pop(daemon, None)
            if not message.retain:
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
                    self._heard.pop(daemon, None)
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

    def _copy_of(self, said: dict[str, Any], started: bool | None = None) -> _Copy | None:
        """Under the lock: the first copy we keep of the command an ack or a running mark names
        (by transaction id; one the sender gave none by outlet and action); with ``started``, only
        one whose running mark is (True) or is not (False) in."""
        try:
            held = self._held.get(said["pdu"])
            port, transaction, action = said["port"], said["transaction"], said.get("action")
        except (KeyError, TypeError):
            return None
        for copy in held or ():
            command = copy.command
            if command.port == port and (command.transaction == transaction if command.client_transaction
                                         else command.action == action) \
                    and (started is None or copy.running == started):
                return copy
        return None

    def _on_running(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """An owner starts a command: at a takeover the copy we kept of it must not run again."""
        said = _json_object(message.payload)
        if said is None or said.get("daemon") == self.me:  # ours: we keep no copy of what we drive
            return
        with self._cond:
            copy = self._copy_of(said, started=False)
            if copy is not None:
                copy.running = True

    def _on_ack(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """An ack passing by: the copy we kept of the command it answers is done with."""
        said = _json_object(message.payload)
        if said is None:
            return
        with self._cond:
            copy = self._copy_of(said)
            if copy is None:
                return
            self._held[copy.command.pdu].remove(copy)
            if copy.command.client_transaction:  # a retry sent to us later gets that answer
                self.bridge.transactions.complete(copy.command, message.payload)


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        said = json.loads(payload)
    except ValueError:
        return None
    return said if isinstance(said, dict) else None
