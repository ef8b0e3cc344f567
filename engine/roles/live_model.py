"""The live model of one process: the guarded recommender that serves and learns, behind one
write lock, applying events in time slices so requests on the same event loop keep flowing.

The learner and the replica follower both apply events through ``LiveModel.apply``; the
checkpointer captures and swaps it under the same lock; the API reads it without the lock
(reads never create state) and waits on it for read-your-writes (``wait_learned``).

``apply`` takes stream entries one by one: an entry that does not decode, that the intake
would have refused (``Semantics.check_entry``: unknown type, NaN, an event time beyond its
acceptance time + ``max_clock_skew_s``, ...) or whose application raises ``ValueError`` /
``KeyError`` is set aside as a ``DeadLetter`` (the learner writes it to ``{prefix}:dead``, a
replica only counts it) and learning goes on. Any other exception means the model may be
half-updated: ``broken`` is set (no checkpoint captures it) and the exception propagates,
so the supervisor restarts the role from the newest snapshot (``rebuild``); an entry that
crashes it twice in a row is quarantined (``quarantine``) and dead-lettered at the next pass.

A forgetting-guard validation (``GuardedRecommender.validation_steps``: rebuild the last good
model, score reservoir pairs and established users on both, maybe roll back; seconds at 100k
items) is part of the write it closes: it runs under the same lock, before the next event is
applied, so nothing is learned until its verdict and no checkpoint sees half of it (the
single writer: a validation may replace the model, and events learned meanwhile would have to
be learned again on the rollback target). It is driven in slices of ``validation_slice_s``
(1 ms): after each, the event loop serves what arrived (``_let_requests_run``). The cost is
freshness: events accepted during a validation take effect after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from engine.core.events import Event, InvalidEvent, stream_id_key, to_fields  # noqa: F401  (stream_id_key re-exported)
from engine.core.guard import GuardedRecommender
from engine.core.recommender import Recommender
from engine.core.steps import Steps, run
from engine.roles.freshness import LatencyWindow
from engine.storage.dead_letters import DeadLetter
from engine.storage.feedback_log import StreamEntry

log = logging.getLogger("freshrec.learner")

# The learner shares the event loop with the API: it applies events in time slices and
# yields between them, so a request waits at most one slice. When every loop iteration also
# carries a full load of requests (32 in flight take ~15 ms), a fixed 32-event chunk per
# iteration capped learning at ~1.5k events/s while /recommend ran at saturation (measured,
# load/bench.py). Slices are therefore timed, and longer while the learner is behind, so it
# catches up instead of falling further behind. "Behind" is a full batch, or a batch whose
# oldest event was accepted more than _BEHIND_S ago: with the full-batch rule alone the lag
# settled just under one batch (1,024 events, ~0.5 s at 2k events/s with /recommend
# saturated: feedback-to-effect p50 <= 0.5 s, p99 <= 1 s in load/bench.py's
# recommend_learning row).
_SLICE_S = 0.002  # per slice, stream caught up
_SLICE_BACKLOG_S = 0.008  # per slice, stream behind
_BEHIND_S = 0.05  # a batch whose oldest event waited longer than this gets backlog slices
_CHECK_EVERY = 8  # events between clock reads
_VALIDATION_SLICE_S = 0.001  # per slice of a guard validation (a step, e.g. one user ranked, may overrun it)
_YIELDS = 3  # loop iterations a validation slice gives up: enough for a request that arrived during it to run


def _accepted_at(item) -> float:
    if isinstance(item, StreamEntry):
        return item.event.received_at if item.event is not None else (item.stream_time_s or 0.0)
    return item.received_at


def behind(events: list, count: int) -> bool:
    """Whether a batch read with ``count`` shows the learner behind: it came back full, or
    its oldest event was accepted more than ``_BEHIND_S`` ago (wall clock, ``received_at``).
    ``events``: ``Event``s or ``StreamEntry``s."""
    return len(events) >= count or (bool(events) and time.time() - _accepted_at(events[0]) > _BEHIND_S)


class LiveModel:
    """The process's ``GuardedRecommender`` and everything that changes it.

    Args:
        guarded: the model behind the forgetting guard.
        max_clock_skew_s: an entry whose event time is beyond its acceptance time + this
            (s) is dead-lettered (``EngineConfig.max_clock_skew_s``, the intake's bound).
        factory: builds a fresh ``GuardedRecommender`` for ``rebuild`` (default: one with
            ``guarded``'s configuration and no slate sink).

    Attributes:
        lock: one writer at a time (learning batches, checkpoint captures, restores).
        freshness: accepted -> learned latency of the last 100k events (ms).
        on_learned: optional ``callable(seconds)`` per learned event (a Prometheus histogram).
        dead_letters: distinct stream entries set aside (not decodable, refused, not
            applicable) by this process.
        broken: an unexpected exception left the model possibly half-updated; cleared by
            ``rebuild`` / ``swap``.
        crashed_on: id of the entry whose application raised last, if any.
        quarantine: entry id -> error, for entries that crashed the role twice in a row.
        validations: the last 100 guard validations, ``(start, end, slices)`` (unix s, and
            how many slices the event loop interleaved with requests).
        validation_slice_s: seconds per validation slice; None runs a validation in one go
            on the event loop (what freshrec did before validations were sliced).
    """

    validation_slice_s: float | None = _VALIDATION_SLICE_S

    def __init__(self, guarded: GuardedRecommender, max_clock_skew_s: float = 300.0,
                 factory: Callable[[], GuardedRecommender] | None = None) -> None:
        self.guarded = guarded
        self.max_clock_skew_s = max_clock_skew_s
        self._factory = factory or (lambda: GuardedRecommender(guarded.recommender.config, guarded.guard))
        self.lock = asyncio.Lock()
        self.freshness = LatencyWindow()
        self.on_learned: Callable[[float], None] | None = None
        self.dead_letters = 0
        self.broken = False
        self.crashed_on: str | None = None
        self.quarantine: dict[str, str] = {}
        self._counted_upto: tuple[int, int] = (-1, -1)
        self.validations: list[tuple[float, float, int]] = []
        self._crashed_before: str | None = None
        self._progress = asyncio.Event()

    @property
    def errors(self) -> int:
        """Former name of ``dead_letters`` (``GET /model``'s ``learner_errors``)."""
        return self.dead_letters

    @property
    def recommender(self) -> Recommender:
        """The live model (the guard may swap it on a rollback)."""
        return self.guarded.recommender

    def swap(self, recommender: Recommender) -> None:
        """Serve and learn with ``recommender`` from now on, the guard reset around it (no
        guard state to restore); the caller holds ``lock``."""
        self.guarded.reset(recommender)
        self.broken = False
        self._wake()

    def restore(self, recommender: Recommender, guard_state) -> None:
        """Serve and learn with ``recommender`` and the guard state decoded from the same
        snapshot (``GuardedRecommender.decode_state``; None: reset the guard around it); the
        caller holds ``lock``."""
        self.guarded.adopt(recommender, guard_state)
        self.broken = False
        self._wake()

    def rebuild(self) -> None:
        """Start over from an empty guarded model (its guard state too), as a new process
        would, before a snapshot is restored into it (``swap``) and the stream replayed
        after it; the caller holds ``lock``. The quarantine is kept."""
        self.guarded = self._factory()
        self.broken = False
        self._wake()

    def quarantine_repeated_crash(self, exc: BaseException, role: str) -> None:
        """At a restart of ``role`` after ``exc``: quarantine the entry that crashed it twice
        in a row (``crashed_on`` at this restart and the one before), so the replay sets it
        aside (stage ``crash``) instead of applying it a third time."""
        crashed = self.crashed_on
        if crashed is not None and crashed == self._crashed_before:
            self.quarantine[crashed] = f"crashed the {role} twice: {type(exc).__name__}: {exc}"
            log.error("stream entry %s crashed the %s twice; it will be set aside", crashed, role)
        self._crashed_before = crashed

    def _reject(self, entry_id: str | None, stage: str, error: str, fields: dict) -> DeadLetter:
        if entry_id is not None:
            self.guarded.recommender.last_event_id = entry_id  # handled: learning goes on after it
            key = stream_id_key(entry_id)
            if key > self._counted_upto:  # a replay after a restart does not count (or log) it twice
                self._counted_upto = key
                self.dead_letters += 1
                log.error("dead letter %s (%s): %s", entry_id, stage, error)
        return DeadLetter(entry_id or "", stage, error, fields)

    async def apply(self, events: list, backlog: bool = False) -> list[DeadLetter]:
        """Apply ``events`` (``StreamEntry``s as read, or ``Event``s) in stream order through
        the guard, yielding to the event loop after every time slice (``_SLICE_S``, or
        ``_SLICE_BACKLOG_S`` when ``backlog``). The caller holds ``lock``.

        Returns:
            the entries set aside, in order: not decodable (stage ``decode``), refused by
            ``Semantics.check_entry`` (``check``), ``ValueError`` / ``KeyError`` from applying
            (``apply``), quarantined (``crash``). Each is counted (``dead_letters``) and
            logged once, and the model's position moves past it.

        Raises:
            Exception: anything else raised while applying an entry (a bug): ``broken`` and
                ``crashed_on`` are set and the exception carries a note naming the entry.
        """
        guarded = self.guarded
        check = guarded.recommender.semantics.check_entry
        skew = self.max_clock_skew_s
        quarantine = self.quarantine
        rejected: list[DeadLetter] = []
        budget = _SLICE_BACKLOG_S if backlog else _SLICE_S
        clock = time.perf_counter
        slice_end = clock() + budget
        now = time.time()
        for n, item in enumerate(events, 1):
            if isinstance(item, StreamEntry):
                event, entry_id, stream_time = item.event, item.entry_id, item.stream_time_s
                if event is None:
                    rejected.append(self._reject(entry_id, "decode", item.error or "undecodable", item.fields))
                    continue
            else:
                event, entry_id, stream_time = item, item.event_id, None
            if quarantine and entry_id in quarantine:
                rejected.append(self._reject(entry_id, "crash", quarantine[entry_id], _raw(item)))
                continue
            try:
                check(event, skew, stream_time)
            except InvalidEvent as exc:
                rejected.append(self._reject(entry_id, "check", f"would have been refused at intake: {exc}",
                                             _raw(item)))
                continue
            try:
                validation = guarded.apply(event, defer=True)
            except (ValueError, KeyError) as exc:  # never crash on one bad entry
                rejected.append(self._reject(entry_id, "apply", f"{type(exc).__name__}: {exc}", _raw(item)))
                continue
            except Exception as exc:
                self.broken, self.crashed_on = True, entry_id
                exc.add_note(f"while applying stream entry {entry_id}")
                raise
            if validation is not None:
                try:
                    await self._validate(validation)
                except Exception as exc:
                    self.broken, self.crashed_on = True, entry_id
                    exc.add_note(f"while validating the guard window closed by stream entry {entry_id}")
                    raise
                slice_end = clock() + budget
                now = time.time()
            lag_s = now - event.received_at
            self.freshness.add(lag_s * 1000.0)
            if self.on_learned is not None:
                self.on_learned(lag_s)
            if n % _CHECK_EVERY == 0 and n < len(events) and clock() >= slice_end:
                self._wake()
                await asyncio.sleep(0)
                slice_end = clock() + budget
                now = time.time()
        self._wake()
        return rejected

    async def _validate(self, steps: Steps[dict]) -> None:
        """Drive a guard validation to its verdict, giving the event loop back after every
        ``validation_slice_s`` of it (or not at all when that is None)."""
        started, slices = time.time(), 1
        budget = self.validation_slice_s
        if budget is None:
            run(steps)
        else:
            clock = time.perf_counter
            slice_end = clock() + budget
            for _ in steps:
                if clock() >= slice_end:
                    await _let_requests_run()
                    slices += 1
                    slice_end = clock() + budget
        self.validations = self.validations[-99:] + [(started, time.time(), slices)]

    def learned(self, event_id: str) -> bool:
        """Has the event with this stream id been applied?"""
        last = self.recommender.last_event_id
        return last is not None and stream_id_key(last) >= stream_id_key(event_id)

    async def wait_learned(self, event_id: str, timeout_s: float) -> bool:
        """Read-your-writes: wait (without polling) until ``event_id`` is applied or
        ``timeout_s`` passes; whether it was."""
        deadline = time.monotonic() + timeout_s
        while not self.learned(event_id):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except asyncio.TimeoutError:
                return self.learned(event_id)
        return True

    def _wake(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()


def _raw(item: StreamEntry | Event) -> dict:
    return item.fields if isinstance(item, StreamEntry) else to_fields(item)


async def _let_requests_run() -> None:
    """Give the event loop ``_YIELDS`` iterations: a request whose bytes arrived during the
    last slice is parsed in the first and its task runs before this coroutine resumes (each
    ``sleep(0)`` queues this task behind what is ready)."""
    for _ in range(_YIELDS):
        await asyncio.sleep(0)
