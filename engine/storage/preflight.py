"""Checks of the Redis a process is about to use, before it starts: is it there (waiting a
bounded time for it), and will it keep what freshrec writes (no eviction of arbitrary keys).
A failed check is a ``StartupError`` whose message says what to change; the command exits
non-zero with it."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.storage.outages import describe, is_outage

log = logging.getLogger("freshrec.redis")

_BACKOFF_S = (0.1, 2.0)  # first and longest wait between connection attempts


class StartupError(RuntimeError):
    """The process must not start; the message says why and what to change."""


class RedisUnavailable(StartupError):
    """Redis did not answer within the start-up window (``ops.redis_wait_s``)."""


class EvictingRedis(StartupError):
    """Redis may evict keys freshrec needs (``maxmemory-policy allkeys-*``)."""


async def wait_for_redis(redis: Redis, where: str, timeout_s: float) -> None:
    """PING until Redis answers, retrying outages (refused, timing out, LOADING, ...) with a
    backoff from 0.1 s doubling to 2 s, for at most ``timeout_s`` seconds.

    Raises:
        RedisUnavailable: no answer in time (the message names ``where`` and the last error).
        redis.exceptions.RedisError: an error retrying will not cure (e.g. a wrong password).
    """
    deadline = time.monotonic() + timeout_s
    backoff = _BACKOFF_S[0]
    waited = False
    while True:
        try:
            await redis.ping()
            if waited:
                log.warning("redis at %s answers; starting", where)
            return
        except RedisError as exc:
            if not is_outage(exc):
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise RedisUnavailable(
                    f"Redis at {where} did not answer for {timeout_s:g} s ({describe(exc)}); check redis_url "
                    f"(FRESHREC_REDIS_URL) and that Redis is up, or wait longer with ops.redis_wait_s "
                    f"(FRESHREC_OPS__REDIS_WAIT_S)") from exc
            if not waited:
                log.error("redis at %s unavailable (%s); retrying for up to %.0f s", where, describe(exc), left)
                waited = True
            await asyncio.sleep(min(backoff, left))
            backoff = min(backoff * 2, _BACKOFF_S[1])


# maxmemory-policy: freshrec keeps its durable state in keys without a TTL (the feedback
# stream, snapshot metadata and blobs, the schema, the consumer group). Under
#   noeviction   Redis refuses writes when full: /feedback answers 503, nothing is lost;
#   volatile-*   only keys with a TTL can be evicted: served slates (a click on an evicted
#                slate counts as unjoined: damped, not lost) and a snapshot blob still being
#                written (its commit then fails verification and the previous snapshot stays);
#   allkeys-*    any key can go, the stream and the snapshots included: accepted events
#                would vanish silently. Refused.
SAFE_POLICIES = ("noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")


async def check_eviction(redis: Redis) -> str:
    """The server's ``maxmemory-policy`` (from ``INFO memory``, which managed Redis services
    answer even where ``CONFIG`` is disabled); returns it when it is safe.

    Raises:
        EvictingRedis: an ``allkeys-*`` policy (the message names the setting to change).
        redis.exceptions.RedisError: Redis unavailable.
    """
    info = await redis.info("memory")
    policy = info.get("maxmemory_policy", "noeviction")
    policy = policy.decode() if isinstance(policy, bytes) else str(policy)
    if policy.startswith("allkeys"):
        raise EvictingRedis(
            f"Redis has maxmemory-policy {policy}: it may evict the feedback stream and the snapshots, losing "
            f"accepted events silently. Set maxmemory-policy to noeviction (or a volatile-* policy) in redis.conf "
            f"or with CONFIG SET maxmemory-policy noeviction, then start again")
    if policy not in SAFE_POLICIES:
        log.warning("unknown maxmemory-policy %s; freshrec expects noeviction or volatile-*", policy)
    return policy
