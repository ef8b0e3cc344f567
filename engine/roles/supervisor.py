"""Running a role's step forever: a Redis error is an outage to wait out with backoff, never
a dead task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

log = logging.getLogger("freshrec.roles")

_BACKOFF_S = (0.05, 1.0)  # first and longest wait between retries


class Supervised:
    """Calls ``step`` until cancelled. A ``RedisError`` (unreachable, READONLY, LOADING,
    MISCONF, OOM, ...) that ``recover`` does not handle pauses the role: ``redis_ok`` turns
    False, the error is logged once, and the step is retried after a backoff that doubles
    from 50 ms to 1 s; the first step that succeeds again turns it True.

    Args:
        name: the role, for the log ("learner", "replica").
        step: one unit of work (a batch read and applied).
        recover: optional ``async callable(exc) -> bool``; True when it repaired the cause
            (e.g. recreated a missing consumer group) and the step can run again at once.
    """

    def __init__(self, name: str, step: Callable[[], Awaitable[object]],
                 recover: Callable[[RedisError], Awaitable[bool]] | None = None) -> None:
        self.name = name
        self.step = step
        self.recover = recover
        self.redis_ok = True

    async def run(self) -> None:
        """Run forever (until cancelled)."""
        backoff = _BACKOFF_S[0]
        while True:
            try:
                await self.step()
            except RedisError as exc:
                if self.recover is not None and await self.recover(exc):
                    continue
                if self.redis_ok:
                    log.error("redis unavailable, %s paused: %s", self.name, exc)
                self.redis_ok = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_S[1])
                continue
            if not self.redis_ok:
                log.warning("redis reachable again; %s resumed", self.name)
            self.redis_ok = True
            backoff = _BACKOFF_S[0]
