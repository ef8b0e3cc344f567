"""Idempotent feedback appends (``engine.storage.dedup`` through ``FeedbackLog``), on a real
redis-server."""

import asyncio
import time

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine import Event
from engine.storage.feedback_log import FeedbackLog
from engine.storage.keys import Keys


def click(user: str, item: str) -> Event:
    return Event(user, item, "click", received_at=1000.0)


def run(redis_server, scenario, **log_kwargs):
    async def main():
        redis = Redis.from_url(redis_server.url)
        try:
            return await scenario(redis, FeedbackLog(redis, Keys("t"), **log_kwargs))
        finally:
            await redis.aclose()

    return asyncio.run(main())


def test_a_duplicate_key_is_not_appended_and_answers_the_original_id(redis_server):
    async def scenario(redis, log):
        (first,) = await log.accept([click("u", "a")], ["k1"])
        (again,) = await log.accept([click("u", "a")], ["k1"])
        batch = await log.accept([click("u", "b"), click("u", "a"), click("u", "c"), click("u", "c")],
                                 ["k2", "k1", None, None])
        repeated = await log.accept([click("v", "d"), click("v", "d")], ["k3", "k3"])
        entries = await redis.xrange(log.keys.feedback)
        return first, again, batch, repeated, [(e[0].decode(), e[1][b"i"]) for e in entries]

    first, again, batch, repeated, entries = run(redis_server, scenario)
    assert again == first
    assert batch[1] == first and len(set(batch)) == 4  # k1 is the original; keyless events all count
    assert repeated[0] == repeated[1]  # a key repeated inside one batch: its first occurrence
    assert [item for _, item in entries] == [b"a", b"b", b"c", b"c", b"d"]
    assert [i for i, _ in entries] == [first, batch[0], batch[2], batch[3], repeated[0]]


def test_a_key_is_forgotten_after_the_window(redis_server):
    async def scenario(redis, log):
        (first,) = await log.accept([click("u", "a")], ["k"])
        ttl_ms = await redis.pttl(log.dedup.key("k"))
        deadline = time.monotonic() + 5
        while await redis.exists(log.dedup.key("k")) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # bounded poll until Redis expired the key
        (second,) = await log.accept([click("u", "a")], ["k"])
        return first, second, ttl_ms, await redis.xlen(log.keys.feedback)

    first, second, ttl_ms, length = run(redis_server, scenario, dedup_window_s=0.2)
    assert 0 < ttl_ms <= 200
    assert second != first and length == 2


def test_a_refused_append_records_neither_the_event_nor_its_key(redis_server):
    """Redis refuses the script's first write (OOM): no entry, no key, so the client's retry
    with the same key is appended, once."""
    async def scenario(redis, log):
        await log.accept([click("u", "seed")])  # the stream exists
        await redis.config_set("maxmemory", "1")
        with pytest.raises(RedisError, match="maxmemory|OOM"):
            await log.accept([click("u", "a"), click("u", "b")], ["k1", "k2"])
        after_failure = await redis.xlen(log.keys.feedback), await redis.exists(log.dedup.key("k1"))
        await redis.config_set("maxmemory", "0")
        ids = await log.accept([click("u", "a"), click("u", "b")], ["k1", "k2"])
        retried = await log.accept([click("u", "a"), click("u", "b")], ["k1", "k2"])
        return after_failure, ids, retried, await redis.xlen(log.keys.feedback)

    after_failure, ids, retried, length = run(redis_server, scenario)
    assert after_failure == (1, 0)
    assert retried == ids and length == 3


def test_window_zero_turns_dedup_off(redis_server):
    async def scenario(redis, log):
        ids = [(await log.accept([click("u", "a")], ["k"]))[0] for _ in range(2)]
        return ids, await redis.exists(log.dedup.key("k"))

    ids, key_exists = run(redis_server, scenario, dedup_window_s=0)
    assert ids[0] != ids[1] and key_exists == 0
