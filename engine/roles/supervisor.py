"""Running a role's step forever: a Redis outage is waited out with backoff, never a dead
task; any other exception is a failure: logged with its traceback, counted, and the role
restarts with backoff, until ``max_failures`` in a row make it failed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from engine.storage.outages import describe, is_outage

log = logging.getLogger("freshrec.roles")

_BACKOFF_S = (0.05, 1.0)  # first and longest wait between retries of an outage
_RESTART_BACKOFF_S = (0.1, 5.0)  # first and longest wait before a restart after a failure

STARTING, RUNNING, OUTAGE, RESTARTING, FAILED, STOPPED = "starting", "running", "outage", "restarting", "failed", \
    "stopped"
"""A role's states (``Supervised.state``); only ``running`` is ready."""


class Supervised:
    """Calls ``step`` until cancelled or failed.

    * A Redis outage (``engine.storage.outages.is_outage``: unreachable, timing out,
      LOADING, READONLY, MISCONF, OOM, ...) that ``recover`` does not handle pauses the
      role: ``state`` turns ``outage``, ``redis_ok`` False, the error is logged once, and the
      step is retried after a backoff that doubles from 50 ms to 1 s; the first step that
      succeeds again turns it ``running``.
    * Any other exception (a bug, a Redis error that retrying will not cure, such as a key
      of the wrong type) is logged with its traceback and counted in ``restarts``; after a
      backoff (100 ms doubling to 5 s) ``restart`` rebuilds the role's state and the step
      runs again. ``max_failures`` failures without a successful step in between make the
      role ``failed``: ``run`` returns and ``failed`` is set (``freshrec learner`` then exits
      non-zero; ``/health/ready`` answers 503).

    Args:
        name: the role, for logs and ``/health/ready`` ("learner", "replica", "checkpointer").
        step: one unit of work (a batch read and applied, a checkpoint).
        recover: optional ``async callable(exc) -> bool`` for Redis errors; True when it
            repaired the cause (e.g. recreated a missing consumer group) and the step can
            run again at once.
        restart: optional ``async callable(exc)`` run before the step is retried after a
            failure (e.g. restore the newest snapshot and replay after it).
        max_failures: consecutive failures that make the role failed (``ops.max_failures``).
    """

    def __init__(self, name: str, step: Callable[[], Awaitable[object]],
                 recover: Callable[[RedisError], Awaitable[bool]] | None = None,
                 restart: Callable[[BaseException], Awaitable[None]] | None = None, max_failures: int = 5) -> None:
        self.name = name
        self.step = step
        self.recover = recover
        self.restart = restart
        self.max_failures = max_failures
        self.state = STARTING
        self.redis_ok = True
        self.outage: str | None = None
        self.restarts = 0
        self.failures = 0
        self.last_error: str | None = None
        self.failed = asyncio.Event()
        self._restart_due: BaseException | None = None

    def status(self) -> dict:
        """``{state, restarts, consecutive_failures, last_error, outage}`` for ``GET /model``."""
        return {"state": self.state, "restarts": self.restarts, "consecutive_failures": self.failures,
                "last_error": self.last_error, "outage": self.outage}

    async def run(self) -> None:
        """Run until cancelled (``state`` becomes ``stopped``) or failed (returns)."""
        backoff, restart_backoff = _BACKOFF_S[0], _RESTART_BACKOFF_S[0]
        if self.state == STARTING:
            self.state = RUNNING
        try:
            while True:
                try:
                    if self._restart_due is not None and self.restart is not None:
                        await self.restart(self._restart_due)
                    self._restart_due = None
                    await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - sorted into outages and failures below
                    if isinstance(exc, RedisError) and self.recover is not None and not self._restart_due:
                        try:
                            if await self.recover(exc):
                                continue
                        except RedisError as again:
                            exc = again
                    if is_outage(exc):
                        if self.redis_ok:
                            log.error("redis unavailable, %s paused: %s", self.name, describe(exc))
                        self.redis_ok, self.state, self.outage = False, OUTAGE, describe(exc)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, _BACKOFF_S[1])
                        continue
                    self.failures += 1
                    self.restarts += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.error("%s failed (%d in a row, restart %d): %s", self.name, self.failures, self.restarts,
                              self.last_error, exc_info=exc)
                    if self.failures >= self.max_failures:
                        self.state = FAILED
                        log.critical("%s failed %d times in a row; giving up (last: %s)", self.name, self.failures,
                                     self.last_error)
                        self.failed.set()
                        return
                    self.state = RESTARTING
                    self._restart_due = exc
                    await asyncio.sleep(restart_backoff)
                    restart_backoff = min(restart_backoff * 2, _RESTART_BACKOFF_S[1])
                    continue
                if not self.redis_ok:
                    log.warning("redis reachable again; %s resumed", self.name)
                self.redis_ok, self.state, self.outage = True, RUNNING, None
                self.failures = 0
                backoff, restart_backoff = _BACKOFF_S[0], _RESTART_BACKOFF_S[0]
        except asyncio.CancelledError:
            self.state = STOPPED
            raise
