"""The learner: the single writer that turns the feedback stream into model updates.

Loop: XREADGROUP a batch -> ``Recommender.apply`` each event in stream order -> XACK ->
record feedback->learned latency -> checkpoint every N events / T seconds. On start it
restores the newest good snapshot and rewinds the consumer group to that snapshot's last
stream id, so every accepted event after it is applied exactly once more (the entries
applied before the crash but after the snapshot were lost with the process memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from engine.config import EngineConfig
from engine.feedback_log import FeedbackLog
from engine.freshness import LatencyWindow
from engine.guard import GuardConfig, GuardedRecommender
from engine.keys import Keys
from engine.recommender import Recommender
from engine.redis_server import RedisTarget, resolve
from engine.signing import load_key
from engine.snapshot_writer import SnapshotWriter
from engine.snapshots import Retention, SnapshotError, SnapshotInfo, SnapshotStore, pack
from engine.trust import SlateStore

log = logging.getLogger("freshrec.learner")

# The learner shares the event loop with the API: it applies events in time slices and
# yields between them, so a request waits at most one slice. When every loop iteration also
# carries a full load of requests (32 in flight take ~15 ms), a fixed 32-event chunk per
# iteration capped learning at ~1.5k events/s while /recommend ran at saturation (measured,
# load/bench.py). Slices are therefore timed, and longer while the learner is behind, so it
# catches up instead of falling further behind. "Behind" is a full batch, or a batch whose
# oldest event was accepted more than _BEHIND_S ago: with the full-batch rule alone the lag
# settled just under one batch (1,024 events, ~0.5 s at 2k events/s with /recommend
# saturated: feedback-to-effect p50 <= 0.5 s, p99 <= 1 s in load/bench.py's
# recommend_learning row).
_SLICE_S = 0.002  # per slice, stream caught up
_SLICE_BACKLOG_S = 0.008  # per slice, stream behind
_BEHIND_S = 0.05  # a batch whose oldest event waited longer than this gets backlog slices
_CHECK_EVERY = 8  # events between clock reads


def _behind(events: list, count: int) -> bool:
    """Whether a batch read with ``count`` shows the learner behind: it came back full, or
    its oldest event was accepted more than ``_BEHIND_S`` ago (wall clock, ``received_at``)."""
    return len(events) >= count or (bool(events) and time.time() - events[0].received_at > _BEHIND_S)


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
        redis_url: the same Redis as a URL (the snapshot writer process opens its own client).
        config: engine configuration (snapshot policy included).
        snapshot_key: HMAC key that signs and verifies snapshots (``engine.signing``).
        consumer: consumer name within the ``learner`` group.
        retention: which snapshots to keep (default: from ``config``).
        guard: forgetting-guard configuration (``engine.guard``); events are learned through
            it. The API records served slates in ``self.slates`` (Redis, shared by replicas)
            and classifies feedback at acceptance with ``self.join`` (vetted accounts).
    """

    def __init__(self, redis: Redis, redis_url: str, config: EngineConfig | None = None, snapshot_key: bytes = b"",
                 consumer: str = "learner-1", retention: Retention | None = None,
                 guard: GuardConfig | None = None) -> None:
        if not snapshot_key:
            raise ValueError("snapshot_key is required (see engine.signing.load_key)")
        self.config = config or EngineConfig()
        self.keys = Keys(self.config.key_prefix)
        self.redis_url = redis_url
        self.log = FeedbackLog(redis, self.keys)
        c = self.config
        retention = retention or Retention(c.snapshots_recent, c.snapshots_hours, c.snapshots_max_bytes)
        self.snapshots = SnapshotStore(redis, self.keys, snapshot_key, retention)
        self.guarded = GuardedRecommender(self.config, guard or GuardConfig())
        self.join = self.guarded.join  # vetted accounts (and, in-process, slates)
        self.slates = SlateStore(redis, self.keys, self.guarded.guard.join_window_s)  # the API's served slates
        self.consumer = consumer
        self.freshness = LatencyWindow()
        self.on_learned = None  # optional callable(seconds) per learned event (e.g. a Prometheus histogram)
        self.last_snapshot: SnapshotInfo | None = None
        self.checkpoint_ms: list[float] = []
        self.checkpoint_windows: list[tuple[float, float]] = []  # (start, end) unix s, last 100
        self.redis_ok = True
        self.errors = 0
        self._since_snapshot = 0
        self._snapshot_clock = time.monotonic()
        self._progress = asyncio.Event()
        self._lock = asyncio.Lock()  # one writer: learning batches and restores never interleave
        self._snapshot_lock = asyncio.Lock()  # one checkpoint (or restore) at a time
        self._checkpoint_task: asyncio.Task | None = None
        self.resync_s = 5.0
        self.follower = False
        self._resync_at = 0.0
        self._snapshot_writer: SnapshotWriter | None = None  # started by start() (or the first checkpoint)

    @property
    def recommender(self) -> Recommender:
        """The live model (the guard may swap it on a rollback)."""
        return self.guarded.recommender

    @recommender.setter
    def recommender(self, rec: Recommender) -> None:
        self.guarded.reset(rec)

    async def start(self, follower: bool = False) -> None:
        """Restore the newest good snapshot and position the consumer group after it.
        A ``follower`` (read-only replica) never touches the group: it belongs to the one
        learner, and rewinding it would make the learner apply entries twice."""
        self.follower = follower
        if follower:
            self.guarded.guard.validate = False
        else:
            await self.log.ensure_group()
        restored = await self.snapshots.load_latest_good()
        if restored is not None:
            info, arrays, meta = restored
            self.recommender = Recommender.from_state(arrays, meta, self._config_for(meta))
            self.last_snapshot = info
            log.info("restored snapshot v%s (%s events)", info.version, info.events_learned)
        if not follower:
            await self.log.set_position(self.recommender.last_event_id)
            self._writer().start()

    def _config_for(self, meta: dict) -> EngineConfig:
        """The model's shape and learning parameters come from the snapshot (a model cannot
        change its number of factors on restore); operational settings (snapshot policy,
        key prefix) stay this process's."""
        config = EngineConfig(**meta["config"])
        for name in ("snapshot_every_events", "snapshot_every_s", "snapshots_recent", "snapshots_hours",
                     "snapshots_max_bytes", "snapshot_write_mb_s", "key_prefix"):
            setattr(config, name, getattr(self.config, name))
        if config != self.config:
            log.warning("restoring with the snapshot's model configuration %s (process had %s)", config, self.config)
        return config

    async def step(self, block_ms: int = 100, count: int = 1024) -> int:
        """Read and apply one batch; returns how many events were applied.

        Raises:
            redis.exceptions.RedisError: Redis unreachable (``run`` retries).
        """
        events = await self.log.read(self.consumer, count=count, block_ms=block_ms)
        async with self._lock:
            await self._apply(events, backlog=_behind(events, count))
        self._maybe_checkpoint()
        return len(events)

    async def _apply(self, events, ack: bool = True, backlog: bool = False) -> None:
        """Apply ``events`` in order, yielding to the event loop after every time slice
        (``_SLICE_S``, or ``_SLICE_BACKLOG_S`` when ``backlog``); then XACK them."""
        guarded = self.guarded
        budget = _SLICE_BACKLOG_S if backlog else _SLICE_S
        clock = time.perf_counter
        slice_end = clock() + budget
        now = time.time()
        for n, event in enumerate(events, 1):
            try:
                guarded.apply(event)
            except (ValueError, KeyError) as exc:  # never crash on one bad entry
                self.errors += 1
                log.error("skipped stream entry %s: %s", event.event_id, exc)
                guarded.recommender.last_event_id = event.event_id
                continue
            lag_s = now - event.received_at
            self.freshness.add(lag_s * 1000.0)
            if self.on_learned is not None:
                self.on_learned(lag_s)
            if n % _CHECK_EVERY == 0 and n < len(events) and clock() >= slice_end:
                self._wake()
                await asyncio.sleep(0)
                slice_end = clock() + budget
                now = time.time()
        self._wake()
        if events and ack:
            await self.log.ack([e.event_id for e in events])
            self._since_snapshot += len(events)

    def _checkpoint_due(self) -> bool:
        c = self.config
        if self._since_snapshot == 0:
            return False
        return (self._since_snapshot >= c.snapshot_every_events
                or time.monotonic() - self._snapshot_clock >= c.snapshot_every_s)

    async def checkpoint(self, verdict: str = "ok", note: dict | None = None) -> SnapshotInfo:
        """Snapshot the model as it is now and make it current. One checkpoint at a time.

        Three steps, none of which stalls ``/recommend``:

        1. *Capture* (write lock held, so no event is learned meanwhile): a worker thread
           packs views of the live arrays into a shared-memory buffer
           (``engine.snapshots.pack``; numpy memcpys that release the GIL; ~5-10 ms for
           70 MB). The event loop keeps serving; only learning waits.
        2. *Sign and write* (lock released, learning resumes): the long-lived writer process
           (``engine.snapshot_writer``, nice 10) signs the buffer (HMAC-SHA256) and writes it
           in paced 1 MB ``SETRANGE`` chunks (``snapshot_write_mb_s``); this process only
           waits for its one-line answer, so no GIL is shared with the write.
        3. *Publish*: metadata + current pointer in one MULTI/EXEC (``SnapshotStore.commit``).

        Nothing is published unless step 2 succeeded. Measured alternatives (issue 4): a
        fork per checkpoint (Redis's BGSAVE pattern) paused the ~0.5 GB Python heap ~10 ms
        and paid copy-on-write faults after it (p99 of overlapping requests 59 ms with a
        child that did nothing); signing and writing from a thread of this process stalled
        the event loop at every GIL handoff (server-side p99 7-18 ms vs 2.7 ms).

        Raises:
            redis.exceptions.RedisError: Redis unavailable (nothing published).
            engine.snapshots.SnapshotError: the writer process failed (nothing published).
        """
        async with self._snapshot_lock:
            return await self._checkpoint(verdict, note)

    async def _checkpoint(self, verdict: str = "ok", note: dict | None = None,
                          learn_lock_held: bool = False) -> SnapshotInfo:
        t0 = time.perf_counter()
        wall0 = time.time()
        version = await self.snapshots.reserve_version()
        async with (contextlib.nullcontext() if learn_lock_held else self._lock):
            rec = self.recommender
            arrays, meta = rec.state(copy=False)
            writer = self._writer()
            blob = await asyncio.to_thread(pack, arrays, meta, writer.buffer)
            size = len(blob)
            del arrays, blob
            capture_ms = (time.perf_counter() - t0) * 1000.0
            self._since_snapshot = 0
            self._snapshot_clock = time.monotonic()
        try:
            digest, writer_ms = await asyncio.to_thread(writer.write, size, self.keys.snapshot_blob(version))
        finally:
            writer.release_pages()  # no snapshot-sized buffer held between checkpoints
        info = await self.snapshots.commit(version, size, digest, meta["events_learned"], meta["last_event_id"],
                                           verdict, note)
        trim = await self.snapshots.trim_point()
        if trim:
            await self.log.trim_before(trim)
        self.last_snapshot = info
        self.checkpoint_ms.append((time.perf_counter() - t0) * 1000.0)
        self.checkpoint_windows = self.checkpoint_windows[-99:] + [(wall0, time.time())]
        log.info("snapshot v%s: %s events, %.1f KB, %.0f ms (capture %.1f ms, writer process %.0f ms)",
                 info.version, info.events_learned, info.size / 1024, self.checkpoint_ms[-1], capture_ms, writer_ms)
        return info

    def _writer(self) -> SnapshotWriter:
        if self._snapshot_writer is None:
            self._snapshot_writer = SnapshotWriter(self.redis_url, self.snapshots.key, self.config.snapshot_write_mb_s)
        return self._snapshot_writer

    def _maybe_checkpoint(self) -> None:
        """Start a background checkpoint when one is due and none is running."""
        if self._checkpoint_task is None and self._checkpoint_due():
            self._checkpoint_task = asyncio.create_task(self._background_checkpoint())

    async def _background_checkpoint(self) -> None:
        try:
            await self.checkpoint()
        except (RedisError, SnapshotError) as exc:
            log.error("checkpoint failed (will retry when due): %s", exc)
        finally:
            self._checkpoint_task = None

    async def close(self) -> None:
        """Wait for a running checkpoint, then write a final one (graceful shutdown)."""
        task = self._checkpoint_task
        if task is not None:
            try:
                await asyncio.shield(task)
            except BaseException as exc:  # noqa: BLE001 - the final checkpoint below still runs
                log.warning("background checkpoint ended with %r before shutdown", exc)
        try:
            info = await self.checkpoint(verdict="shutdown")
        finally:
            if self._snapshot_writer is not None:
                self._snapshot_writer.close()
        log.info("final snapshot v%s at shutdown (%s events)", info.version, info.events_learned)

    async def follow_step(self, block_ms: int = 100, count: int = 256) -> int:
        """Replica mode: apply the stream entries after our position (XREAD, no group, no
        acks, no checkpoints). Learning is deterministic given the event order, so a replica
        that restored the learner's snapshot and applies the same entries holds the same
        model; every ``resync_s`` it adopts the learner's newest snapshot, which also
        brings over any guard rollback the learner decided."""
        if time.monotonic() >= self._resync_at:
            self._resync_at = time.monotonic() + self.resync_s
            await self._adopt_newer_snapshot()
        events = await self.log.read_after(self.recommender.last_event_id, count=count, block_ms=block_ms)
        async with self._lock:
            await self._apply(events, ack=False, backlog=_behind(events, count))
        return len(events)

    async def _adopt_newer_snapshot(self) -> None:
        current = self.last_snapshot.version if self.last_snapshot else 0
        infos = await self.snapshots.list()
        if not infos or infos[0].version <= current:
            return
        info, arrays, meta = await self.snapshots.load(infos[0].version)
        restored = await asyncio.to_thread(Recommender.from_state, arrays, meta, self._config_for(meta))
        async with self._lock:
            self.recommender = restored  # replay continues from the snapshot's last stream id
            self.last_snapshot = info

    async def run(self, follower: bool = False) -> None:
        """Learn forever (until cancelled); survives Redis outages by retrying. With
        ``follower`` it runs as a read-only replica (``follow_step``)."""
        backoff = 0.05
        while True:
            try:
                await (self.follow_step() if follower else self.step())
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
        async with self._snapshot_lock, self._lock:
            info, arrays, meta = await self.snapshots.load(version)
            previous = self.recommender
            restored = await asyncio.to_thread(Recommender.from_state, arrays, meta, self._config_for(meta))
            restored.last_event_id = previous.last_event_id  # continue from the live stream position
            self.recommender = restored
            saved = await self._checkpoint(learn_lock_held=True, verdict=f"restored from v{version}",
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


async def open_learner(redis_url: str | None, data_dir: str | None, config: EngineConfig | None = None,
                       guard: GuardConfig | None = None) -> tuple["Learner", Redis, RedisTarget]:
    """Connect to Redis (``redis_url``, else the embedded server in ``data_dir``) and build
    the learner with the snapshot key. The caller owns the three results: ``await
    redis.aclose()`` then ``target.close()`` when done (also when ``start()`` fails).

    Raises:
        redis.exceptions.ConnectionError: Redis unreachable (the embedded server, if any,
            is stopped before raising).
    """
    target = resolve(redis_url, data_dir)
    redis = Redis.from_url(target.url, socket_timeout=5, socket_connect_timeout=2)
    try:
        await redis.ping()
    except BaseException:
        await redis.aclose()
        target.close()
        raise
    learner = Learner(redis, target.url, config, snapshot_key=load_key(data_dir), guard=guard)
    return learner, redis, target
