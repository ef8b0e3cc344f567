"""Versioned model snapshots in Redis: encode, checksum, save, prune, restore.

Format: ``MAGIC | uint64 header length | JSON header | .npz of float64/int64 arrays``.
Parameters are numpy arrays (not a pickle of the River model): for 100k users + 100k items
a pickle costs ~1.5 s to dump, arrays ~20 ms; and ``np.load(allow_pickle=False)`` never runs
code from the blob. Each snapshot's SHA-256 is kept in its metadata and checked on load.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import struct
import time
from dataclasses import asdict, dataclass

import numpy as np
from redis.asyncio import Redis

from engine.keys import Keys

log = logging.getLogger("freshrec.snapshots")

MAGIC = b"FRSNAP1\n"


class SnapshotError(ValueError):
    """A snapshot blob is malformed or fails its checksum."""


@dataclass
class SnapshotInfo:
    """Metadata of one snapshot (stored as JSON in ``{prefix}:snapshots``).

    version: monotonically increasing integer. created_at: unix s. events_learned: events
    applied when it was taken. last_event_id: stream id of the last applied event (restore
    replays entries after it). checksum: SHA-256 hex of the blob. size: bytes.
    """

    version: int
    created_at: float
    events_learned: int
    last_event_id: str | None
    checksum: str
    size: int


def encode(arrays: dict[str, np.ndarray], meta: dict) -> bytes:
    """Serialise arrays + JSON metadata into one blob."""
    header = json.dumps(meta, separators=(",", ":")).encode()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return MAGIC + struct.pack("<Q", len(header)) + header + buf.getvalue()


def decode(blob: bytes) -> tuple[dict[str, np.ndarray], dict]:
    """Inverse of ``encode``.

    Raises:
        SnapshotError: bad magic, truncated or unparsable blob.
    """
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 8:
        raise SnapshotError("not a freshrec snapshot (bad magic)")
    (n,) = struct.unpack_from("<Q", blob, len(MAGIC))
    start = len(MAGIC) + 8
    try:
        meta = json.loads(blob[start: start + n])
        with np.load(io.BytesIO(blob[start + n:]), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise SnapshotError(f"corrupt snapshot: {exc}") from exc
    return arrays, meta


def checksum(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


class SnapshotStore:
    """Keeps the last ``keep`` snapshots in Redis with a pointer to the current one.

    Args:
        redis: ``redis.asyncio.Redis`` (binary-safe: ``decode_responses=False``).
        keys: key names.
        keep: snapshots retained (>= 1).
    """

    def __init__(self, redis: Redis, keys: Keys, keep: int = 5) -> None:
        self.redis = redis
        self.keys = keys
        self.keep = max(1, keep)

    async def save(self, blob: bytes, events_learned: int, last_event_id: str | None) -> SnapshotInfo:
        """Write a snapshot, make it current and prune old ones atomically (MULTI/EXEC).

        Raises:
            redis.exceptions.RedisError: Redis unavailable (the previous pointer stays).
        """
        version = int(await self.redis.incr(self.keys.snapshot_seq))
        info = SnapshotInfo(version, time.time(), events_learned, last_event_id, checksum(blob), len(blob))
        existing = sorted(int(v) for v in await self.redis.hkeys(self.keys.snapshot_meta))
        drop = existing[: max(0, len(existing) + 1 - self.keep)]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.snapshot_blob(version), blob)
            pipe.hset(self.keys.snapshot_meta, str(version), json.dumps(asdict(info)))
            pipe.set(self.keys.snapshot_current, version)
            for v in drop:
                pipe.delete(self.keys.snapshot_blob(v))
                pipe.hdel(self.keys.snapshot_meta, str(v))
            await pipe.execute()
        return info

    async def list(self) -> list[SnapshotInfo]:
        """Retained snapshots, newest first."""
        raw = await self.redis.hgetall(self.keys.snapshot_meta)
        infos = [SnapshotInfo(**json.loads(v)) for v in raw.values()]
        return sorted(infos, key=lambda i: i.version, reverse=True)

    async def load_latest_good(self) -> tuple[SnapshotInfo, dict, dict] | None:
        """The current snapshot, or the newest older one that verifies, decoded.

        Returns None when there is no usable snapshot. A blob that is missing, fails its
        checksum or does not decode is skipped with an error log line.
        """
        current = await self.redis.get(self.keys.snapshot_current)
        current = int(current) if current is not None else None
        for info in await self.list():
            if current is not None and info.version > current:
                continue
            blob = await self.redis.get(self.keys.snapshot_blob(info.version))
            if blob is None or checksum(blob) != info.checksum:
                log.error("snapshot %s refused: missing or checksum mismatch", info.version)
                continue
            try:
                arrays, meta = decode(blob)
            except SnapshotError as exc:
                log.error("snapshot %s refused: %s", info.version, exc)
                continue
            return info, arrays, meta
        return None

    async def oldest_event_id(self) -> str | None:
        """last_event_id of the oldest retained snapshot (the stream may be trimmed to it)."""
        infos = await self.list()
        return infos[-1].last_event_id if infos else None
