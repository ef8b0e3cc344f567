"""Bulk appends of a historical log to the feedback stream (``freshrec import``), resumable.

Events go to ``{prefix}:feedback`` in batches: one MULTI/EXEC per batch holds its XADDs and
the update of the source's resume marker (``{prefix}:import:<source id>``, a hash with the
count of the source's events appended so far), so after an interruption at any point (Ctrl-C,
``kill -9``, Redis restarting) the marker counts exactly the events in the stream and a
re-run continues after them: no event is appended twice, none is skipped. The marker is
WATCHed, so two imports of the same source cannot interleave (the second one fails).

The learner does not care where entries come from: it learns them like ``/feedback``'s
(``learned`` tells how far it has got, from its consumer group).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import ResponseError, WatchError

from engine.core.events import Event, stream_id_key, to_fields
from engine.storage.keys import LEARNER_GROUP, Keys


class ConcurrentImport(RuntimeError):
    """Another import of the same source moved its marker meanwhile."""


class BulkAppender:
    """Appends the events of one source, batch by batch, with its resume marker.

    Args:
        redis: ``redis.asyncio.Redis``.
        keys: key names.
        source: the source's id (a digest of its bytes and parse options).
        about: JSON-able strings stored in the marker once (path, format, digest, total).
    """

    def __init__(self, redis: Redis, keys: Keys, source: str, about: dict[str, str] | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.key = keys.import_marker(source)
        self.about = {k: str(v) for k, v in (about or {}).items()}

    async def appended(self) -> int:
        """Events of this source already in the stream (0 for a new source)."""
        raw = await self.redis.hget(self.key, "appended")
        return int(raw) if raw is not None else 0

    async def append(self, events: list[Event], start: int, received_at: float | None = None) -> list[str]:
        """Append ``events`` (the source's events ``start`` .. ``start + len - 1``) and move
        the marker to ``start + len(events)``, all in one transaction; events without an
        acceptance time get ``received_at`` (default: now). Returns their stream ids.

        Raises:
            ConcurrentImport: the marker is not at ``start`` (another import of this source).
            redis.exceptions.RedisError: Redis could not take the batch (nothing appended;
                the marker did not move).
        """
        now = time.time() if received_at is None else received_at
        stream = self.keys.feedback
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(self.key)
                raw = await pipe.hget(self.key, "appended")
                if (int(raw) if raw is not None else 0) != start:
                    raise ConcurrentImport(f"{self.key} says {int(raw or 0)} events are appended, this import is at "
                                           f"{start}: another import of the same source is running")
                pipe.multi()
                for e in events:
                    fields = to_fields(e)
                    if not e.received_at:
                        fields["r"] = repr(now)
                    pipe.xadd(stream, fields)
                pipe.hset(self.key, mapping={**self.about, "appended": start + len(events), "updated": repr(now)})
                replies = await pipe.execute()
            except WatchError:
                raise ConcurrentImport(f"{self.key} moved during this batch: another import of the same source "
                                       "is running") from None
        return [i.decode() if isinstance(i, bytes) else i for i in replies[: len(events)]]

    async def finish(self, total: int) -> None:
        """Record that the source's ``total`` events are all in the stream."""
        await self.redis.hset(self.key, mapping={"total": total, "done": "1"})


async def last_entry(redis: Redis, keys: Keys) -> str | None:
    """Stream id of the newest entry of the feedback stream, or None when it is empty."""
    newest = await redis.xrevrange(keys.feedback, "+", "-", count=1)
    if not newest:
        return None
    eid = newest[0][0]
    return eid.decode() if isinstance(eid, bytes) else eid


async def learner_position(redis: Redis, keys: Keys) -> tuple[tuple[int, int], int] | None:
    """The learner's consumer group: (``stream_id_key`` of the last entry delivered, entries
    delivered and not yet acknowledged). The learner acknowledges a batch once it has
    applied it, so everything up to that id is learned when the second number is 0. None:
    no learner has created its group yet.

    Raises:
        redis.exceptions.RedisError: Redis unavailable.
    """
    try:
        groups = await redis.xinfo_groups(keys.feedback)
    except ResponseError:  # no stream yet
        return None
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name == LEARNER_GROUP:
            return stream_id_key(g["last-delivered-id"]), int(g["pending"])
    return None


async def learned(redis: Redis, keys: Keys, event_id: str) -> bool | None:
    """Whether the learner has applied every entry up to ``event_id`` (``learner_position``);
    None without a learner group.

    Raises:
        redis.exceptions.RedisError: Redis unavailable.
    """
    position = await learner_position(redis, keys)
    if position is None:
        return None
    delivered, pending = position
    return delivered >= stream_id_key(event_id) and pending == 0
