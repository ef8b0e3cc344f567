"""Served slates in Redis, for the impression join (``engine.core.trust``) across replicas."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.core.events import SLATE_KIND, Event, to_fields
from engine.core.trust import SLATE_BUCKET_S, TRUSTED, ImpressionJoin, new_token, slate_bucket, slate_id
from engine.storage.keys import Keys

log = logging.getLogger("freshrec.trust")


class SlateStore:
    """Served slates in Redis, for the impression join of the API.

    Slates are grouped in one Redis hash per minute of serving time,
    ``{prefix}:slates:<minute>`` (field: recommendation id, value: JSON ``[user_id, [item
    ids], served_at]``), which expires ``window_s`` + 60 s after its minute. The minute is
    part of the recommendation id (``engine.core.trust.slate_id``), so a lookup goes
    straight to its hash.
    ``record`` does not wait for Redis: slates are written behind, every ``flush_s``
    seconds (50 ms: no human clicks faster), in one pipelined HSET per minute (a ``SET``
    per request cost /recommend ~20 % of its throughput, measured); a lookup in the same
    process also sees slates not yet written.

    Keeping them in Redis instead of the serving process bounds the server's memory by time
    (Redis TTLs) rather than by a count of slates held in the heap (measured: 200k
    in-process slates took ~300 MB of the server), and makes the join work across replicas:
    a click may reach another replica than the one that served its slate. Like Learning
    Loop / Personalizer, the join is keyed by the event (recommendation) id. If Redis is
    down when a batch is written, those slates are lost: clicks on them count as untrusted.

    Args:
        redis: ``redis.asyncio.Redis``.
        keys: key names.
        window_s: join window (s).
        flush_s: write-behind delay (s).
    """

    BUCKET_S = SLATE_BUCKET_S

    def __init__(self, redis: Redis, keys: Keys, window_s: float = 3600.0, flush_s: float = 0.05,
                 log_to_stream: bool = False) -> None:
        self.redis = redis
        self.keys = keys
        self.window_s = window_s
        self.flush_s = flush_s
        self.log_to_stream = log_to_stream
        self._pending: dict[str, str] = {}
        self._stream: list[Event] = []  # slate events not yet in the feedback stream
        self._task: asyncio.Task | None = None
        self._failing = False

    def new_id(self, t: float) -> str:
        """A fresh recommendation id for a slate served at unix time ``t`` (``slate_id``)."""
        return slate_id(t, new_token())

    def record(self, recommendation_id: str, user_id: str, item_ids: list[str], t: float,
               context: dict | None = None, propensities: list[float] | None = None,
               targets: dict | None = None) -> None:
        """Remember a served slate, the request's context and the per-slot propensities
        (written to Redis within ``flush_s``; call from the event loop). With
        ``log_to_stream`` the slate also goes into the feedback stream as a ``slate`` event
        (impressions for the learner, a logged decision with the ``targets``' per-slot
        probabilities for off-policy evaluation)."""
        explored = propensities is not None and any(p != 1.0 for p in propensities)
        value = [user_id, item_ids, t, context, propensities] if explored else (
            [user_id, item_ids, t, context] if context else [user_id, item_ids, t])
        self._pending[recommendation_id] = json.dumps(value)
        if self.log_to_stream:
            meta = {"items": item_ids, "p": propensities or [1.0] * len(item_ids)}
            if targets:
                meta["targets"] = targets
            self._stream.append(Event(user_id=user_id, item_id="", kind=SLATE_KIND, received_at=t, meta=meta,
                                      recommendation_id=recommendation_id, context=context))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    def drain_stream(self) -> list[Event]:
        """The slate events not yet written to the stream (the intake appends them before the
        feedback it accepts, in the same transaction, so a click never precedes its slate)."""
        out, self._stream = self._stream, []
        return out

    def requeue(self, events: list[Event]) -> None:
        """Put back slate events an append could not write."""
        self._stream = events + self._stream

    async def lookup(self, recommendation_ids: list[str | None]) -> list[tuple | None]:
        """The slates ``(user_id, item_ids, served_at[, context])`` named by these ids, in
        order (None: no id, malformed, unknown or expired); one pipelined HMGET per minute
        involved.

        Raises:
            redis.exceptions.RedisError: Redis unavailable.
        """
        raw: dict[str, str | bytes | None] = {}
        wanted: dict[str, list[str]] = {}
        for rid in recommendation_ids:
            if not rid or rid in raw:
                continue
            raw[rid] = self._pending.get(rid)
            bucket = slate_bucket(rid)
            if raw[rid] is None and bucket is not None:
                wanted.setdefault(bucket, []).append(rid)
        if wanted:
            async with self.redis.pipeline(transaction=False) as pipe:
                for bucket, rids in wanted.items():
                    pipe.hmget(self.keys.slates(bucket), rids)
                for rids, values in zip(wanted.values(), await pipe.execute()):
                    raw.update(zip(rids, values))
        return [tuple(json.loads(raw[rid])) if rid and raw.get(rid) is not None else None
                for rid in recommendation_ids]

    async def classify(self, events: list[Event], join: ImpressionJoin) -> list[Event]:
        """``events`` with their trust decided (``ImpressionJoin.classify`` against the
        slates they name, looked up here, at each event's acceptance time): pure, no account
        is vetted. An event that joins a slate takes its slot (``position``) and that slot's
        ``propensity``, and, without a context of its own, the slate's context. With
        ``functools.partial(store.classify, join=...)`` it is the feedback log's
        ``TrustJudge``.

        Raises:
            redis.exceptions.RedisError: Redis unavailable.
        """
        served = await self.lookup([e.recommendation_id for e in events])
        out = []
        for e, s in zip(events, served):
            trust = join.classify(e, e.received_at, s)
            if trust != TRUSTED:
                out.append(replace(e, trust=trust))
                continue
            position = s[1].index(e.item_id)
            context = e.context if e.context is not None or len(s) < 4 else s[3]
            propensity = s[4][position] if len(s) > 4 and s[4] else 1.0
            out.append(replace(e, trust=trust, context=context, position=position, propensity=propensity))
        return out

    async def _flush(self) -> None:
        while self._pending or self._stream:
            await asyncio.sleep(self.flush_s)
            batch, self._pending = self._pending, {}
            stream = self.drain_stream()
            by_bucket: dict[str, dict[str, str]] = {}
            for rid, value in batch.items():
                by_bucket.setdefault(rid.partition("-")[0], {})[rid] = value
            ttl = int(self.window_s) + 2 * self.BUCKET_S
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for bucket, mapping in by_bucket.items():
                        pipe.hset(self.keys.slates(bucket), mapping=mapping)
                        pipe.expire(self.keys.slates(bucket), ttl)
                    for event in stream:
                        pipe.xadd(self.keys.feedback, to_fields(event))
                    await pipe.execute()
                self._failing = False
            except RedisError as exc:
                if not self._failing:
                    log.warning("served slates not written (clicks on them will count as untrusted): %s", exc)
                self._failing = True
