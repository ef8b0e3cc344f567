"""Signed, versioned model snapshots in Redis: encode, sign, save, retain, verify, restore.

Blob layout::

    MAGIC (8 B) | HMAC-SHA256(key, payload) (32 B) | payload
    payload = uint64 header length | JSON header | raw array bytes

The JSON header holds the metadata plus, per array, its dtype, shape and byte offset. Arrays
are written as raw little-endian bytes (a memcpy; no pickle, no zip): for 100k users + 100k
items a River pickle costs ~1.5 s, this ~tens of ms. The signature is checked before a single
byte of the payload is parsed, so a tampered, truncated or foreign snapshot is refused and
never decoded; ``np.frombuffer`` cannot execute code in any case.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import struct
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import redis
from redis.asyncio import Redis
from redis.connection import Encoder, PythonRespSerializer

from engine.keys import Keys

log = logging.getLogger("freshrec.snapshots")

MAGIC = b"FRSNAP2\n"
CHUNK = 1 << 20  # bytes per Redis command when moving snapshot blobs
ORPHAN_TTL_S = 3600  # an uncommitted blob (writer died) expires after this long
_MAC = 32
_ALLOWED_DTYPES = {"<f8", "<f4", "<i8", "<i4", "|b1", "|u1"}


class SnapshotError(ValueError):
    """A snapshot is unsigned, tampered with, truncated, signed with another key or malformed."""


@dataclass
class SnapshotInfo:
    """Metadata of one snapshot (JSON in the ``{prefix}:snapshots`` hash).

    version: increasing integer. created_at: unix s. events_learned: events applied when it
    was taken. last_event_id: stream id of the last applied event (recovery replays entries
    after it). signature: hex HMAC-SHA256 of the blob (a keyed checksum). size: bytes. verdict: guard / lifecycle
    verdict ("ok", "restored from vN", ...).
    """

    version: int
    created_at: float
    events_learned: int
    last_event_id: str | None
    signature: str
    size: int
    verdict: str = "ok"
    note: dict = field(default_factory=dict)


def unpack_ids(text: np.ndarray, lengths: np.ndarray) -> list[str]:
    """The id list packed by ``engine.arrays.PackedIds`` (UTF-8 bytes, per-id character
    lengths)."""
    joined = text.tobytes().decode()
    ends = np.cumsum(lengths).tolist()
    starts = [0] + ends[:-1]
    return [joined[a:b] for a, b in zip(starts, ends)]


def pack(arrays: dict[str, np.ndarray], meta: dict, alloc=None) -> np.ndarray:
    """Serialise arrays + JSON-able metadata into an unsigned blob (uint8 array; the MAC
    field is zero until ``sign``). Each array is copied once, straight into the output;
    the copies are numpy memcpys that release the GIL, so a worker thread can pack a 70 MB
    model while the event loop keeps serving. ``alloc(n)`` returns a writable uint8 buffer
    of at least n bytes to pack into (default: a new ``np.empty``); the checkpoint passes a
    shared-memory buffer its writer process reads (``engine.snapshot_writer``), whose pages
    are faulted in here, in the packing thread (a ``bytearray`` would be zero-filled while
    holding the GIL: measured 14 ms p50 stalls). An array may also be deferred: any object with
    ``dtype``, ``shape``, ``nbytes`` and ``write_into(out)`` (``out`` a typed view of its
    place in the blob) is written by that call instead of copied.
    """
    arrays = {name: arr if hasattr(arr, "write_into") else np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
              for name, arr in arrays.items()}
    specs, offset = {}, 0
    for name, arr in arrays.items():
        specs[name] = [arr.dtype.newbyteorder("<").str, list(arr.shape), offset, arr.nbytes]
        offset += arr.nbytes
    header = json.dumps({"meta": meta, "arrays": specs}, separators=(",", ":")).encode()
    start = len(MAGIC) + _MAC + 8 + len(header)
    size = start + offset
    out = (alloc or _new_buffer)(size)[:size]
    out[: len(MAGIC)] = np.frombuffer(MAGIC, dtype=np.uint8)
    out[len(MAGIC): len(MAGIC) + _MAC] = 0
    out[len(MAGIC) + _MAC: len(MAGIC) + _MAC + 8] = np.frombuffer(struct.pack("<Q", len(header)), dtype=np.uint8)
    out[len(MAGIC) + _MAC + 8: start] = np.frombuffer(header, dtype=np.uint8)
    for name, arr in arrays.items():
        dtype, _, off, nbytes = specs[name]
        if hasattr(arr, "write_into"):  # deferred (e.g. cooccurrence.RowPrefixes): gathered in place
            arr.write_into(out[start + off: start + off + nbytes].view(np.dtype(dtype)))
        else:
            out[start + off: start + off + nbytes] = arr.reshape(-1).view(np.uint8)
    return out


def _new_buffer(size: int) -> np.ndarray:
    return np.empty(size, dtype=np.uint8)


def sign(blob: np.ndarray, key: bytes) -> np.ndarray:
    """Write HMAC-SHA256(key, payload) into a ``pack``ed blob (in place; returns it).
    OpenSSL's HMAC releases the GIL on large buffers (~40 ms for 70 MB here)."""
    mac = hmac.new(key, memoryview(blob)[len(MAGIC) + _MAC:], hashlib.sha256).digest()
    blob[len(MAGIC): len(MAGIC) + _MAC] = np.frombuffer(mac, dtype=np.uint8)
    return blob


def encode(arrays: dict[str, np.ndarray], meta: dict, key: bytes) -> bytearray:
    """``pack`` then ``sign``: a complete signed blob (a fresh ``bytearray``)."""
    return bytearray(sign(pack(arrays, meta), key))


def signature(blob: bytes | bytearray | np.ndarray) -> str:
    """Hex of the blob's HMAC-SHA256 (its keyed checksum, listed in the metadata)."""
    return bytes(memoryview(blob)[len(MAGIC): len(MAGIC) + _MAC]).hex()


def decode(blob: bytes, key: bytes) -> tuple[dict[str, np.ndarray], dict]:
    """Verify the signature, then parse. Inverse of ``encode``.

    Raises:
        SnapshotError: bad magic, missing/wrong signature (tampered, truncated, other key)
            or a malformed payload.
    """
    if len(blob) < len(MAGIC) + _MAC + 8 or not blob.startswith(MAGIC):
        raise SnapshotError("not a signed freshrec snapshot (bad magic or too short)")
    mac = blob[len(MAGIC): len(MAGIC) + _MAC]
    payload = memoryview(blob)[len(MAGIC) + _MAC:]
    if not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
        raise SnapshotError("signature mismatch (tampered, truncated or signed with another key)")
    try:
        (n,) = struct.unpack_from("<Q", payload, 0)
        header = json.loads(bytes(payload[8: 8 + n]))
        body = payload[8 + n:]
        arrays = {}
        for name, (dtype, shape, offset, size) in header["arrays"].items():
            if dtype not in _ALLOWED_DTYPES:
                raise SnapshotError(f"array {name}: dtype {dtype} not allowed")
            arrays[name] = np.frombuffer(body[offset: offset + size], dtype=dtype).reshape(shape).copy()
    except SnapshotError:
        raise
    except Exception as exc:
        raise SnapshotError(f"malformed snapshot payload: {exc}") from exc
    return arrays, header["meta"]


@dataclass
class Retention:
    """Which snapshots to keep: the newest ``recent``, plus the newest of every hour for the
    last ``hours`` hours, all within ``max_bytes`` in total (oldest dropped first; the
    newest is always kept). Defaults keep >= 24 h of history at any checkpoint interval."""

    recent: int = 10
    hours: float = 25.0
    max_bytes: int = 2 * 1024**3

    def keep(self, infos: list[SnapshotInfo], now: float) -> set[int]:
        """Versions to keep out of ``infos`` (any order)."""
        newest_first = sorted(infos, key=lambda i: i.version, reverse=True)
        kept = {i.version for i in newest_first[: max(1, self.recent)]}
        hourly: set[int] = set()
        for info in newest_first:
            age_h = (now - info.created_at) / 3600.0
            if age_h <= self.hours and int(info.created_at // 3600) not in hourly:
                hourly.add(int(info.created_at // 3600))
                kept.add(info.version)
        total = 0
        final = set()
        for info in newest_first:
            if info.version in kept and (not final or total + info.size <= self.max_bytes):
                final.add(info.version)
                total += info.size
        return final


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
        key: HMAC key (``engine.signing.load_key``).
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
