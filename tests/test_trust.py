"""The impression join's slate store on a real redis-server: written behind, read back by
id, expiring with the join window, and never trusting what it cannot find."""

import asyncio

from redis.asyncio import Redis

from engine.core.events import Event
from engine.storage.keys import Keys
from engine.core.trust import TRUSTED, UNVETTED, ImpressionJoin
from engine.storage.slate_store import SlateStore


def test_slates_are_written_behind_and_joined_by_id(redis_server):
    async def scenario():
        redis = Redis.from_url(redis_server.url)
        store = SlateStore(redis, Keys("trusttest"), window_s=3600.0)
        t = 1_800_000_000.0
        rid = store.new_id(t)
        store.record(rid, "ann", ["a", "b", "c"], t)
        before_flush = await store.lookup([rid])  # not yet in Redis: served from the pending batch
        await store._task
        bucket = rid.partition("-")[0]
        in_redis = await redis.hget(Keys("trusttest").slates(bucket), rid)
        ttl = await redis.ttl(Keys("trusttest").slates(bucket))
        fresh = SlateStore(redis, Keys("trusttest"))  # another replica: nothing pending
        found = await fresh.lookup([rid, None, "not-a-slate", "zz-" + rid, store.new_id(t)])
        await redis.aclose()
        return before_flush, in_redis, ttl, found

    before_flush, in_redis, ttl, found = asyncio.run(scenario())
    assert before_flush == [("ann", ["a", "b", "c"], 1_800_000_000.0)]
    assert in_redis is not None and 3600 < ttl <= 3600 + 120
    assert found[0] == ("ann", ["a", "b", "c"], 1_800_000_000.0)
    assert found[1:] == [None, None, None, None]  # no id, malformed, forged bucket, unknown

    join = ImpressionJoin()
    click = Event("ann", "b", "click", timestamp=1_800_000_010.0, recommendation_id="x")
    assert join.classify(click, served=found[0]) == TRUSTED
    assert join.classify(Event("bob", "b", "click", recommendation_id="x"), served=found[0]) == UNVETTED
    assert join.classify(Event("ann", "z", "click", recommendation_id="x"), served=found[0]) != TRUSTED
