"""This process's wall clock against Redis's: acceptance times (``Event.received_at``) come
from the process that accepts an event, stream ids from Redis, and the learner refuses an
entry accepted more than ``max_clock_skew_s`` after its stream id. A server whose clock is
off by more than that must not accept events (they would be dead-lettered after their 202):
``ClockWatch`` measures the offset once a second (``TIME``), the intake answers 503 while it
is too large, and ``/health/ready`` names it."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis


class ClockWatch:
    """Offset of ``time.time()`` from Redis's ``TIME`` (s; > 0: this clock is ahead).

    Args:
        redis: the node's client.
        max_skew_s: the tolerated offset (``EngineConfig.max_clock_skew_s``).
        every_s: seconds between measurements in ``step``.
    """

    def __init__(self, redis: Redis, max_skew_s: float, every_s: float = 1.0) -> None:
        self.redis = redis
        self.max_skew_s = max_skew_s
        self.every_s = every_s
        self.offset_s: float | None = None

    async def measure(self) -> float:
        """One ``TIME`` round trip; the offset against its midpoint (s).

        Raises:
            redis.exceptions.RedisError: Redis unavailable (the offset is kept).
        """
        before = time.time()
        seconds, micros = await self.redis.time()
        after = time.time()
        self.offset_s = (before + after) / 2 - (seconds + micros / 1e6)
        return self.offset_s

    async def step(self) -> None:
        """Measure, then wait ``every_s`` (the supervised loop of the ``clock`` role)."""
        await self.measure()
        await asyncio.sleep(self.every_s)

    def error(self) -> str | None:
        """Why this process may not stamp acceptance times now (None: it may)."""
        off = self.offset_s
        if off is None or abs(off) <= self.max_skew_s:
            return None
        return (f"this server's clock is {abs(off):.0f} s {'ahead of' if off > 0 else 'behind'} Redis's (more than "
                f"engine.max_clock_skew_s = {self.max_skew_s:g} s): feedback is refused until the clocks agree (NTP)")
