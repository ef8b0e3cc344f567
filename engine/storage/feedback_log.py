"""The durable feedback log: a Redis Stream, its one entrance (``accept``) and its readers.

Every feedback event enters the engine through ``FeedbackLog.accept`` (the intake):
validate -> classify trust without side effects -> append durably -> the stream ids. The
learner reads it with a consumer group (XREADGROUP / XACK), read-only replicas with XREAD.
Entries are decoded one by one (``StreamEntry``): one that does not decode is handed on with
its error, for the learner to dead-letter, instead of failing the whole batch.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.config import EngineConfig
from engine.core.events import Event, Semantics, from_fields, schema_difference, to_fields
from engine.storage.dedup import DEFAULT_WINDOW_S, Dedup
from engine.storage.keys import LEARNER_GROUP, Keys

TrustJudge = Callable[[list[Event]], Awaitable[list[Event]]]
"""Decides the trust of events at intake without side effects (``SlateStore.classify``)."""


class SchemaMismatch(RuntimeError):
    """This process's event schema differs from the one stored beside the stream."""


class ClockSkewed(RedisError):
    """This process's clock disagrees with Redis's by more than the skew: it may not stamp
    acceptance times now. A ``RedisError``, so every door answers it like a store that
    cannot take the write (503 with Retry-After)."""


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry as read from the stream.

    Attributes:
        entry_id: its stream id ("<ms>-<seq>").
        fields: the raw fields (bytes), kept for a dead letter.
        event: the decoded event, or None when it does not decode.
        error: why it does not decode (None when it does).
    """

    entry_id: str
    fields: dict
    event: Event | None
    error: str | None = None

    @property
    def stream_time_s(self) -> float | None:
        """Unix seconds of the id's time part (Redis's clock when it took the entry)."""
        ms = self.entry_id.partition("-")[0]
        return int(ms) / 1000.0 if ms.isdigit() else None


def decode_entry(entry_id, fields: dict) -> StreamEntry:
    """Decode one raw entry (``engine.core.events.from_fields``); never raises: an entry
    that does not decode carries its error instead of an event."""
    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    try:
        return StreamEntry(entry_id, fields, from_fields(entry_id, fields))
    except KeyError as exc:
        return StreamEntry(entry_id, fields, None, f"missing field {exc}")
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return StreamEntry(entry_id, fields, None, f"{type(exc).__name__}: {exc}")


def schema_refusal(key: str, stored: bytes | str | None, ours: dict) -> SchemaMismatch | None:
    """The error to raise when the schema ``stored`` at ``key`` (JSON, or None) differs from
    ``ours`` (``Semantics.describe()``); None when they agree."""
    diff = schema_difference(json.loads(stored), ours) if stored is not None else []
    if not diff:
        return None
    return SchemaMismatch(f"the event schema differs from the one stored at {key} (the stream's events were "
                          f"accepted under it): " + "; ".join(diff)
                          + ". Start with the stored schema, or use another key_prefix.")


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
        max_clock_skew_s: ``accept`` refuses an event time more than this many seconds in
            the future of the event's acceptance time (default
            ``EngineConfig.max_clock_skew_s``).
        dedup_window_s: how long a client's event key is remembered (``Dedup``; s).
    """

    def __init__(self, redis: Redis, keys: Keys, semantics: Semantics | None = None,
                 judge: TrustJudge | None = None, slates=None, max_clock_skew_s: float | None = None,
                 dedup_window_s: float = DEFAULT_WINDOW_S) -> None:
        self.redis = redis
        self.keys = keys
        self.semantics = semantics or Semantics(EngineConfig().events)
        self.judge = judge
        self.slates = slates  # a SlateStore whose pending slate events go first
        self.max_clock_skew_s = EngineConfig().max_clock_skew_s if max_clock_skew_s is None else max_clock_skew_s
        self.clock_error: Callable[[], str | None] | None = None  # set by the node (roles.clock.ClockWatch)
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
        refusal = schema_refusal(self.keys.schema, await self.redis.get(self.keys.schema), ours)
        if refusal is not None:
            raise refusal

    async def accept(self, events: list[Event], event_keys: list[str | None] | None = None) -> list[str]:
        """The intake, for ``POST /feedback`` and ``/feedback/batch`` alike: validate every
        event against the event schema and its acceptance time (``Semantics.validate`` with
        ``max_clock_skew_s``: an event time more than the skew in the future of
        ``received_at`` is refused), decide its trust with ``judge`` (pure: an account is
        vetted only when the learner applies a trusted event, so an append that fails
        changes nothing), append all of them in one transaction (after the served slates
        not yet written, ``slates``), return their ids (``event_keys``: see ``append``).

        Raises:
            engine.core.events.InvalidEvent: an event is malformed (nothing is appended).
            redis.exceptions.RedisError: Redis could not take them (nothing is appended;
                the client must retry).
        """
        events = [self.semantics.validate(e, self.max_clock_skew_s) for e in events]
        if self.judge is not None:
            events = await self.judge(events)
        first = self.slates.drain_stream() if self.slates is not None else []
        try:
            keys = None if event_keys is None else [None] * len(first) + list(event_keys)
            ids = await self.append(first + events, keys)
        except BaseException:
            if first:
                self.slates.requeue(first)
            raise
        return ids[len(first):]

    async def append(self, events: list[Event], event_keys: list[str | None] | None = None) -> list[str]:
        """XADD each event (in order, one MULTI/EXEC); returns their stream ids. Feedback
        goes through ``accept``; this also takes catalogue events. With ``event_keys`` (one
        per event, None for none), an event whose key was accepted within the dedup window
        is not appended again and its id is the original's (``engine.storage.dedup``: one
        script, so an event is appended with its key recorded, or neither).

        Raises:
            ClockSkewed: this process's clock is off (``clock_error``); nothing is appended.
            redis.exceptions.RedisError: Redis could not take the events (nothing is
                acknowledged to the client; it must retry).
        """
        why = self.clock_error() if self.clock_error is not None else None
        if why:
            raise ClockSkewed(why)
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

    async def read(self, consumer: str, count: int = 500, block_ms: int = 100) -> list[StreamEntry]:
        """Next batch of new entries for this consumer (empty after ``block_ms`` idle), each
        decoded on its own (``decode_entry``)."""
        resp = await self.redis.xreadgroup(
            LEARNER_GROUP, consumer, {self.keys.feedback: ">"}, count=count, block=block_ms
        )
        if not resp:
            return []
        return [decode_entry(entry_id, fields) for entry_id, fields in resp[0][1]]

    async def read_after(self, last_id: str | None, count: int = 256, block_ms: int = 100) -> list[StreamEntry]:
        """Entries after ``last_id`` without a consumer group (XREAD): how read-only replicas
        follow the stream; empty after ``block_ms`` idle. Decoded one by one."""
        resp = await self.redis.xread({self.keys.feedback: last_id or "0"}, count=count, block=block_ms)
        if not resp:
            return []
        return [decode_entry(entry_id, fields) for entry_id, fields in resp[0][1]]

    async def ack(self, ids: list[str]) -> None:
        """XACK applied entries."""
        if ids:
            await self.redis.xack(self.keys.feedback, LEARNER_GROUP, *ids)

    async def lag(self, after_id: str | None, cap: int = 10_000) -> int:
        """Entries in the stream after ``after_id`` (capped at ``cap``; Redis 6.2 has no
        XINFO lag). Reads up to ``cap`` entries: the API uses ``queue_unlearned`` instead."""
        start = f"({after_id}" if after_id else "-"
        return len(await self.redis.xrange(self.keys.feedback, start, "+", count=cap))

    def queue_unlearned(self, pipe, after_id: str | None, limit: int) -> None:
        """Queue on ``pipe`` the bounded look at what waits after ``after_id``: one XRANGE of
        at most ``limit`` entries (read its answer with ``unlearned_of``)."""
        pipe.xrange(self.keys.feedback, f"({after_id}" if after_id else "-", "+", count=limit)

    @staticmethod
    def unlearned_of(rows: list) -> tuple[int, str | None]:
        """(entries seen, id of the oldest) from the answer of ``queue_unlearned``."""
        if not rows:
            return 0, None
        first = rows[0][0]
        return len(rows), first.decode() if isinstance(first, bytes) else first

    async def trim_before(self, min_id: str) -> None:
        """Drop entries older than ``min_id`` (all snapshots kept cover them)."""
        await self.redis.xtrim(self.keys.feedback, minid=min_id, approximate=False)
