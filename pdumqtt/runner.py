"""Runs each PDU's commands one at a time, in arrival order, on the PDU's own thread.

Each PDU has a :class:`PduWorker`: an inbox and one thread, which takes the commands in
order and calls the driver itself, holding the PDU's call slot. One watchdog thread for
the whole process (:class:`_Watchdog`) gives up on a call that overruns ``timeout``: the
worker's code goes on, on a fresh thread, as if the call had raised a timeout, while the
stuck thread keeps the slot until the driver returns, then closes the driver (the next
call reconnects) and ends. So a call that hangs never has a second call beside it: later
calls wait for the slot and time out in turn. The worker's code is generators that yield
each driver call (:meth:`PduWorker._drive` makes it), which is what lets another thread
resume a command exactly where the stuck one left it, so nothing is decided or run twice.
Retries back off on this PDU's thread only. A cycle switches off, then schedules its "on"
on the worker's timer heap, so the PDU's other ports go on during the delay; during it an
ON or OFF for the cycling port ends the cycle, a TOGGLE or CYCLE is refused at once.

With a journal (``pdumqtt/journal.py``) the worker records when a command is about to
change an outlet and when a cycle's off is confirmed, and it finishes the commands a
crash interrupted (:meth:`PduWorker._resume`).

Meter reads (``meter_interval``) are the lowest of the worker's jobs: the timer only marks a
round due, and each read (one outlet, or the PDU's totals) runs when no command is waiting,
so a command waits at most for the one read under way. A failing read is logged and skipped:
it never changes availability.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pdumqtt.commands import Command
from pdumqtt.config import Config, PduConfig
from pdumqtt.drivers import Driver, DriverError, NoSuchOutlet, Reading
from pdumqtt.journal import CYCLING, Journal, Resume

log = logging.getLogger(__name__)

# How long an offline PDU waits between probes, at most (a shorter poll_interval wins).
OFFLINE_PROBE_INTERVAL = 30.0
MAX_RETRY_BACKOFF = 60.0


class Publisher(Protocol):
    """Where results go: the MQTT bridge, or a test's recorder."""

    def state(self, pdu: str, port: str, on: bool) -> None: ...
    def availability(self, pdu: str, online: bool) -> None: ...
    def outlet_names(self, pdu: str, names: dict[str, str]) -> None: ...
    def ack(self, command: Command, state: bool | None, error: str | None, started: float) -> None: ...
    def readings(self, pdu: str, port: str | None, values: dict[str, float]) -> None:
        """A meter read of outlet ``port``, or with None of the whole PDU."""


class CallObserver(Protocol):
    """Told about every driver call (the metrics); called on the PDU's worker, so it must be quick."""

    def driver_call(self, pdu: str, method: str, seconds: float, outcome: str) -> None: ...
    def retry(self, pdu: str) -> None: ...


def answer_within(config: Config, command: Command) -> float:
    """Longer than the runner can take to answer ``command``: a queued command runs or is
    refused within max_command_age, and then one cycle is two driver calls, each with its tries."""
    pdu = config.pdus.get(command.pdu)
    if pdu is None:  # removed by a reload since the command was taken: its answer comes at once
        return config.mqtt["max_command_age"] + 5
    backoff = sum(min(pdu.retry_delay * 2 ** i, MAX_RETRY_BACKOFF) for i in range(pdu.retries))
    call = (pdu.retries + 1) * pdu.timeout + backoff
    delay = pdu.cycle_delay if command.delay is None else command.delay
    return config.mqtt["max_command_age"] + 2 * (3 * call + delay) + 5


class CallFailed(Exception):
    """A driver call failed after every try; the message is the ack's error."""


class OutletMissing(CallFailed):
    """The device answered that it has no such outlet (:class:`NoSuchOutlet`): the PDU stays online."""


class _CallTimeout(Exception):
    """A try that got no answer in time; the message says why, after "device timeout: "."""


# What a worker's code hands its thread for each device operation: the driver, the method,
# its arguments, and the monotonic deadline of this try (for the call slot and the call).
_Request = tuple[Driver, str, tuple[Any, ...], float]
# The worker's code is generators that yield a _Request per driver call and are sent the
# answer (or thrown its exception): whichever thread drives them makes the call.
_Calls = Generator[_Request, Any, Any]
_Job = Callable[[], "_Calls | None"]


class _Watchdog:
    """The one thread that gives up on driver calls that overrun, for every PDU of the process.

    A worker calls its driver on its own thread and tells the watchdog the call's deadline
    first. The heap holds at most one entry per worker: a later call of the same worker only
    moves the worker's deadline on, and the entry is pushed again when it falls due, so a
    call costs two short holds of one lock and no wake-up. With no call under way the thread
    only waits. A call past its deadline makes the worker go on on a fresh thread
    (:meth:`PduWorker._continue_on_a_fresh_thread`); the stuck one finds out when the driver returns.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, PduWorker]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread, once: before a worker's first call, so that a call never has to."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="runner-watchdog", daemon=True)
                self._thread.start()

    def watch(self, worker: PduWorker, deadline: float) -> None:
        """``worker``'s thread is about to call its driver until ``deadline``."""
        with self._cond:
            worker._call_deadline = deadline
            if worker._watched_until is not None and worker._watched_until <= deadline:
                return  # its entry falls due first and is pushed again with this deadline
            worker._watched_until = deadline
            seq = next(self._seq)
            heapq.heappush(self._heap, (deadline, seq, worker))
            if self._heap[0][1] == seq:  # sooner than the watchdog means to wake
                self._cond.notify()

    def done(self, worker: PduWorker, generation: int) -> bool:
        """The driver returned on the thread of ``generation``; False if that thread was given up."""
        with self._cond:
            if worker._generation != generation:
                return False
            worker._call_deadline = None
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                overdue = self._overdue()
            for worker in overdue:  # outside the lock: starting a thread takes a while
                try:
                    worker._continue_on_a_fresh_thread()
                except Exception:  # one PDU's trouble must not end the watch over all the others
                    log.exception("pdu %s: could not go on after a stuck call", worker.pdu.name)

    def _overdue(self) -> list[PduWorker]:
        """Wait until some call is past its deadline; those workers, each given a new generation."""
        while True:
            now = time.monotonic()
            overdue = []
            while self._heap and self._heap[0][0] <= now:
                key, _, worker = heapq.heappop(self._heap)
                if worker._watched_until != key:
                    continue  # a sooner entry replaced this one
                worker._watched_until = None
                if worker._call_deadline is None:  # no call under way
                    continue
                if worker._call_deadline > now:  # a later call: watch it until its own deadline
                    self.watch(worker, worker._call_deadline)
                    continue
                worker._call_deadline = None
                worker._generation += 1
                overdue.append(worker)
            if overdue:
                return overdue
            self._cond.wait(self._heap[0][0] - now if self._heap else None)


_watchdog = _Watchdog()


@dataclass
class _Cycle:
    command: Command
    started: float  # when the command's turn came (monotonic)
    on_at: float  # when the outlet goes on again (monotonic)
    delay: float


class _MeterRound:
    """What one PDU's meter rounds read, and what went wrong in the current round.

    A round reads every configured outlet, then the PDU's totals, as far as the driver
    reports them. Failures are logged once per round for outlets and once for the totals.
    """

    def __init__(self, pdu: PduConfig) -> None:
        self.pdu = pdu
        driver = pdu.driver_class
        outlet_kinds, pdu_kinds = driver.readings(pdu.options) if getattr(driver, "can_meter", False) else ((), ())
        self.outlets = bool(outlet_kinds) and pdu.meter_interval > 0
        self.totals = bool(pdu_kinds) and pdu.meter_interval > 0
        self._queue: deque[tuple[str | None, int | None]] = deque()
        self._failures: dict[str, list[str]] = {}

    @property
    def wanted(self) -> bool:
        return self.outlets or self.totals

    @property
    def pending(self) -> bool:
        return bool(self._queue)

    def start(self, absent: set[int] | frozenset[int] = frozenset()) -> None:
        self._failures = {}
        if self.outlets:
            self._queue.extend(item for item in self.pdu.ports.items() if item[1] not in absent)
        if self.totals:
            self._queue.append((None, None))

    def next(self) -> tuple[str | None, int | None]:
        return self._queue.popleft()

    def failed(self, port: str | None, reason: str) -> None:
        self._failures.setdefault("outlet" if port is not None else "pdu", []).append(
            reason if port is None else f"port {port}: {reason}")

    def unsupported(self, port: str | None) -> None:
        """The driver says this device has no such meter: stop asking for it."""
        if port is None:
            self.totals = False
            log.info("pdu %s: the device reports no PDU totals; not asking again", self.pdu.name)
        else:
            self.outlets = False
            self._queue = deque(item for item in self._queue if item[0] is None)
            log.info("pdu %s: the device reports no outlet readings; not asking again", self.pdu.name)

    def finish(self) -> None:
        for kind, reasons in self._failures.items():
            what = f"{len(reasons)} outlet meter reads" if kind == "outlet" else "the PDU meter read"
            log.warning("pdu %s: %s failed (switching goes on): %s", self.pdu.name, what,
                        reasons[0] + (f"; and {len(reasons) - 1} more" if len(reasons) > 1 else ""))
        self._queue.clear()


class PduWorker:
    """The one thread that talks to one PDU.

    Its code runs as one generator, :meth:`_life`, driven by the worker's thread: each driver
    call is yielded to :meth:`_drive`, which makes it on that thread, holding the PDU's call
    slot. A call that overruns its deadline leaves that thread to the driver: the watchdog
    bumps ``_generation`` and a fresh thread drives the generator on from where it stopped,
    with the call's timeout thrown in. Only the thread of the current generation ever
    touches the worker's state.
    """

    may_drive: Callable[[str], bool] = staticmethod(lambda name: True)  # a fleet's gate (pdumqtt/fleet.py)

    def __init__(self, pdu: PduConfig, publisher: Publisher, calls: CallObserver | None = None,
                 journal: Journal | None = None) -> None:
        self.pdu = pdu
        self.publisher = publisher
        self.calls = calls
        self.journal = journal
        self.online: bool | None = None
        self._cond = threading.Condition()
        self._inbox: deque[Command] = deque()
        self._timers: list[tuple[float, int, _Job]] = []
        self._timer_seq = itertools.count()
        self._cycling: dict[int, _Cycle] = {}  # port number -> the cycle under way there
        self._known: dict[int, bool] = {}
        self._names_read = False
        self._absent: set[int] = set()  # ports the device said it lacks: the probe skips them
        self._probe_due = False  # a probe is on the timers: never start a second chain
        self._probe_at = 0.0  # when it is due (monotonic)
        self._driver: Driver | None = None
        # held for the whole of each device operation, by whichever thread makes it: a thread the
        # watchdog gave up on still holds it while stuck in the driver, so no second call starts
        self._slot = threading.Lock()
        self._generation = 0  # the current thread's; the watchdog moves it on to give a thread up
        self._call_deadline: float | None = None  # of the call under way (the watchdog's lock guards both)
        self._watched_until: float | None = None  # the watchdog's heap entry for this worker
        self._stopping = threading.Event()
        self._idle: deque[_Job] = deque()  # jobs that run only when no command waits
        self._meter = _MeterRound(pdu)
        # a reload retiring this worker: (run the queued commands first?, called once the thread ends)
        self._retiring: tuple[bool, Callable[[], None]] | None = None
        self._life_calls = self._life()
        self._started = False
        self._ended = threading.Event()  # the worker's code has run to its end
        self._thread = self._new_thread(None)

    # --- the network thread's side ---------------------------------------------------

    def submit(self, command: Command) -> None:
        with self._cond:
            self._inbox.append(command)
            self._cond.notify()

    @property
    def waiting(self) -> int:
        """Commands received and not yet started."""
        with self._cond:
            return len(self._inbox)

    def start(self) -> None:
        _watchdog.start()
        self._started = True
        self._thread.start()

    def request_stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify()

    def join(self, timeout: float) -> None:
        """Wait for the worker's code to end, on whichever thread it ends (not for a stuck one)."""
        if self._started:
            self._ended.wait(timeout)

    def retire(self, finish_queued: bool, then: Callable[[], None]) -> None:
        """For a reload: start no new command (but every queued one first, when ``finish_queued``);
        once the command under way and any cycle's off time are done, close the driver, end the
        thread and call ``then`` on it. Nothing is refused: what was not started stays queued, for
        :meth:`take_waiting`. Called again, the later call's arguments win."""
        with self._cond:
            self._retiring = (finish_queued, then)
            self._cond.notify()

    def take_waiting(self) -> list[Command]:
        """The commands received and not started, taken out of the queue."""
        with self._cond:
            commands = list(self._inbox)
            self._inbox.clear()
        return commands

    # --- the worker thread -----------------------------------------------------------

    def _life(self) -> _Calls:
        self._schedule_probe(0.0)
        if self._meter.wanted:
            self._schedule(0.0, self._meter_due)
        while (job := self._next_job()) is not None:
            try:
                calls = job()
                if calls is not None:
                    yield from calls
            except Exception:  # a bug must not kill the PDU's only thread
                log.exception("pdu %s: unexpected error", self.pdu.name)
        retiring = self._retiring
        if retiring is not None and not self._stopping.is_set():
            # the worker that replaces this one must not talk to the device while a call is stuck there
            if self._driver is not None:
                yield from self._close(self._driver)
            if self._slot.locked():
                log.warning("pdu %s: a driver call is still stuck on the device; its new worker starts anyway",
                            self.pdu.name)
            retiring[1]()
        else:
            yield from self._shutdown()

    def _new_thread(self, thrown: BaseException | None) -> threading.Thread:
        return threading.Thread(target=self._drive, args=(self._generation, thrown), name=f"pdu-{self.pdu.name}",
                                daemon=True)

    def _drive(self, generation: int, thrown: BaseException | None) -> None:
        """The thread of ``generation``: run :meth:`_life` on, making its driver calls, until it ends
        or the watchdog gives this thread up during a call. ``thrown`` goes in first: the timeout
        of the call a given-up thread was making."""
        answer: Any = None
        while True:
            try:
                request = self._life_calls.throw(thrown) if thrown is not None else self._life_calls.send(answer)
            except StopIteration:
                self._ended.set()
                return
            except BaseException:
                self._ended.set()
                raise
            driver, method, args, deadline = request
            answer, thrown = None, None
            if not self._slot.acquire(timeout=max(0.0, deadline - time.monotonic())):
                thrown = _CallTimeout("a previous call is still stuck on the device")
                continue
            _watchdog.watch(self, deadline)
            try:
                answer = getattr(driver, method)(*args)
            except BaseException as e:  # handed to the worker's code, which decides
                thrown = e
            if not _watchdog.done(self, generation):
                # given up: a fresh thread went on without this answer and waits for the slot
                if method != "close":
                    self._close_driver(driver)  # the next call reconnects
                self._slot.release()
                return
            self._slot.release()

    def _continue_on_a_fresh_thread(self) -> None:
        """On the watchdog's thread, once it has moved ``_generation`` on: the stuck thread is left
        to the driver, and a new one drives the worker's code from the call that overran."""
        stuck, self._thread = self._thread, self._new_thread(_CallTimeout(f"no answer within {self.pdu.timeout:g} s"))
        stuck.name += " (stuck in the driver)"
        log.warning("pdu %s: a driver call overran its %g s timeout; going on without it on a new thread",
                    self.pdu.name, self.pdu.timeout)
        try:
            self._thread.start()
        except RuntimeError:  # the interpreter is shutting down
            log.debug("pdu %s: no new thread", self.pdu.name, exc_info=True)

    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._stopping.is_set():
                if self._timers and self._timers[0][0] <= time.monotonic():
                    return heapq.heappop(self._timers)[2]
                retiring = self._retiring
                if self._inbox and (retiring is None or retiring[0]):
                    command = self._inbox.popleft()
                    return lambda: self._execute(command)
                if retiring is not None:
                    if not self._cycling:
                        return None
                elif self._idle:
                    return self._idle.popleft()
                self._cond.wait(self._timers[0][0] - time.monotonic() if self._timers else None)
        return None

    def _schedule(self, delay: float, job: _Job) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_seq), job))

    def _execute(self, command: Command) -> _Calls:
        started = time.monotonic()
        resume = self.journal.resume_of(command) if self.journal is not None else None
        if resume is not None:
            yield from self._resume(command, resume, started)
            return
        if command.deadline is not None and started > command.deadline:
            self.publisher.ack(command, None, f"expired: not run, older than max_command_age "
                               f"(waited {started - command.received:.1f} s here)", started)
            return
        delay = self.pdu.cycle_delay if command.delay is None else command.delay
        if command.action == "cycle" and delay > self.pdu.max_cycle_delay:
            self.publisher.ack(command, self._known.get(command.number),
                               f"refused: a cycle delay of {delay:g} s is above this PDU's max_cycle_delay "
                               f"({self.pdu.max_cycle_delay:g} s)", started)
            return
        cycle = self._cycling.get(command.number)
        if cycle is not None:
            if command.action in ("on", "off"):
                self._end_cycle(cycle, command)
            elif command.action != "get":
                left = max(0.0, cycle.on_at - started)
                until = time.strftime("%H:%M:%S", time.localtime(time.time() + left))
                self.publisher.ack(command, self._known.get(command.number),
                                   f"refused: port {command.port} is in a cycle until {until} (in {left:.1f} s); "
                                   "send ON or OFF to end it", started)
                return
        if not self.may_drive(self.pdu.name):  # another daemon owns the PDU now (pdumqtt/fleet.py)
            log.warning("pdu %s: %s %s not run here: another daemon drives this PDU now", self.pdu.name,
                        command.action, command.port)
            return
        if command.action != "get" and self.journal is not None:
            self.journal.running(command)  # from here on a crash leaves the outcome unknown
        try:
            if command.action in ("on", "off"):
                state = yield from self._switch(command, command.action == "on")
            elif command.action == "toggle":
                state = yield from self._switch(command, not (yield from self._read(command)))
            elif command.action == "get":
                state = yield from self._read(command)
            else:
                yield from self._start_cycle(command, started, delay)
                return
        except CallFailed as e:
            self.publisher.ack(command, self._known.get(command.number), str(e), started)
            return
        self.publisher.ack(command, state, None, started)

    def _switch(self, command: Command, on: bool) -> _Calls:
        self._switched(command, (yield from self._call("set", command.number, on)))
        self._confirm(command.port, command.number, on)
        return on

    def _read(self, command: Command) -> _Calls:
        if self._build_driver().can_read:
            on = yield from self._call("get", command.number)
            self._confirm(command.port, command.number, on)
            return on
        if command.number in self._known:
            return self._known[command.number]
        raise CallFailed(f"driver {self.pdu.driver} cannot read outlets and port {command.port}'s state "
                         "is not known yet: switch it ON or OFF first")

    def _start_cycle(self, command: Command, started: float, delay: float) -> _Calls:
        native = type(self._build_driver()).cycle is not Driver.cycle
        if native and (yield from self._call("cycle", command.number, delay)):  # the device rebooted the outlet
            self._confirm(command.port, command.number, True)
            self.publisher.ack(command, True, None, started)
            return
        yield from self._switch(command, False)
        if self.journal is not None:
            self.journal.cycling(command, time.time() + delay)
        self._wait_cycle(_Cycle(command, started, time.monotonic() + delay, delay))

    def _wait_cycle(self, cycle: _Cycle) -> None:
        self._cycling[cycle.command.number] = cycle
        self._schedule(max(0.0, cycle.on_at - time.monotonic()), lambda: self._finish_cycle(cycle))

    def _finish_cycle(self, cycle: _Cycle, tries: int | None = None) -> _Calls:
        command, started = cycle.command, cycle.started
        if self._cycling.get(command.number) is not cycle:  # ended early by an ON or OFF
            return
        try:
            self._switched(command, (yield from self._call("set", command.number, True, tries=tries)))
            self._confirm(command.port, command.number, True)
            self.publisher.ack(command, True, None, started)
        except CallFailed as e:
            self.publisher.ack(command, False, f"cycle: switched off, but switching on failed: {e}", started)
        finally:
            del self._cycling[command.number]

    def _end_cycle(self, cycle: _Cycle, by: Command) -> None:
        """An ON or OFF came during the cycle's off time: answer the cycle, then run it."""
        del self._cycling[cycle.command.number]
        off_for = cycle.delay - max(0.0, cycle.on_at - time.monotonic())
        self.publisher.ack(cycle.command, self._known.get(cycle.command.number),
                           f"cycle ended early by a later {by.action.upper()} after {off_for:.1f} s "
                           f"of its {cycle.delay:g} s off", cycle.started)

    def _resume(self, command: Command, resume: Resume, started: float) -> _Calls:
        """Finish a command that a crash of the daemon interrupted; see pdumqtt/journal.py."""
        delay = self.pdu.cycle_delay if command.delay is None else command.delay
        if command.action == "cycle" and resume.state == CYCLING:
            # the off was confirmed: keep the outlet off for what is left of the delay, then on
            left = max(0.0, (resume.on_at or 0.0) - time.time())
            log.info("pdu %s: port %s: finishing a cycle a restart interrupted, on in %.1f s",
                     self.pdu.name, command.port, left)
            self._wait_cycle(_Cycle(command, started, time.monotonic() + left, delay))
            return
        if command.action == "cycle":  # its off was under way: restore power rather than guess
            reason = ("cycle interrupted by a restart of the daemon while switching off: "
                      "power restored, but the outlet may not have been off for the delay")
            try:
                yield from self._switch(command, True)
                self.publisher.ack(command, True, reason, started)
            except CallFailed as e:
                self.publisher.ack(command, None, f"{reason}; switching on failed: {e}", started)
            return
        reason = (f"outcome unknown: the daemon stopped while this {command.action.upper()} ran, "
                  "so the outlet may or may not have switched (not run again)")
        try:
            on = yield from self._read(command)
            self.publisher.ack(command, on, f"{reason}; the outlet reads {'ON' if on else 'OFF'} now", started)
        except CallFailed as e:
            self.publisher.ack(command, None, f"{reason}; reading it back failed: {e}", started)

    def _confirm(self, port: str, number: int, on: bool) -> None:
        self._known[number] = on
        self.publisher.state(self.pdu.name, port, on)

    def _set_online(self, online: bool) -> None:
        if online != self.online:
            self.online = online
            self.publisher.availability(self.pdu.name, online)
            if not online:  # a command found it gone: probe until it answers, even without poll_interval
                self._schedule_probe(min(self.pdu.poll_interval or OFFLINE_PROBE_INTERVAL, OFFLINE_PROBE_INTERVAL))

    def _schedule_probe(self, delay: float) -> None:
        """One probe chain: a probe due sooner (the PDU just went offline) replaces a later one."""
        at = time.monotonic() + delay
        if self._probe_due and self._probe_at <= at:
            return
        self._probe_due, self._probe_at = True, at
        self._schedule(delay, lambda: self._probe_timer(at))

    def _probe_timer(self, at: float) -> _Calls:
        if self._probe_due and self._probe_at == at:  # else an earlier probe replaced this one
            yield from self._probe()

    def _probe(self) -> _Calls:
        """Read every outlet, to publish state and availability without waiting for a command.

        It runs when the PDU is idle: due while commands wait, it joins the idle jobs.
        """
        if self.online and self._driver is not None:
            with self._cond:
                if self._inbox:
                    self._idle.append(self._probe)  # still due: no second chain starts meanwhile
                    return
        self._probe_due = False
        try:
            if self._build_driver().can_read:
                for name, number in self.pdu.ports.items():
                    if number in self._absent:
                        continue
                    try:
                        on = yield from self._call("get", number, tries=1)
                    except OutletMissing as e:  # a config with more ports than the device: not a fault of it
                        self._absent.add(number)
                        log.warning("pdu %s: port %s left out of probes and meter reads: %s", self.pdu.name, name, e)
                        continue
                    if self._known.get(number) != on:
                        self._confirm(name, number, on)
                if not self._names_read:
                    yield from self._read_outlet_names()
            elif self._driver is not None and self._driver.has_ping():
                yield from self._call("ping", tries=1)  # it cannot read outlets, but can say whether it answers
            elif self.online is None:
                self._set_online(True)  # nothing to ask the device: assume it is there until a call fails
        except CallFailed as e:
            log.warning("pdu %s: probe failed: %s", self.pdu.name, e)
        readable = self._driver is not None and (self._driver.can_read or self._driver.has_ping())
        interval = self.pdu.poll_interval
        if not self.online:
            interval = min(interval or OFFLINE_PROBE_INTERVAL, OFFLINE_PROBE_INTERVAL)
        if interval and (readable or self._driver is None):
            self._schedule_probe(interval)

    # --- meter reads -------------------------------------------------------------------

    def _switched(self, command: Command, answer: Any) -> None:
        """A switch whose answer carried the outlet's meter: into the ack and the topics
        (on a PDU that meters: one with meter_interval 0 publishes no readings)."""
        if self.pdu.meter_interval and isinstance(answer, Reading) and (values := answer.values()):
            command.readings = values
            self.publisher.readings(self.pdu.name, command.port, values)

    def _meter_due(self) -> None:
        """The interval is up: queue the round's reads behind any waiting command."""
        if self.online is False:  # the probe brings it back; reads would only time out
            self._schedule(self.pdu.meter_interval, self._meter_due)
            return
        self._meter.start(self._absent)
        self._idle.append(self._meter_step)

    def _meter_step(self) -> _Calls:
        """One read of the round; then the next, again only when no command waits."""
        port, number = self._meter.next()
        method, args = ("meter_outlet", (number,)) if number is not None else ("meter_pdu", ())
        try:
            reading = yield from self._call_once(method, args)
        except (DriverError, CallFailed) as e:
            self._meter.failed(port, str(e) or type(e).__name__)
        except _CallTimeout as e:
            self._meter.failed(port, f"device timeout: {e}")
        else:
            if reading is None:
                self._meter.unsupported(port)
            elif values := reading.values():
                self.publisher.readings(self.pdu.name, port, values)
        if self._meter.pending:
            self._idle.append(self._meter_step)
        else:
            self._meter.finish()
            if self._meter.wanted:
                self._schedule(self.pdu.meter_interval, self._meter_due)

    def _read_outlet_names(self) -> _Calls:
        """Once, after the first good probe: the outlets' names as the device has them."""
        self._names_read = True
        if type(self._driver).outlet_name is Driver.outlet_name:
            return
        names = {}
        try:
            for name, number in self.pdu.ports.items():
                if number in self._absent:
                    continue
                device_name = yield from self._call("outlet_name", number, tries=1)
                if device_name:
                    names[name] = str(device_name)
        except CallFailed as e:
            log.info("pdu %s: outlet names not read: %s", self.pdu.name, e)
        if names:
            self.publisher.outlet_names(self.pdu.name, names)

    # --- driver calls ----------------------------------------------------------------

    def _build_driver(self) -> Driver:
        if self._driver is None:
            try:
                self._driver = self.pdu.driver_class(self.pdu.options, pdu=self.pdu.name, timeout=self.pdu.timeout)
                self._driver.port_names = dict(self.pdu.names_by_number)
            except Exception as e:
                self._set_online(False)
                raise CallFailed(f"driver {self.pdu.driver} could not start: {e}") from None
        return self._driver

    def _call(self, method: str, *args: Any, tries: int | None = None) -> _Calls:
        """Call the driver with the PDU's timeout and retries; CallFailed after the last try."""
        tries = self.pdu.retries + 1 if tries is None else tries
        for attempt in range(tries):
            try:
                result = yield from self._call_once(method, args)
                self._set_online(True)
                return result
            except NoSuchOutlet as e:  # the device answered: no retry, and the PDU is there
                self._set_online(True)
                raise OutletMissing(str(e)) from None
            except DriverError as e:
                reason = str(e) or type(e).__name__
            except _CallTimeout as e:
                reason = f"device timeout: {e}"
            if attempt + 1 < tries:
                if self.calls is not None:
                    self.calls.retry(self.pdu.name)
                backoff = min(self.pdu.retry_delay * 2 ** attempt, MAX_RETRY_BACKOFF)
                log.info("pdu %s: %s %s failed (%s); retrying in %.1f s", self.pdu.name, method, args, reason, backoff)
                if self._stopping.wait(backoff):
                    reason += "; the daemon stopped before the next try"
                    break
        self._set_online(False)
        raise CallFailed(reason + (f" (after {attempt + 1} tries)" if attempt else ""))

    def _call_once(self, method: str, args: tuple[Any, ...]) -> _Calls:
        """One try: yielded to the worker's thread, which makes the call (:meth:`_drive`)."""
        driver = self._build_driver()
        started = time.monotonic()
        try:
            result = yield (driver, method, args, started + self.pdu.timeout)
        except _CallTimeout:
            self._observe(method, started, "timeout")
            raise
        except Exception as e:
            self._observe(method, started, "error")
            yield from self._close(driver)  # reconnect next time
            if isinstance(e, DriverError):
                raise
            raise DriverError(f"{type(e).__name__}: {e}") from None  # an OSError or a driver bug
        self._observe(method, started, "ok")
        return result

    def _observe(self, method: str, started: float, outcome: str) -> None:
        if self.calls is not None:
            self.calls.driver_call(self.pdu.name, method, time.monotonic() - started, outcome)

    def _close(self, driver: Driver) -> _Calls:
        """Close the driver, as a device operation of its own: it too waits for the slot and may overrun."""
        try:
            yield (driver, "close", (), time.monotonic() + self.pdu.timeout)
        except _CallTimeout as e:
            log.debug("pdu %s: closing the driver: %s", self.pdu.name, e)
        except Exception:
            log.debug("pdu %s: closing the driver failed", self.pdu.name, exc_info=True)

    @staticmethod
    def _close_driver(driver: Driver) -> None:
        try:
            driver.close()
        except Exception:
            log.debug("closing driver failed", exc_info=True)

    def _shutdown(self) -> _Calls:
        """Finish what was started, refuse what was not: nothing is lost silently."""
        self._timers.clear()
        self._idle.clear()
        for cycle in list(self._cycling.values()):
            # power the board again now rather than leave it off because we stopped mid-cycle
            yield from self._finish_cycle(cycle, tries=1)
        with self._cond:
            leftovers = list(self._inbox)
            self._inbox.clear()
        now = time.monotonic()
        for command in leftovers:
            self.publisher.ack(command, None, "not run: the daemon is stopping", now)
        # a call still stuck on the device closes the driver itself when it returns
        if self._driver is not None and not self._slot.locked():
            yield from self._close(self._driver)


class Runner:
    """Every PDU's worker; routes each command to its PDU.

    A reload changes the PDUs while they run (:meth:`add`, :meth:`remove`, :meth:`replace`).
    A removed PDU's worker runs what it has queued, then goes; a changed one's stops after the
    command under way, and its queued commands, and those that arrive meanwhile, wait in its
    queue for the new worker. The new worker starts only once the old one's thread has ended,
    so two never drive one device. ``on_gone`` and ``on_restarted`` are told, on the old
    worker's thread, once that has happened.
    """

    def __init__(self, config: Config, publisher: Publisher, calls: CallObserver | None = None,
                 journal: Journal | None = None, pdus: Iterable[PduConfig] | None = None) -> None:
        self.publisher, self.calls, self.journal = publisher, calls, journal
        self.workers = {pdu.name: PduWorker(pdu, publisher, calls, journal)
                        for pdu in (config.pdus.values() if pdus is None else pdus)}
        self.on_gone: Callable[[PduConfig], None] = lambda pdu: None
        self.on_restarted: Callable[[PduConfig, PduConfig], None] = lambda old, new: None
        # the lock makes "find the worker, queue the command" one step against a hand-over
        self._lock = threading.RLock()
        self._next: dict[str, PduConfig | None] = {}  # retiring workers: what follows (None: nothing)
        self._started = self._stopping = False
        self.may_drive: Callable[[str], bool] = PduWorker.may_drive  # a fleet's gate for the workers it adds

    def submit(self, command: Command) -> None:
        with self._lock:
            worker = self.workers.get(command.pdu)
            if worker is not None:
                worker.submit(command)
                return
        self.publisher.ack(command, None, f"unknown PDU {command.pdu!r}: removed from the configuration "
                                          "by a reload", time.monotonic())

    def waiting(self, name: str) -> int:
        """Commands received for PDU ``name`` and not yet started."""
        worker = self.workers.get(name)
        return worker.waiting if worker is not None else 0

    def start(self) -> None:
        with self._lock:
            self._started = True
            for worker in self.workers.values():
                worker.start()

    def add(self, pdu: PduConfig) -> None:
        """Serve a new PDU (one being removed gets this config once its old worker has gone)."""
        self._change(pdu.name, pdu)

    def replace(self, pdu: PduConfig) -> None:
        """Restart a PDU with a new config after the command under way; nothing queued is lost."""
        self._change(pdu.name, pdu)

    def remove(self, name: str) -> None:
        """Stop serving a PDU once it has run what it has queued."""
        self._change(name, None)

    def _change(self, name: str, pdu: PduConfig | None) -> None:
        with self._lock:
            if self._stopping:
                return
            worker = self.workers.get(name)
            if worker is None:
                if pdu is not None:
                    self._new_worker(pdu, [])
                return
            if not self._started:  # nothing runs yet: nothing to hand over
                if pdu is None:
                    del self.workers[name]
                else:
                    self._new_worker(pdu, worker.take_waiting())
                return
            self._next[name] = pdu
            worker.retire(pdu is None, lambda: self._retired(worker))

    def _new_worker(self, pdu: PduConfig, commands: list[Command]) -> list[tuple[Command, str]]:
        """Under the lock: the PDU's new worker, with the commands handed over; those it cannot take."""
        worker = self.workers[pdu.name] = PduWorker(pdu, self.publisher, self.calls, self.journal)
        worker.may_drive = self.may_drive
        refused = []
        for command in commands:
            if pdu.resolve_port(command.port) == (command.port, command.number):
                worker.submit(command)
            else:  # the port went, or its name now means another outlet: never guess which was meant
                refused.append((command, f"not run: a reload changed PDU {pdu.name!r}, and port "
                                         f"{command.port!r} (outlet {command.number}) is no longer in it"))
        if self._started:
            worker.start()
        return refused

    def _retired(self, old: PduWorker) -> None:
        """On the old worker's thread, once it has ended: hand its queue to what follows it."""
        name = old.pdu.name
        with self._lock:
            commands = old.take_waiting()
            pdu = self._next.pop(name, None)
            if self._stopping or pdu is None:
                del self.workers[name]
                reason = ("not run: the daemon is stopping" if self._stopping else
                          f"unknown PDU {name!r}: removed from the configuration by a reload")
                refused = [(command, reason) for command in commands]
            else:
                refused = self._new_worker(pdu, commands)
            if not self._stopping:  # under the lock: a later reload's worker for this name comes after
                try:
                    if pdu is None:
                        self.on_gone(old.pdu)
                    else:
                        self.on_restarted(old.pdu, pdu)
                except Exception:
                    log.exception("pdu %s: reload hook failed", name)
        now = time.monotonic()
        for command, reason in refused:
            self.publisher.ack(command, None, reason, now)
        if pdu is None:
            log.info("pdu %s: removed", name)
        else:
            log.info("pdu %s: restarted with its new configuration, %d queued commands handed over", name,
                     len(commands) - len(refused))

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopping = True
            workers = list(self.workers.values())
        for worker in workers:
            worker.request_stop()
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
