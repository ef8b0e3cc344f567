"""Trust from the impression join: was a click on an item we actually served to that user?"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import OrderedDict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.events import Event
from engine.keys import Keys

log = logging.getLogger("freshrec.trust")

TRUSTED, VETTED, UNVETTED = "trusted", "vetted", "unvetted"
_MEMORY = object()  # "look the slate up in ImpressionJoin.slates"


class ImpressionJoin:
    """Remembers served slates and tells which events join one.

    A ``click`` (or ``impression``) is trusted when its ``recommendation_id`` names a slate
    served to the same user, containing that item, at most ``window_s`` seconds (event
    time) before the event. Everything else (organic logs, unknown sources, sybil accounts
    clicking what they were never shown) is untrusted. Accounts with at least one trusted
    event are *vetted*. Memory is bounded: the oldest slates are forgotten past
    ``max_slates`` (the Learning Loop / Personalizer "reward join" idea, keyed by event id).

    Args:
        window_s: join window in seconds of event time.
        max_slates: slates remembered.
    """

    def __init__(self, window_s: float = 3600.0, max_slates: int = 200_000) -> None:
        self.window_s = window_s
        self.max_slates = max_slates
        self.slates: OrderedDict[str, tuple[str, tuple[str, ...], float]] = OrderedDict()
        self.vetted: set[str] = set()

    def record(self, recommendation_id: str, user_id: str, item_ids: list[str], t: float) -> None:
        """Remember a served slate (in this process; the API uses ``SlateStore``)."""
        self.slates[recommendation_id] = (user_id, tuple(item_ids), t)
        if len(self.slates) > self.max_slates:
            self.slates.popitem(last=False)

    def trusted(self, event: Event, now: float | None = None, served=_MEMORY) -> bool:
        """Does ``event`` join a slate we served (and so vet its account)? ``now`` is the
        time compared with the slate's serving time (default: the event's time). ``served``:
        the slate ``(user_id, item_ids, served_at)`` named by the event's recommendation_id,
        or None, when it was looked up elsewhere (``SlateStore``); default: this object's
        memory."""
        rid = event.recommendation_id
        if served is _MEMORY:
            served = self.slates.get(rid) if rid else None
        now = event.time if now is None else now
        ok = (served is not None and served[0] == event.user_id and event.item_id in served[1]
              and 0.0 <= now - served[2] <= self.window_s)
        if ok:
            self.vetted.add(event.user_id)
        return ok

    def classify(self, event: Event, now: float | None = None, served=_MEMORY) -> str:
        """"trusted" (joins a served slate), "vetted" (unjoined, from an account with trusted
        history) or "unvetted" (unjoined, from an account without). ``served``: as in
        ``trusted``."""
        if event.kind in ("click", "impression") and self.trusted(event, now, served):
            return TRUSTED
        return VETTED if event.user_id in self.vetted else UNVETTED

    def vet(self, user_id: str) -> None:
        """Mark an account as having trusted history (from a stored trusted event)."""
        self.vetted.add(user_id)


class SlateStore:
    """Served slates in Redis, for the impression join of the API.

    Slates are grouped in one Redis hash per minute of serving time,
    ``{prefix}:slates:<minute>`` (field: recommendation id, value: JSON ``[user_id, [item
    ids], served_at]``), which expires ``window_s`` + 60 s after its minute. The minute is
    part of the recommendation id (``new_id``), so a lookup goes straight to its hash.
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

    BUCKET_S = 60

    def __init__(self, redis: Redis, keys: Keys, window_s: float = 3600.0, flush_s: float = 0.05) -> None:
        self.redis = redis
        self.keys = keys
        self.window_s = window_s
        self.flush_s = flush_s
        self._pending: dict[str, str] = {}
        self._task: asyncio.Task | None = None
        self._failing = False

    def new_id(self, t: float) -> str:
        """A fresh recommendation id for a slate served at unix time ``t``."""
        return f"{int(t // self.BUCKET_S):x}-{uuid.uuid4().hex}"

    def record(self, recommendation_id: str, user_id: str, item_ids: list[str], t: float) -> None:
        """Remember a served slate (written to Redis within ``flush_s``; call from the event
        loop)."""
        self._pending[recommendation_id] = json.dumps([user_id, item_ids, t])
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def lookup(self, recommendation_ids: list[str | None]) -> list[tuple[str, list[str], float] | None]:
        """The slates named by these ids, in order (None: no id, malformed, unknown or
        expired); one pipelined HMGET per minute involved.

        Raises:
            redis.exceptions.RedisError: Redis unavailable.
        """
        raw: dict[str, str | bytes | None] = {}
        wanted: dict[str, list[str]] = {}
        for rid in recommendation_ids:
            if not rid or rid in raw:
                continue
            raw[rid] = self._pending.get(rid)
            bucket = self._bucket(rid)
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

    @staticmethod
    def _bucket(rid: str) -> str | None:
        head, sep, _ = rid.partition("-")
        if not sep or not head or len(head) > 12:
            return None
        try:
            int(head, 16)
        except ValueError:
            return None
        return head

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(self.flush_s)
            batch, self._pending = self._pending, {}
            by_bucket: dict[str, dict[str, str]] = {}
            for rid, value in batch.items():
                by_bucket.setdefault(rid.partition("-")[0], {})[rid] = value
            ttl = int(self.window_s) + 2 * self.BUCKET_S
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for bucket, mapping in by_bucket.items():
                        pipe.hset(self.keys.slates(bucket), mapping=mapping)
                        pipe.expire(self.keys.slates(bucket), ttl)
                    await pipe.execute()
                self._failing = False
            except RedisError as exc:
                if not self._failing:
                    log.warning("served slates not written (clicks on them will count as untrusted): %s", exc)
                self._failing = True
