"""The intake: one door for feedback (validate -> trust without side effects -> durable
append), on a real redis-server."""

import asyncio
import time

import pytest
from redis.exceptions import RedisError

from engine import Event
from engine.core.events import InvalidEvent
from engine.core.trust import TRUSTED
from engine.roles.node import Node


def test_an_append_that_fails_vets_nobody_and_the_same_click_vets_once_accepted(redis_server):
    async def scenario():
        node = await Node.open(redis_server.url, None, snapshot_key="k")
        guarded = node.live.guarded
        try:
            for item in ("a", "b"):
                await node.log.append([Event("", item, "item", received_at=1.0)])
            await node.start()
            while node.recommender.events_learned < 2:
                await node.role.step(block_ms=50)
            slate = node.recommend("alice", 2)  # recorded for the join (written to Redis behind)
            await node.slates._task  # the slate is in Redis
            click = Event("alice", slate.item_ids[0], "click", received_at=time.time(),
                          recommendation_id=slate.recommendation_id)
            await node.redis.config_set("maxmemory", "1")  # Redis still reads, refuses writes (OOM)
            with pytest.raises(RedisError, match="maxmemory"):  # the append fails: 503 for the client
                await node.log.accept([click])
            vetted_after_failure = set(guarded.join.vetted)
            await node.redis.config_set("maxmemory", "0")
            (event_id,) = await node.log.accept([click])
            vetted_before_learning = set(guarded.join.vetted)
            while not node.live.learned(event_id):
                await node.role.step(block_ms=50)
            stored = await node.redis.xrange(node.keys.feedback, event_id, event_id)
            return vetted_after_failure, vetted_before_learning, set(guarded.join.vetted), stored
        finally:
            await node.close(final_snapshot=False)

    failed, accepted, learned, stored = asyncio.run(scenario())
    assert failed == set()  # the 503 changed nothing
    assert accepted == set()  # classifying at intake vets nobody either
    assert learned == {"alice"}  # the learner vets when it applies the trusted click
    assert stored[0][1][b"tr"] == TRUSTED.encode()


@pytest.mark.parametrize("event,field", [
    (Event("", "i", "click"), "user_id"),
    (Event("u", "i" * 129, "click"), "item_id"),
    (Event("u", "i", "purchase"), "event"),
    (Event("u", "i", "rating"), "value"),
    (Event("u", "i", "rating", value=float("nan")), "value"),
    (Event("u", "i", "click", timestamp=float("inf")), "timestamp"),
])
def test_the_intake_refuses_malformed_events_naming_the_field(redis_server, event, field):
    async def scenario():
        node = await Node.open(redis_server.url, None, snapshot_key="k")
        try:
            with pytest.raises(InvalidEvent) as err:
                await node.log.accept([Event("u", "ok", "click"), event])
            return err.value.field, await node.redis.xlen(node.keys.feedback)
        finally:
            await node.close(final_snapshot=False)

    assert asyncio.run(scenario()) == (field, 0)  # nothing of the batch was appended
