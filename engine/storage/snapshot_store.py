"""Signed, versioned model snapshots in Redis: write in chunks, publish, list, load, verify.

The bytes are ``engine.core.snapshot_codec`` blobs; retention is ``engine.storage.retention``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict

import numpy as np
import redis
from redis.asyncio import Redis
from redis.connection import Encoder, PythonRespSerializer

from engine.core.snapshot_codec import SnapshotError, decode
from engine.storage.keys import Keys
from engine.storage.retention import Retention, SnapshotInfo

log = logging.getLogger("freshrec.snapshots")

class NoUsableSnapshot(RuntimeError):
    """Snapshots are stored but none verifies with this process's key (another key, or all
    damaged): a misconfiguration to fix before the process may start."""


CHUNK = 1 << 20  # bytes per Redis command when moving snapshot blobs
ORPHAN_TTL_S = 3600  # an uncommitted blob (writer died) expires after this long


def blob_client(url: str, socket_timeout: float = 60.0) -> redis.Redis:
    """A synchronous client for ``write_blob``. It packs commands with redis-py's
    pure-Python serializer, which hands large values to ``sendall`` as memoryviews; the
    default hiredis packer copies every 1 MB chunk first (~2 ms each, 135 ms of CPU per
    70 MB, measured), CPU the serving process would lose on a small machine."""
    packer = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)
    return redis.Redis.from_url(url, socket_timeout=socket_timeout, command_packer=packer)


def write_blob(client: redis.Redis, key: str, blob: bytes | bytearray | np.ndarray,
               pace_bytes_per_s: float = 0.0) -> None:
    """Write ``blob`` to ``key`` with a synchronous client in ``CHUNK``-sized SETRANGEs.

    One 70 MB SET blocks an asyncio event loop ~100 ms inside redis-py and Redis itself for
    as long (measured); chunks let other clients' commands (XADDs) interleave. The key is
    not referenced by any metadata until ``SnapshotStore.commit``, and carries a TTL until
    then. Use ``blob_client`` (no per-chunk copies).
    """
    view = memoryview(blob).cast("B")
    client.unlink(key)
    if not len(view):
        client.set(key, b"")
    client.setrange(key, 0, view[:CHUNK])
    client.expire(key, ORPHAN_TTL_S)  # a writer that dies mid-way leaves no orphan behind
    t0 = time.perf_counter()
    for start in range(CHUNK, len(view), CHUNK):
        client.setrange(key, start, view[start: start + CHUNK])
        if pace_bytes_per_s:  # leave Redis (and the cores it shares) time for other clients
            ahead = (start + CHUNK) / pace_bytes_per_s - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)


class SnapshotStore:
    """Snapshots in Redis with a pointer to the current one.

    Args:
        redis: ``redis.asyncio.Redis`` with binary responses.
        keys: key names.
        key: HMAC key (``engine.storage.signing.load_key``).
        retention: what to keep.
    """

    def __init__(self, redis: Redis, keys: Keys, key: bytes, retention: Retention | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.key = key
        self.retention = retention or Retention()

    async def reserve_version(self) -> int:
        """A new snapshot version number (INCR; versions are never reused)."""
        return int(await self.redis.incr(self.keys.snapshot_seq))

    async def commit(self, version: int, size: int, signature_hex: str, events_learned: int,
                     last_event_id: str | None, verdict: str = "ok", note: dict | None = None) -> SnapshotInfo:
        """Publish a snapshot whose blob is already written (``write_blob``): metadata,
        pointer and pruning in one MULTI/EXEC, so a crash leaves either the old or the new
        pointer, never half of it.

        Raises:
            redis.exceptions.RedisError: Redis unavailable (the previous pointer stays).
        """
        info = SnapshotInfo(version, time.time(), events_learned, last_event_id, signature_hex, size,
                            verdict, note or {})
        infos = await self.list()
        keep = self.retention.keep(infos + [info], info.created_at)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.persist(self.keys.snapshot_blob(version))  # written with a TTL until now
            pipe.hset(self.keys.snapshot_meta, str(version), json.dumps(asdict(info)))
            pipe.set(self.keys.snapshot_current, version)
            for old in infos:
                if old.version not in keep:
                    pipe.unlink(self.keys.snapshot_blob(old.version))
                    pipe.hdel(self.keys.snapshot_meta, str(old.version))
            await pipe.execute()
        return info

    async def _read_blob(self, key: str) -> bytes | None:
        """Read a blob in ``CHUNK``-sized GETRANGEs (see ``write_blob``); None if missing."""
        size = await self.redis.strlen(key)
        if not size:
            return None if not await self.redis.exists(key) else b""
        parts = []
        for start in range(0, size, CHUNK):
            parts.append(await self.redis.getrange(key, start, min(size, start + CHUNK) - 1))
        return b"".join(parts)

    async def list(self) -> list[SnapshotInfo]:
        """Retained snapshots, newest first."""
        raw = await self.redis.hgetall(self.keys.snapshot_meta)
        infos = [SnapshotInfo(**json.loads(v)) for v in raw.values()]
        return sorted(infos, key=lambda i: i.version, reverse=True)

    async def load(self, version: int) -> tuple[SnapshotInfo, dict, dict]:
        """Fetch, verify and decode one snapshot.

        Raises:
            KeyError: no such snapshot.
            SnapshotError: it fails verification (logged with the reason).
        """
        raw = await self.redis.hget(self.keys.snapshot_meta, str(version))
        blob = await self._read_blob(self.keys.snapshot_blob(version))
        if raw is None or blob is None:
            raise KeyError(version)
        info = SnapshotInfo(**json.loads(raw))
        try:
            arrays, meta = decode(blob, self.key)
        except SnapshotError as exc:
            log.error("snapshot v%s refused: %s", version, exc)
            raise
        return info, arrays, meta

    async def load_latest_good(self) -> tuple[SnapshotInfo, dict, dict] | None:
        """The current snapshot or, when it fails verification, the newest older one that
        passes. None when there is no usable snapshot."""
        current = await self.redis.get(self.keys.snapshot_current)
        current = int(current) if current is not None else None
        for info in await self.list():
            if current is not None and info.version > current:
                continue
            try:
                loaded = await self.load(info.version)
            except (KeyError, SnapshotError):
                log.error("falling back to an older snapshot than v%s", info.version)
                continue
            if loaded[0].version != current:
                log.warning("serving snapshot v%s instead of current v%s", loaded[0].version, current)
            return loaded
        return None

    async def trim_point(self, depth: int = 3) -> str | None:
        """Stream id before which the feedback log may be trimmed: the last_event_id of the
        ``depth``-th newest snapshot, so falling back up to ``depth - 1`` snapshots can
        still replay the stream exactly. None: do not trim yet."""
        infos = await self.list()
        if len(infos) < depth:
            return None
        return infos[depth - 1].last_event_id
