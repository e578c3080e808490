"""The journal: every accepted command on disk, so that a crash neither loses nor repeats one.

It owns the SQLite file (WAL mode) in the state directory, the intake thread that
writes each command *before* the broker hears that it arrived (the client acknowledges
by hand, paho's ``manual_ack``), and what the daemon finds there at start. A row goes

    queued ─▶ running ─▶ (cycling ─▶) done ─▶ answered

``queued`` once written (then the PUBACK goes out and the PDU's worker gets it);
``running`` just before a driver call that may change the outlet; ``cycling`` once a
cycle's off is confirmed, with the time its on is due; ``done`` with its ack, before
the ack is published; ``answered`` once the broker has acknowledged every copy of
the ack. At start, what is not answered is finished (see :class:`Recovered`):

- queued: run as if it had just arrived, ``max_command_age`` counted from its arrival;
- running: its outcome is unknown, so it is never run again; the worker answers with
  an error that says so and the state read back, except a cycle, whose power it
  restores (switches on) before answering. A fleet's standby journals as running the
  commands its former owner had started (:meth:`Journal.accept_interrupted`), and they
  are answered the same way;
- cycling: the off was confirmed: the outlet stays off for what is left of the delay,
  then goes on, and the cycle is answered;
- done: its stored ack is published again.

A message the broker delivers again (DUP set, the same packet id and the same topic,
payload and v5 properties as one already journalled) is acknowledged and not run
again. A crash before the journal write leaves the message unacknowledged, so the
broker delivers it again.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import paho.mqtt.client as mqtt

from pdumqtt.commands import Command

log = logging.getLogger(__name__)

QUEUED, RUNNING, CYCLING, DONE = "queued", "running", "cycling", "done"
# the Command fields a row keeps: what it takes to run the command again and to answer it
_FIELDS = ("action", "pdu", "port", "number", "delay", "transaction", "alias", "reply_to",
           "response_topic", "client_transaction")
# how often the intake thread looks whether the broker has the acks published since
CONFIRM_INTERVAL = 0.05
PRUNE_INTERVAL = 30.0
MAX_BATCH = 500
_COMMANDS = ("command", "interrupted")  # the intake's items that are commands to journal and hand on

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    command TEXT NOT NULL,           -- JSON: the command's _FIELDS, correlation in hex, arrival (Unix time)
    client_transaction INTEGER NOT NULL,
    deadline REAL,                   -- Unix time after which it must not start (max_command_age)
    on_at REAL,                      -- cycling: Unix time its outlet goes on again
    ack BLOB,                        -- done: the ack's JSON
    answered INTEGER NOT NULL DEFAULT 0,
    finished REAL                    -- done: Unix time
);
CREATE TABLE IF NOT EXISTS deliveries (   -- per MQTT packet id, the last message journalled with it
    mid INTEGER PRIMARY KEY,
    digest BLOB NOT NULL
);
"""


class AckingClient(Protocol):
    """What the journal needs of the bridge's MQTT client (``_Client`` in pdumqtt/bridge.py)."""

    def ack(self, mid: int, qos: int) -> Any: ...

    def batch(self) -> contextlib.AbstractContextManager[None]: ...


class JournalError(Exception):
    """The state directory or the journal in it cannot be used; the message says which and why."""


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` (systemd's ``StateDirectory=``), else ``$XDG_STATE_HOME/pdumqtt``,
    else ``~/.local/state/pdumqtt``."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])  # systemd lists several with ':'
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "pdumqtt"


def journal_path(state_dir: str | Path, client_id: str) -> Path:
    """One journal per MQTT client id: it belongs with the broker's session of that id."""
    return Path(state_dir) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', client_id)[:150]}.journal"


@dataclass(frozen=True)
class Resume:
    """How far a command had got when the daemon stopped: ``running`` or ``cycling``."""

    state: str
    on_at: float | None = None  # cycling: Unix time its outlet is due to go on


@dataclass
class Recovered:
    """What the journal held at start."""

    pending: list[Command] = field(default_factory=list)  # to run, or to finish (Journal.resume_of)
    unanswered: list[tuple[Command, bytes]] = field(default_factory=list)  # done; to publish again
    answered: list[tuple[Command, bytes]] = field(default_factory=list)  # client transactions in the window


@dataclass(slots=True)
class _Update:
    """A worker's change to its command's row, waiting for a commit."""

    command: Command
    sql: str
    args: tuple[Any, ...]
    written: bool = False  # committed, or failed and logged; set under the db lock


def _digest(message: mqtt.MQTTMessage) -> bytes:
    props = getattr(message, "properties", None)
    try:
        topic = message.topic.encode()
    except UnicodeDecodeError:  # the broker should refuse such a topic; the bridge reports it
        topic = b"\xff"
    h = hashlib.blake2b(digest_size=12)
    for part in (topic, message.payload, getattr(props, "ResponseTopic", "").encode(),
                 getattr(props, "CorrelationData", b"")):
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


class Journal:
    """The journal file and its intake thread; :meth:`open` before use, :meth:`close` at the end."""

    def __init__(self, path: Path, transaction_window: float) -> None:
        self.path = path
        self.window = transaction_window
        self.submit: Callable[[Command], None] = lambda command: None  # where journalled commands go
        self.client: AckingClient | None = None  # acknowledges the messages, in the order they came
        # answers a command that cannot be journalled (a full disk): never safe, so never run
        self.refuse: Callable[[Command, str], None] = lambda command, reason: None
        # told of each command marked running, on its PDU's worker (a fleet tells its standbys)
        self.on_running: Callable[[Command], None] = lambda command: None
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()  # one statement (and its commit) at a time
        self._updates: collections.deque[_Update] = collections.deque()  # the workers' writes, for one commit
        self._lockfile: IO[str] | None = None
        self._queue: queue.SimpleQueue[tuple[str, Any, Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._deliveries: dict[int, bytes] = {}
        self._delivery: tuple[int, bytes] | None = None  # the message the network thread handles now
        self._resume: dict[int, Resume] = {}
        self._sent_lock = threading.Lock()  # never held while calling paho: paho calls us under its own
        self._sent: dict[int, list[mqtt.MQTTMessageInfo] | None] = {}  # done rows: their acks' publishes
        self._idle = False

    # --- start and stop ----------------------------------------------------------------

    def open(self) -> None:
        """Create the state directory, take the journal's lock, open it; JournalError if not."""
        where = self.path.parent
        try:
            where.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lockfile = open(self.path.with_name(self.path.name + ".lock"), "a")  # held while we run
        except OSError as e:
            raise JournalError(f"state directory {where}: {e.strerror}") from None
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalError(f"{self.path} is in use by another pdumqtt with the same client id") from None
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL: a commit is a write to the WAL, synced at checkpoints. It survives the
            # daemon's crash (the write is in the kernel); a power cut may lose the last few.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._deliveries = dict(db.execute("SELECT mid, digest FROM deliveries"))
        except sqlite3.Error as e:
            raise JournalError(f"journal {self.path}: {e}") from None
        self._db = db

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, note the acks the broker has, and close the file."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        with self._db_lock:
            if self._db is not None:
                self._confirm()
                self._db.close()
                self._db = None
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None

    def recover(self) -> Recovered:
        """The rows a previous run left, as commands; call before new ones arrive."""
        assert self._db is not None
        found = Recovered()
        now, mono = time.time(), time.monotonic()
        with self._db_lock:
            self._db.execute("DELETE FROM commands WHERE answered = 1 AND finished < ?", (now - self.window,))
            rows = self._db.execute("SELECT id, state, command, deadline, on_at, ack, answered FROM commands "
                                    "ORDER BY id").fetchall()
        unreadable = []
        for row_id, state, data, deadline, on_at, ack, answered in rows:
            try:
                command = self._command(row_id, json.loads(data), deadline, now, mono)
            except (KeyError, TypeError, ValueError) as e:  # written by another version, or damaged
                log.warning("journal %s: dropping row %d, which cannot be read (%s)", self.path, row_id, e)
                unreadable.append((row_id,))
                continue
            if state == DONE:
                (found.answered if answered else found.unanswered).append((command, ack))
                if not answered:
                    with self._sent_lock:
                        self._sent[row_id] = None
            else:
                if state in (RUNNING, CYCLING):
                    self._resume[row_id] = Resume(state, on_at)
                found.pending.append(command)
        if unreadable:
            with self._db_lock:
                self._db.executemany("DELETE FROM commands WHERE id = ?", unreadable)
        if rows:
            log.info("journal %s: %d commands to finish, %d acks to publish again", self.path,
                     len(found.pending), len(found.unanswered))
        return found

    @staticmethod
    def _command(row_id: int, data: dict[str, Any], deadline: float | None, now: float, mono: float) -> Command:
        command = Command(**{k: data[k] for k in _FIELDS})
        command.correlation = bytes.fromhex(data["correlation"]) if data.get("correlation") else None
        command.received = mono - max(0.0, now - data["received"])
        command.deadline = None if deadline is None else mono + (deadline - now)
        command.journal_id = row_id
        return command

    # --- the network thread's side -----------------------------------------------------

    def redelivered(self, message: mqtt.MQTTMessage) -> bool:
        """Called first for each message: True when it is a copy of one already journalled."""
        if not message.qos:
            self._delivery = None
            return False
        self._delivery = (message.mid, _digest(message))
        return bool(message.dup) and self._deliveries.get(message.mid) == self._delivery[1]

    def accept_from_mqtt(self, command: Command) -> None:
        """Journal a command from the message being handled, then hand it on."""
        delivery = self._delivery
        if delivery is not None:
            self._deliveries[delivery[0]] = delivery[1]
        self._queue.put(("command", command, delivery))

    def accept(self, command: Command) -> None:
        """Journal a command that came in another way (the PDUDaemon listener), then hand it on."""
        self._queue.put(("command", command, None))

    def accept_interrupted(self, command: Command) -> None:
        """Journal, as ``running``, a command another daemon had started and not answered when it
        died (a fleet's takeover, pdumqtt/fleet.py), then hand it on: the worker answers it as it
        answers one a crash of ours interrupted, and never runs it again."""
        if command.journal_id is not None:  # a row of ours already (recovered at start)
            self._resume[command.journal_id] = Resume(RUNNING)
            self._set_running(command)  # not running(): nobody is to hear of a start that is not one
            self.submit(command)
            return
        self._queue.put(("interrupted", command, None))

    def release(self, message: mqtt.MQTTMessage) -> None:
        """The message is handled: acknowledge it once what it asked for is journalled."""
        if message.qos:
            self._queue.put(("puback", message.mid, message.qos))

    # --- the workers' side -------------------------------------------------------------

    def resume_of(self, command: Command) -> Resume | None:
        """How far ``command`` had got before a restart, once; None for a fresh one."""
        return self._resume.pop(command.journal_id, None) if command.journal_id is not None else None

    def running(self, command: Command) -> None:
        """Just before the driver call that may change the outlet: from here a crash leaves its outcome unknown."""
        self._set_running(command)
        self.on_running(command)

    def _set_running(self, command: Command) -> None:
        self._update(command, "UPDATE commands SET state = ? WHERE id = ?", (RUNNING, command.journal_id))

    def cycling(self, command: Command, on_at: float) -> None:
        self._update(command, "UPDATE commands SET state = ?, on_at = ? WHERE id = ?",
                     (CYCLING, on_at, command.journal_id))

    def done(self, command: Command, ack: bytes) -> None:
        """The command's ack, written before it is published."""
        if command.journal_id is None:
            return
        with self._sent_lock:
            self._sent[command.journal_id] = None
        self._update(command, "UPDATE commands SET state = ?, ack = ?, finished = ? WHERE id = ?",
                     (DONE, ack, time.time(), command.journal_id))

    def ack_sent(self, command: Command, published: list[mqtt.MQTTMessageInfo]) -> None:
        """Every copy of the command's ack is with paho; answered once the broker has them all."""
        if command.journal_id is not None:
            with self._sent_lock:
                if command.journal_id in self._sent:
                    self._sent[command.journal_id] = published
            if self._idle:  # the intake thread sleeps long while it has no acks to watch
                self._idle = False
                self._queue.put(("wake", None, None))

    def _update(self, command: Command, sql: str, args: tuple[Any, ...]) -> None:
        """Write one row's change and return once it is committed. Workers that write at the
        same time share a commit: the first to get the database commits every change waiting,
        the others find theirs done (a commit costs about three statements)."""
        if command.journal_id is None:
            return
        update = _Update(command, sql, args)
        self._updates.append(update)
        with self._db_lock:
            if not update.written:
                self._write_updates()

    def _write_updates(self) -> None:
        """Commit every update waiting (under the db lock): together, or one by one when alone
        (one statement commits itself, and each call lets go of the GIL) or when that fails."""
        batch = []
        while self._updates:
            batch.append(self._updates.popleft())
        if self._db is not None and not (len(batch) > 1 and self._commit_together(batch)):
            for update in batch:  # a failing one must not take the others with it
                try:
                    self._db.execute(update.sql, update.args)
                except sqlite3.Error as e:  # the command still runs and is answered; a crash now would lose it
                    log.error("journal %s: cannot record command %s: %s", self.path, update.command.transaction, e)
        for update in batch:
            update.written = True

    def _commit_together(self, batch: list[_Update]) -> bool:
        assert self._db is not None
        try:
            self._db.execute("BEGIN")
            for update in batch:
                self._db.execute(update.sql, update.args)
            self._db.execute("COMMIT")
            return True
        except sqlite3.Error:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return False

    # --- the intake thread ---------------------------------------------------------------

    def _run(self) -> None:
        confirmed = pruned = time.monotonic()
        stopping = False
        while not stopping:
            # idle: no acks to watch, so no timer. First say so, then look: an ack_sent in
            # between wakes us. With acks to watch we look again soon, and nobody need wake us
            # (which would cost a wake-up per sequential command).
            self._idle = True
            if self._sent:
                self._idle = False
            timeout = PRUNE_INTERVAL if self._idle else CONFIRM_INTERVAL
            try:
                items = [self._queue.get(timeout=timeout)]
            except queue.Empty:
                items = []
            self._idle = False
            while len(items) < MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in items:
                stopping = True
                items = items[:items.index(None)] + [i for i in items[items.index(None) + 1:] if i is not None]
            try:
                self._intake([i for i in items if i is not None])
            except Exception:  # a bug must not stop the intake: the broker would stall behind it
                log.exception("journal intake failed")
            now = time.monotonic()
            if now - confirmed >= CONFIRM_INTERVAL or stopping:
                confirmed = now
                with self._db_lock:
                    self._confirm()
            if now - pruned >= PRUNE_INTERVAL:
                pruned = now
                with self._db_lock:
                    if self._db is not None:
                        self._db.execute("DELETE FROM commands WHERE answered = 1 AND finished < ?",
                                         (time.time() - self.window,))

    def _intake(self, items: list[tuple[str, Any, Any]]) -> None:
        """Write the batch's commands in one transaction; then hand them on and send the PUBACKs."""
        commands = [item for item in items if item[0] in _COMMANDS]
        failed: str | None = None
        if commands:
            now, mono = time.time(), time.monotonic()
            with self._db_lock:
                try:
                    assert self._db is not None, "journal closed"
                    self._db.execute("BEGIN")
                    for kind, command, delivery in commands:
                        state = RUNNING if kind == "interrupted" else QUEUED
                        row = self._db.execute(
                            "INSERT INTO commands (state, command, client_transaction, deadline) VALUES (?, ?, ?, ?)",
                            (state, *self._row(command, now, mono)))
                        command.journal_id = row.lastrowid
                        if kind == "interrupted":
                            self._resume[command.journal_id] = Resume(RUNNING)
                        if delivery is not None:
                            self._db.execute("INSERT OR REPLACE INTO deliveries (mid, digest) VALUES (?, ?)", delivery)
                    self._db.execute("COMMIT")
                except (sqlite3.Error, AssertionError) as e:
                    failed = str(e)
                    log.error("journal %s: cannot write %d commands: %s", self.path, len(commands), e)
                    try:
                        if self._db is not None:
                            self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
        pubacks = []
        for kind, first, second in items:
            if kind in _COMMANDS:
                if failed is None:
                    self.submit(first)
                else:
                    first.journal_id = None
                    self.refuse(first, f"not run: the journal cannot be written ({failed})")
            elif kind == "puback":
                pubacks.append((first, second))
        if pubacks and self.client is not None:
            with self.client.batch():  # one write for all
                for mid, qos in pubacks:
                    self.client.ack(mid, qos)

    @staticmethod
    def _row(command: Command, now: float, mono: float) -> tuple[Any, ...]:
        data = {k: getattr(command, k) for k in _FIELDS}
        data["correlation"] = command.correlation.hex() if command.correlation else None
        data["received"] = now - (mono - command.received)
        deadline = None if command.deadline is None else now + (command.deadline - mono)
        return json.dumps(data), int(command.client_transaction), deadline

    def _confirm(self) -> None:
        """Mark the rows whose acks the broker has (under the db lock)."""
        with self._sent_lock:
            done = [row_id for row_id, sent in self._sent.items()
                    if sent is not None and all(info.is_published() for info in sent)]
            for row_id in done:
                del self._sent[row_id]
        if not done or self._db is None:
            return
        try:
            self._db.execute("BEGIN")
            for at in range(0, len(done), 500):
                chunk = done[at:at + 500]
                marks = ",".join("?" * len(chunk))
                # a client's transaction id is remembered for transaction_window, across restarts
                self._db.execute(f"DELETE FROM commands WHERE client_transaction = 0 AND id IN ({marks})", chunk)
                self._db.execute(f"UPDATE commands SET answered = 1 WHERE id IN ({marks})", chunk)
            self._db.execute("COMMIT")
        except sqlite3.Error as e:  # they stay done: published again at the next start
            log.error("journal %s: cannot mark acks delivered: %s", self.path, e)
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
