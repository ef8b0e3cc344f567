"""Trust from the impression join: was a click on an item we actually served to that user?"""

from __future__ import annotations

import json
from collections import OrderedDict

from redis.asyncio import Redis

from engine.events import Event
from engine.keys import Keys

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
    """Served slates in Redis, for the impression join of the API: one key per slate,
    ``{prefix}:slate:<recommendation_id>`` = JSON ``[user_id, [item ids], served_at]``,
    expiring after the join window.

    Keeping them in Redis instead of the serving process bounds the server's memory by time
    (Redis TTLs) rather than by a count of slates held in the heap (measured: 200k
    in-process slates took ~300 MB of the server), and makes the join work across replicas:
    a click may reach another replica than the one that served its slate. Like Learning
    Loop / Personalizer, the join is keyed by the event (recommendation) id.

    Args:
        redis: ``redis.asyncio.Redis``.
        keys: key names.
        window_s: join window (s); also the keys' TTL.
    """

    def __init__(self, redis: Redis, keys: Keys, window_s: float = 3600.0) -> None:
        self.redis = redis
        self.keys = keys
        self.window_s = window_s

    async def record(self, recommendation_id: str, user_id: str, item_ids: list[str], t: float) -> None:
        """Remember a served slate for ``window_s`` seconds.

        Raises:
            redis.exceptions.RedisError: Redis unavailable.
        """
        await self.redis.set(self.keys.slate(recommendation_id), json.dumps([user_id, item_ids, t]),
                             ex=max(1, int(self.window_s) + 1))

    async def lookup(self, recommendation_ids: list[str | None]) -> list[tuple[str, list[str], float] | None]:
        """The slates named by these ids, in order (None: no id, unknown or expired); one MGET.

        Raises:
            redis.exceptions.RedisError: Redis unavailable.
        """
        wanted = [rid for rid in recommendation_ids if rid]
        found = dict(zip(wanted, await self.redis.mget([self.keys.slate(r) for r in wanted]))) if wanted else {}
        out = []
        for rid in recommendation_ids:
            raw = found.get(rid) if rid else None
            out.append(tuple(json.loads(raw)) if raw is not None else None)
        return out
