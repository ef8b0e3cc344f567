"""The learner: the single writer that turns the feedback stream into model updates.

Loop: XREADGROUP a batch -> ``Recommender.apply`` each event in stream order -> XACK ->
record feedback->learned latency -> checkpoint every N events / T seconds. On start it
restores the newest good snapshot and rewinds the consumer group to that snapshot's last
stream id, so every accepted event after it is applied exactly once more (the entries
applied before the crash but after the snapshot were lost with the process memory).
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from engine.config import EngineConfig
from engine.feedback_log import FeedbackLog
from engine.freshness import LatencyWindow
from engine.keys import Keys
from engine.recommender import Recommender
from engine.snapshots import Retention, SnapshotInfo, SnapshotStore, encode

log = logging.getLogger("freshrec.learner")

_CHUNK = 32  # events applied between yields to the event loop (keeps /recommend responsive)


def stream_id_key(event_id: str) -> tuple[int, int]:
    """Sortable key of a Redis Stream id ``"<ms>-<seq>"``.

    Raises:
        ValueError: not a stream id.
    """
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class Learner:
    """Consumes ``{prefix}:feedback`` and keeps ``self.recommender`` learned and checkpointed.

    Args:
        redis: ``redis.asyncio.Redis`` (binary responses).
        config: engine configuration (snapshot policy included).
        snapshot_key: HMAC key that signs and verifies snapshots (``engine.signing``).
        consumer: consumer name within the ``learner`` group.
        retention: which snapshots to keep.
    """

    def __init__(self, redis: Redis, config: EngineConfig | None = None, snapshot_key: bytes = b"",
                 consumer: str = "learner-1", retention: Retention | None = None) -> None:
        if not snapshot_key:
            raise ValueError("snapshot_key is required (see engine.signing.load_key)")
        self.config = config or EngineConfig()
        self.keys = Keys(self.config.key_prefix)
        self.log = FeedbackLog(redis, self.keys)
        self.snapshots = SnapshotStore(redis, self.keys, snapshot_key, retention)
        self.recommender = Recommender(self.config)
        self.consumer = consumer
        self.freshness = LatencyWindow()
        self.last_snapshot: SnapshotInfo | None = None
        self.checkpoint_ms: list[float] = []
        self.checkpoint_windows: list[tuple[float, float]] = []  # (start, end) unix s, last 100
        self.checkpointing = False
        self.redis_ok = True
        self.errors = 0
        self._since_snapshot = 0
        self._snapshot_clock = time.monotonic()
        self._progress = asyncio.Event()
        self._lock = asyncio.Lock()  # one writer: learning, checkpoints and restores never interleave

    async def start(self) -> None:
        """Restore the newest good snapshot and position the consumer group after it."""
        await self.log.ensure_group()
        restored = await self.snapshots.load_latest_good()
        if restored is not None:
            info, arrays, meta = restored
            self.recommender = Recommender.from_state(arrays, meta, self.config)
            self.last_snapshot = info
            log.info("restored snapshot v%s (%s events)", info.version, info.events_learned)
        await self.log.set_position(self.recommender.last_event_id)

    async def step(self, block_ms: int = 100, count: int = 256) -> int:
        """Read and apply one batch; returns how many events were applied.

        Raises:
            redis.exceptions.RedisError: Redis unreachable (``run`` retries).
        """
        events = await self.log.read(self.consumer, count=count, block_ms=block_ms)
        async with self._lock:
            await self._apply(events)
            if self._checkpoint_due():
                await self._checkpoint()
        return len(events)

    async def _apply(self, events) -> None:
        rec = self.recommender
        for start in range(0, len(events), _CHUNK):
            now = time.time()
            for event in events[start: start + _CHUNK]:
                try:
                    rec.apply(event)
                except (ValueError, KeyError) as exc:  # never crash on one bad entry
                    self.errors += 1
                    log.error("skipped stream entry %s: %s", event.event_id, exc)
                    rec.last_event_id = event.event_id
                    continue
                self.freshness.add((now - event.received_at) * 1000.0)
            self._wake()
            if start + _CHUNK < len(events):
                await asyncio.sleep(0)
        if events:
            await self.log.ack([e.event_id for e in events])
            self._since_snapshot += len(events)

    def _checkpoint_due(self) -> bool:
        c = self.config
        if self._since_snapshot == 0:
            return False
        return (self._since_snapshot >= c.snapshot_every_events
                or time.monotonic() - self._snapshot_clock >= c.snapshot_every_s)

    async def checkpoint(self, verdict: str = "ok", note: dict | None = None) -> SnapshotInfo:
        """Snapshot the model now (waits for the batch being learned to finish).

        Raises:
            redis.exceptions.RedisError: the snapshot could not be written.
        """
        async with self._lock:
            return await self._checkpoint(verdict, note)

    async def _checkpoint(self, verdict: str = "ok", note: dict | None = None) -> SnapshotInfo:
        # Learning is paused (we hold the lock) while a worker thread copies and encodes the
        # state, so the copy is consistent; /recommend keeps being served on the event loop
        # because reads never mutate.
        t0 = time.perf_counter()
        wall0 = time.time()
        self.checkpointing = True
        try:
            rec = self.recommender
            key = self.snapshots.key

            def capture() -> tuple[bytes, dict]:
                arrays, meta = rec.state()
                return encode(arrays, meta, key), meta

            blob, meta = await asyncio.to_thread(capture)
            info = await self.snapshots.save(blob, meta["events_learned"], meta["last_event_id"], verdict, note)
            trim = await self.snapshots.trim_point()
            if trim:
                await self.log.trim_before(trim)
        finally:
            self.checkpointing = False
        self.last_snapshot = info
        self._since_snapshot = 0
        self._snapshot_clock = time.monotonic()
        self.checkpoint_ms.append((time.perf_counter() - t0) * 1000.0)
        self.checkpoint_windows = self.checkpoint_windows[-99:] + [(wall0, time.time())]
        log.info("snapshot v%s: %s events, %.1f KB, %.0f ms", info.version, info.events_learned,
                 info.size / 1024, self.checkpoint_ms[-1])
        return info

    async def run(self) -> None:
        """Learn forever (until cancelled); survives Redis outages by retrying."""
        backoff = 0.05
        while True:
            try:
                await self.step()
                if not self.redis_ok:
                    log.warning("redis reachable again; learning resumed")
                self.redis_ok = True
                backoff = 0.05
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # Redis came back without our stream/group (restarted empty): recreate it and
                # continue after what we have learned.
                log.error("consumer group missing (%s); recreating it", exc)
                await self.log.ensure_group()
                await self.log.set_position(self.recommender.last_event_id)
            except RedisError as exc:
                if self.redis_ok:
                    log.error("redis unavailable, learner paused: %s", exc)
                self.redis_ok = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def restore_version(self, version: int) -> dict:
        """Make snapshot ``version`` the serving model; the learner continues from it with
        the events that arrive from now on (events between that snapshot and now are not
        re-applied: that is the point of a rollback). A new snapshot records the restore,
        so a crash right after it does not undo it.

        Raises:
            KeyError: no such snapshot.
            engine.snapshots.SnapshotError: it fails verification (the live model is kept).
        """
        async with self._lock:
            info, arrays, meta = await self.snapshots.load(version)
            previous = self.recommender
            restored = await asyncio.to_thread(Recommender.from_state, arrays, meta, self.config)
            restored.last_event_id = previous.last_event_id  # continue from the live stream position
            self.recommender = restored
            saved = await self._checkpoint(verdict=f"restored from v{version}",
                                           note={"restored_from": version, "skipped_events":
                                                 previous.events_learned - info.events_learned})
        log.warning("restored snapshot v%s as the serving model (new snapshot v%s)", version, saved.version)
        return {"restored_version": version, "snapshot_version": saved.version,
                "model_version": restored.events_learned, "previous_model_version": previous.events_learned,
                "last_event_id": restored.last_event_id}

    def learned(self, event_id: str) -> bool:
        """Has the event with this stream id been applied?"""
        last = self.recommender.last_event_id
        return last is not None and stream_id_key(last) >= stream_id_key(event_id)

    async def wait_learned(self, event_id: str, timeout_s: float) -> bool:
        """Wait (without polling) until ``event_id`` is applied or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not self.learned(event_id):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except asyncio.TimeoutError:
                return self.learned(event_id)
        return True

    def _wake(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()
