"""The live model of one process: the guarded recommender that serves and learns, behind one
write lock, applying events in time slices so requests on the same event loop keep flowing.

The learner and the replica follower both apply events through ``LiveModel.apply``; the
checkpointer captures and swaps it under the same lock; the API reads it without the lock
(reads never create state) and waits on it for read-your-writes (``wait_learned``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from engine.core.events import stream_id_key  # noqa: F401  (re-exported: the API imports it from here)
from engine.core.guard import GuardedRecommender
from engine.core.recommender import Recommender
from engine.roles.freshness import LatencyWindow

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


def behind(events: list, count: int) -> bool:
    """Whether a batch read with ``count`` shows the learner behind: it came back full, or
    its oldest event was accepted more than ``_BEHIND_S`` ago (wall clock, ``received_at``)."""
    return len(events) >= count or (bool(events) and time.time() - events[0].received_at > _BEHIND_S)


class LiveModel:
    """The process's ``GuardedRecommender`` and everything that changes it.

    Args:
        guarded: the model behind the forgetting guard.

    Attributes:
        lock: one writer at a time (learning batches, checkpoint captures, restores).
        freshness: accepted -> learned latency of the last 100k events (ms).
        on_learned: optional ``callable(seconds)`` per learned event (a Prometheus histogram).
        errors: stream entries skipped because they could not be applied.
    """

    def __init__(self, guarded: GuardedRecommender) -> None:
        self.guarded = guarded
        self.lock = asyncio.Lock()
        self.freshness = LatencyWindow()
        self.on_learned: Callable[[float], None] | None = None
        self.errors = 0
        self._progress = asyncio.Event()

    @property
    def recommender(self) -> Recommender:
        """The live model (the guard may swap it on a rollback)."""
        return self.guarded.recommender

    def swap(self, recommender: Recommender) -> None:
        """Serve and learn with ``recommender`` from now on (a restore or an adopted
        snapshot); the caller holds ``lock``."""
        self.guarded.reset(recommender)
        self._wake()

    async def apply(self, events: list, backlog: bool = False) -> None:
        """Apply ``events`` in stream order through the guard, yielding to the event loop
        after every time slice (``_SLICE_S``, or ``_SLICE_BACKLOG_S`` when ``backlog``).
        An entry that cannot be applied is counted in ``errors``, logged and skipped. The
        caller holds ``lock``."""
        guarded = self.guarded
        budget = _SLICE_BACKLOG_S if backlog else _SLICE_S
        clock = time.perf_counter
        slice_end = clock() + budget
        now = time.time()
        for n, event in enumerate(events, 1):
            try:
                guarded.apply(event)
            except (ValueError, KeyError) as exc:  # never crash on one bad entry
                self.errors += 1
                log.error("skipped stream entry %s: %s", event.event_id, exc)
                guarded.recommender.last_event_id = event.event_id
                continue
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
