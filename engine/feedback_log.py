"""The durable feedback log: a Redis Stream read by the learner through a consumer group."""

from __future__ import annotations

from redis.asyncio import Redis

from engine.events import Event, from_fields, to_fields
from engine.keys import LEARNER_GROUP, Keys


class FeedbackLog:
    """Append / consume events on the ``{prefix}:feedback`` stream.

    ``append`` returns only after Redis has taken every entry (one pipelined round trip),
    so an event is durable (AOF) before the API answers 202. The learner reads with
    XREADGROUP in batches and XACKs what it applied.

    Args:
        redis: a ``redis.asyncio.Redis`` client.
        keys: key names.
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def append(self, events: list[Event]) -> list[str]:
        """XADD each event (pipelined, in order); returns their stream ids.

        Raises:
            redis.exceptions.RedisError: Redis could not take the events (nothing is
                acknowledged to the client; it must retry).
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            for e in events:
                pipe.xadd(self.keys.feedback, to_fields(e))
            ids = await pipe.execute()
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    async def ensure_group(self) -> None:
        """Create the learner consumer group (and the stream) if missing."""
        try:
            await self.redis.xgroup_create(self.keys.feedback, LEARNER_GROUP, id="0", mkstream=True)
        except Exception as exc:  # BUSYGROUP: already exists
            if "BUSYGROUP" not in str(exc):
                raise

    async def set_position(self, last_id: str | None) -> None:
        """Make the group deliver entries after ``last_id`` (None: from the beginning)."""
        await self.redis.xgroup_setid(self.keys.feedback, LEARNER_GROUP, last_id or "0")

    async def read(self, consumer: str, count: int = 500, block_ms: int = 100) -> list[Event]:
        """Next batch of new entries for this consumer (empty after ``block_ms`` idle)."""
        resp = await self.redis.xreadgroup(
            LEARNER_GROUP, consumer, {self.keys.feedback: ">"}, count=count, block=block_ms
        )
        if not resp:
            return []
        return [from_fields(entry_id, fields) for entry_id, fields in resp[0][1]]

    async def read_after(self, last_id: str | None, count: int = 256, block_ms: int = 100) -> list[Event]:
        """Entries after ``last_id`` without a consumer group (XREAD): how read-only replicas
        follow the stream; empty after ``block_ms`` idle."""
        resp = await self.redis.xread({self.keys.feedback: last_id or "0"}, count=count, block=block_ms)
        if not resp:
            return []
        return [from_fields(entry_id, fields) for entry_id, fields in resp[0][1]]

    async def ack(self, ids: list[str]) -> None:
        """XACK applied entries."""
        if ids:
            await self.redis.xack(self.keys.feedback, LEARNER_GROUP, *ids)

    async def lag(self, after_id: str | None, cap: int = 10_000) -> int:
        """Entries in the stream after ``after_id`` (capped at ``cap``; Redis 6.2 has no
        XINFO lag)."""
        start = f"({after_id}" if after_id else "-"
        return len(await self.redis.xrange(self.keys.feedback, start, "+", count=cap))

    async def trim_before(self, min_id: str) -> None:
        """Drop entries older than ``min_id`` (all snapshots kept cover them)."""
        await self.redis.xtrim(self.keys.feedback, minid=min_id, approximate=False)
