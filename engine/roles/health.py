"""How a node is doing, cheaply: one bounded look at Redis at most once a second (``Probe``),
shared by ``GET /model``, ``GET /metrics`` and ``GET /health/ready``, and the readiness
verdict built from it and the roles' states (``readiness``).

The stream lag is counted without reading the stream: Redis 6.2 has no XINFO lag, so the
probe sends one ``XRANGE (<last learned id> + COUNT max_lag_events + 1`` (pipelined with a
PING, under a 1 s timeout) and keeps the ids it got. Its cost is bounded by the readiness
threshold (at most ``ops.max_lag_events`` + 1 entries, none when the learner is caught up),
and it runs at most once per ``ttl_s`` whatever the request rate. Between probes the lag is
recounted from the kept ids against the model's current position (a bisection), so an
event learned after the probe no longer counts; entries appended since the probe show up at
the next one (at most ``ttl_s`` later). ``oldest_ms`` is how long the oldest unlearned entry
has waited, from the time in its id.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from engine.roles.live_model import stream_id_key
from engine.roles.supervisor import RUNNING, Supervised
from engine.storage.feedback_log import FeedbackLog
from engine.storage.outages import describe


@dataclass(frozen=True)
class Lag:
    """Stream entries waiting to be learned.

    Attributes:
        events: how many (at most ``limit``; None when Redis did not answer).
        capped: there are more than ``events``.
        oldest_ms: how long the oldest of them has waited (ms, from its id), None if none.
    """

    events: int | None
    capped: bool = False
    oldest_ms: int | None = None


@dataclass
class _Look:
    at: float = 0.0  # monotonic time of the probe (0: never)
    redis_error: str | None = "not probed yet"
    ids: list = field(default_factory=list)  # sortable keys of the entries after the position then
    capped: bool = False
    answered: bool = False


class Probe:
    """PING + a bounded XRANGE, at most once per ``ttl_s``, under ``timeout_s``.

    Args:
        redis: the node's client.
        stream: the feedback log.
        position: the model's last learned stream id now.
        limit: entries counted at most (``ops.max_lag_events`` + 1).
        ttl_s: how long a look is reused (s).
        timeout_s: a look that takes longer counts as Redis not answering (s).
    """

    def __init__(self, redis: Redis, stream: FeedbackLog, position: Callable[[], str | None], limit: int,
                 ttl_s: float = 1.0, timeout_s: float = 1.0) -> None:
        self.redis = redis
        self.stream = stream
        self.position = position
        self.limit = limit
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._look = _Look()
        self._running: asyncio.Task | None = None

    async def refresh(self, force: bool = False) -> None:
        """Look again unless the last look is younger than ``ttl_s`` (concurrent callers
        share one look)."""
        if not force and time.monotonic() - self._look.at < self.ttl_s:
            return
        if self._running is None:
            self._running = asyncio.ensure_future(self._probe())
            self._running.add_done_callback(lambda _: setattr(self, "_running", None))
        await asyncio.shield(self._running)

    async def _probe(self) -> None:
        after = self.position()
        look = _Look(at=time.monotonic())
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.ping()
                self.stream.queue_unlearned(pipe, after, self.limit)
                pong, rows = await asyncio.wait_for(pipe.execute(raise_on_error=False), self.timeout_s)
        except asyncio.TimeoutError:
            look.redis_error = f"no answer within {self.timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure to reach Redis is reported, never raised
            look.redis_error = describe(exc)
        else:
            look.redis_error = describe(pong) if isinstance(pong, Exception) else None
            if not isinstance(rows, Exception):
                look.answered = True
                look.ids = [stream_id_key(i.decode() if isinstance(i, bytes) else i) for i, _ in rows]
                look.capped = len(rows) >= self.limit
            elif look.redis_error is None:
                look.redis_error = describe(rows)
        self._look = look

    @property
    def redis_error(self) -> str | None:
        """Why Redis did not answer the last look properly (None: it did)."""
        return self._look.redis_error

    def lag(self) -> Lag:
        """The lag by the last look, recounted against the model's position now."""
        look = self._look
        if not look.answered:
            return Lag(None)
        position = self.position()
        waiting = look.ids[bisect.bisect_right(look.ids, stream_id_key(position)):] if position else look.ids
        oldest = None if not waiting else max(0, int(time.time() * 1000) - waiting[0][0])
        return Lag(len(waiting), look.capped and len(waiting) == len(look.ids), oldest)


def role_reasons(roles: list[Supervised]) -> list[str]:
    """Why roles are not ready: one line per role that is not running."""
    out = []
    for role in roles:
        if role.state != RUNNING:
            why = role.outage or role.last_error or ""
            out.append(f"{role.name} {role.state}" + (f": {why}" if why else ""))
    return out


def readiness(roles: list[Supervised], probe: Probe, max_lag_events: int,
              unsnapshotted_s: float | None = None, max_snapshot_age_s: float | None = None) -> list[str]:
    """Reasons the node is not ready (empty: ready), from its roles' states and the last
    probe: a role not running (restarting, failed, paused by a Redis outage), Redis not
    answering, more than ``max_lag_events`` entries waiting to be learned, or (learner only:
    ``unsnapshotted_s`` given) learned events that have waited for a snapshot longer than
    ``max_snapshot_age_s``."""
    reasons = role_reasons(roles)
    if probe.redis_error:
        reasons.append(f"redis: {probe.redis_error}")
    lag = probe.lag()
    if lag.events is not None and (lag.events > max_lag_events or lag.capped):
        reasons.append(f"stream lag: more than {max_lag_events} entries wait to be learned "
                       f"(the oldest for {(lag.oldest_ms or 0) / 1000:.1f} s)")
    if unsnapshotted_s is not None and max_snapshot_age_s is not None and unsnapshotted_s > max_snapshot_age_s:
        reasons.append(f"snapshot: learned events have waited {unsnapshotted_s:.0f} s for a snapshot "
                       f"(more than {max_snapshot_age_s:g} s)")
    return reasons
