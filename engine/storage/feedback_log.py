"""The durable feedback log: a Redis Stream, its one entrance (``accept``) and its readers.

Every feedback event enters the engine through ``FeedbackLog.accept`` (the intake):
validate -> classify trust without side effects -> append durably -> the stream ids. The
learner reads it with a consumer group (XREADGROUP / XACK), read-only replicas with XREAD.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from engine.config import EngineConfig
from engine.core.events import Event, Semantics, from_fields, schema_difference, to_fields
from engine.storage.dedup import DEFAULT_WINDOW_S, Dedup
from engine.storage.keys import LEARNER_GROUP, Keys

TrustJudge = Callable[[list[Event]], Awaitable[list[Event]]]
"""Decides the trust of events at intake without side effects (``SlateStore.classify``)."""


class SchemaMismatch(RuntimeError):
    """This process's event schema differs from the one stored beside the stream."""


class FeedbackLog:
    """Append / consume events on the ``{prefix}:feedback`` stream.

    ``append`` returns only after Redis has taken every entry (one MULTI/EXEC round trip),
    so an event is durable (AOF) before the API answers 202. The learner reads with
    XREADGROUP in batches and XACKs what it applied.

    Args:
        redis: a ``redis.asyncio.Redis`` client.
        keys: key names.
        semantics: the deployment's event schema (what ``accept`` validates against).
        judge: decides the trust of accepted events (None: trust is left undecided, as with
            the guard off).
        dedup_window_s: how long a client's event key is remembered (``Dedup``; s).
    """

    def __init__(self, redis: Redis, keys: Keys, semantics: Semantics | None = None,
                 judge: TrustJudge | None = None, dedup_window_s: float = DEFAULT_WINDOW_S) -> None:
        self.redis = redis
        self.keys = keys
        self.semantics = semantics or Semantics(EngineConfig().events)
        self.judge = judge
        self.dedup = Dedup(keys, dedup_window_s)

    async def ensure_schema(self) -> None:
        """Store the event schema beside the stream on first start; on later starts (of a
        server, learner or replica) refuse one that differs, because the events already in
        the stream would silently change meaning.

        Raises:
            SchemaMismatch: the stored schema differs (the message names every difference).
        """
        ours = self.semantics.describe()
        if await self.redis.set(self.keys.schema, json.dumps(ours, sort_keys=True), nx=True):
            return
        raw = await self.redis.get(self.keys.schema)
        diff = schema_difference(json.loads(raw), ours) if raw is not None else []
        if diff:
            raise SchemaMismatch(f"the event schema differs from the one stored at {self.keys.schema} (the "
                                 f"stream's events were accepted under it): " + "; ".join(diff)
                                 + ". Start with the stored schema, or use another key_prefix.")

    async def accept(self, events: list[Event], event_keys: list[str | None] | None = None) -> list[str]:
        """The intake, for ``POST /feedback`` and ``/feedback/batch`` alike: validate every
        event against the event schema (``Semantics.validate``), decide its trust with ``judge`` (pure: an
        account is vetted only when the learner applies a trusted event, so an append that
        fails changes nothing), append all of them in one transaction, return their ids
        (``event_keys``: see ``append``).

        Raises:
            engine.core.events.InvalidEvent: an event is malformed (nothing is appended).
            redis.exceptions.RedisError: Redis could not take them (nothing is appended;
                the client must retry).
        """
        events = [self.semantics.validate(e) for e in events]
        if self.judge is not None:
            events = await self.judge(events)
        return await self.append(events, event_keys)

    async def append(self, events: list[Event], event_keys: list[str | None] | None = None) -> list[str]:
        """XADD each event (in order, one MULTI/EXEC); returns their stream ids. Feedback
        goes through ``accept``; this also takes catalogue events. With ``event_keys`` (one
        per event, None for none), an event whose key was accepted within the dedup window
        is not appended again and its id is the original's (``engine.storage.dedup``: one
        script, so an event is appended with its key recorded, or neither).

        Raises:
            redis.exceptions.RedisError: Redis could not take the events (nothing is
                acknowledged to the client; it must retry).
        """
        if self.dedup.applies(event_keys):
            return await self.dedup.append(self.redis, self.keys.feedback, [to_fields(e) for e in events], event_keys)
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
