"""Erased users in Redis: durable tombstones, the ``forget`` entry that carries an erasure
through the stream, and the purges of what Redis still holds about an erased user.

``Tombstones.forget`` is one atomic Lua call that XADDs a ``forget`` event for the user to
``{prefix}:feedback`` and records a tombstone: ``{prefix}:forgotten`` (hash: digest -> JSON
``{at, t}``, ``at`` the stream id of that forget entry), ``{prefix}:forgotten:order``
(digests by the millisecond of ``at``), ``{prefix}:forgotten:purge`` (digests whose stream
entries may still exist) and ``{prefix}:forgotten:snapshots`` (the newest ``at`` whose
older snapshots may still be retained). Once it returns, the erasure is durable (AOF) and
cannot be half done: either both the forget entry and its tombstone exist, or neither.

Tombstones name users by a keyed digest (HMAC-SHA256 under a key derived from the snapshot
signing key, shared by every process on one Redis), not by id: the list of people who asked
to be forgotten is not itself a list of their ids. Matching a tombstone therefore hashes
candidate ids (the users of a restored model, the entries of a stream scan), never the
other way round.

Who reads them:

- a restore (learner start, admin restore, a replica adopting a snapshot) erases from the
  restored model every user tombstoned after the snapshot's last stream id
  (``erase_tombstoned``), before it serves; the stream replay then applies the forget
  entries again, so a ``kill -9`` followed by restore-from-an-older-snapshot cannot bring
  the user back;
- ``purge_stream`` XDELs a user's entries older than their forget entry (in bounded
  batches, with a synchronous client, in a worker thread);
- ``purge_slates`` deletes the served slates of the user from the impression join's hashes;
- the checkpointer prunes every retained snapshot written before the newest forget once a
  snapshot after it is committed (``SnapshotStore.drop``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import redis as redis_sync
from redis.asyncio import Redis

from engine.core.events import FORGET_KIND, Event, stream_id_key, to_fields
from engine.core.trust import SLATE_BUCKET_S
from engine.core.users import erase
from engine.storage.keys import LEARNER_GROUP, Keys

# KEYS: stream, forgotten, order, purge, snapshots. ARGV: digest, t, then the entry's fields.
_FORGET = """
redis.replicate_commands()
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('HSET', KEYS[2], ARGV[1], '{"at":"' .. id .. '","t":' .. ARGV[2] .. '}')
redis.call('ZADD', KEYS[3], tonumber(string.match(id, '^(%d+)')), ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SET', KEYS[5], id)
return id
"""
_DELETE_IF_EQUAL = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
SCAN_BATCH = 1000  # stream entries / hash fields per Redis call of a purge


@dataclass(frozen=True)
class Tombstone:
    """One erased user: ``digest`` (hex HMAC of the id), ``at`` (stream id of their forget
    entry: entries before it belong to the erased user, after it to a fresh one), ``t``
    (unix s of the request)."""

    digest: str
    at: str
    t: float


def digest_key(secret: bytes) -> bytes:
    """The key tombstone digests are made with, derived from the snapshot signing key."""
    return hmac.new(secret, b"freshrec tombstones", hashlib.sha256).digest()


def user_digest(key: bytes, user_id: str) -> str:
    """Hex HMAC-SHA256 of a user id under ``digest_key``."""
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()


class Tombstones:
    """The tombstones of one deployment.

    Args:
        redis: ``redis.asyncio.Redis``.
        keys: key names.
        secret: the snapshot signing key (``engine.storage.signing.load_key``).
    """

    def __init__(self, redis: Redis, keys: Keys, secret: bytes) -> None:
        self.redis = redis
        self.keys = keys
        self.key = digest_key(secret)
        self._script = redis.register_script(_FORGET)
        self._clean = redis.register_script(_DELETE_IF_EQUAL)

    def digest(self, user_id: str) -> str:
        """The tombstone digest of ``user_id``."""
        return user_digest(self.key, user_id)

    async def forget(self, user_id: str, received_at: float | None = None) -> str:
        """Append a ``forget`` entry for ``user_id`` and its tombstone in one atomic call;
        returns the entry's stream id.

        Raises:
            redis.exceptions.RedisError: Redis could not take it (nothing was written).
        """
        t = time.time() if received_at is None else received_at
        fields = to_fields(Event(user_id=user_id, item_id="", kind=FORGET_KIND, received_at=t))
        flat = [x for kv in fields.items() for x in kv]
        k = self.keys
        eid = await self._script(keys=[k.feedback, k.forgotten, k.forgotten_order, k.forgotten_purge,
                                       k.forgotten_snapshots], args=[self.digest(user_id), repr(t), *flat])
        return eid.decode() if isinstance(eid, bytes) else eid

    async def get(self, user_id: str) -> Tombstone | None:
        """The tombstone of ``user_id`` (its latest erasure), or None."""
        d = self.digest(user_id)
        raw = await self.redis.hget(self.keys.forgotten, d)
        return None if raw is None else _tombstone(d, raw)

    async def after(self, last_id: str | None) -> dict[str, str]:
        """``digest -> at`` of the tombstones whose forget entry comes after stream id
        ``last_id`` (None: all of them): the users a snapshot taken at ``last_id`` may
        still hold."""
        low = stream_id_key(last_id)[0] if last_id else "-inf"
        digests = await self.redis.zrangebyscore(self.keys.forgotten_order, low, "+inf")
        if not digests:
            return {}
        raws = await self.redis.hmget(self.keys.forgotten, digests)
        out = {}
        for d, raw in zip(digests, raws):
            if raw is None:
                continue
            stone = _tombstone(d.decode() if isinstance(d, bytes) else d, raw)
            if last_id is None or stream_id_key(stone.at) > stream_id_key(last_id):
                out[stone.digest] = stone.at
        return out

    async def pending_purges(self) -> dict[str, str]:
        """``digest -> at`` of the tombstones whose stream purge has not completed."""
        digests = await self.redis.smembers(self.keys.forgotten_purge)
        if not digests:
            return {}
        digests = sorted(d.decode() if isinstance(d, bytes) else d for d in digests)
        raws = await self.redis.hmget(self.keys.forgotten, digests)
        return {d: _tombstone(d, raw).at for d, raw in zip(digests, raws) if raw is not None}

    async def purged(self, digests) -> None:
        """Mark the stream purges of ``digests`` complete."""
        if digests:
            await self.redis.srem(self.keys.forgotten_purge, *digests)

    async def snapshots_dirty(self) -> str | None:
        """Stream id of the newest forget entry whose older snapshots may still be retained."""
        raw = await self.redis.get(self.keys.forgotten_snapshots)
        return None if raw is None else (raw.decode() if isinstance(raw, bytes) else raw)

    async def snapshots_clean(self, at: str) -> None:
        """Snapshots older than forget entry ``at`` are gone (unless a newer erasure came
        meanwhile: compare-and-delete)."""
        await self._clean(keys=[self.keys.forgotten_snapshots], args=[at])


def _tombstone(digest: str, raw: bytes | str) -> Tombstone:
    data = json.loads(raw)
    return Tombstone(digest, data["at"], float(data.get("t", 0.0)))


def erase_tombstoned(rec, pending: dict[str, str], digest) -> list[str]:
    """Erase from ``rec`` (a ``Recommender`` just restored from a snapshot) every user whose
    ``digest(user_id)`` is in ``pending`` (``Tombstones.after`` of the snapshot's last stream
    id); returns the ids erased. Cost: one HMAC per user the model holds (~1.5 us), only
    when ``pending`` is non-empty."""
    if not pending or rec is None:
        return []
    candidates = set(rec.model.user_index) | set(rec._shown) | set(rec.activity.last)
    doomed = sorted(u for u in candidates if digest(u) in pending)
    for user in doomed:
        erase(rec, user)
    return doomed


def purge_stream(client: redis_sync.Redis, keys: Keys, pending: dict[str, str], key: bytes,
                 batch: int = SCAN_BATCH) -> int:
    """XDEL every stream entry of a tombstoned user that precedes their forget entry
    (``pending``: digest -> at), scanning the stream in batches of ``batch`` entries with a
    synchronous client (run it in a worker thread). Forget entries stay: a replay from an
    older snapshot needs them. Deleted entries are also acknowledged in the learner's group
    (one it had read but not acknowledged would otherwise stay pending forever).
    Idempotent. Returns the entries deleted.

    Raises:
        redis.exceptions.RedisError: Redis unavailable (the purge stays pending).
    """
    if not pending:
        return 0
    end = max(pending.values(), key=stream_id_key)
    limits = {d: stream_id_key(at) for d, at in pending.items()}
    digests: dict[bytes, str] = {}
    start, deleted = "-", 0
    while True:
        entries = client.xrange(keys.feedback, start, end, count=batch)
        doomed = []
        for eid, fields in entries:
            user = fields.get(b"u")
            if not user or fields.get(b"k") == FORGET_KIND.encode():
                continue
            d = digests.get(user)
            if d is None:
                d = digests[user] = user_digest(key, user.decode())
            limit = limits.get(d)
            if limit is not None and stream_id_key(eid) < limit:
                doomed.append(eid)
        if doomed:
            deleted += client.xdel(keys.feedback, *doomed)
            try:  # never to be applied: not pending in the learner's group either
                client.xack(keys.feedback, LEARNER_GROUP, *doomed)
            except redis_sync.ResponseError:  # no group yet
                pass
        if len(entries) < batch:
            return deleted
        start = "(" + entries[-1][0].decode()


def purge_slates(client: redis_sync.Redis, keys: Keys, user_ids: list[str], window_s: float,
                 now: float | None = None, batch: int = SCAN_BATCH) -> int:
    """Delete the served slates of ``user_ids`` from the impression join's hashes
    (``{prefix}:slates:<minute>`` of the last ``window_s`` + 2 minutes, the ones that have
    not expired), scanning each hash in batches (HSCAN) with a synchronous client. Returns
    the slates deleted.

    Raises:
        redis.exceptions.RedisError: Redis unavailable.
    """
    if not user_ids:
        return 0
    now = time.time() if now is None else now
    prefixes = tuple(json.dumps([u])[:-1].encode() + b"," for u in user_ids)  # b'["<id>",'
    first = int((now - window_s) // SLATE_BUCKET_S) - 2
    last = int(now // SLATE_BUCKET_S) + 1
    deleted = 0
    for minute in range(first, last + 1):
        key = keys.slates(f"{minute:x}")
        cursor = 0
        while True:
            cursor, fields = client.hscan(key, cursor, count=batch)
            doomed = [rid for rid, value in fields.items() if value.startswith(prefixes)]
            if doomed:
                deleted += client.hdel(key, *doomed)
            if cursor == 0:
                break
    return deleted
