"""The checkpointer: versioned snapshots of the live model, taken without stalling serving,
and the restores that go the other way (at start, after a crash of the learner, and on an
admin's request). Its loop (``step``) runs under the node's supervisor: a checkpoint that
meets a Redis outage (OOM, MISCONF, READONLY, ...) is retried with backoff until Redis takes
it, and trimming the stream resumes with it.

A snapshot holds the model, the champion/challenger arena and the forgetting guard's state
(``engine.core.guard_state``: accounts, reservoir, open window, rollback points as deltas),
so a restore brings back the trust decisions with the model."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from engine.config import EngineConfig, SnapshotConfig
from engine.core.guard_state import SECTION as GUARD_SECTION
from engine.core.recommender import Recommender, config_of
from engine.core.decisions import decision_arrays
from engine.core.events import stream_id_key
from engine.core.snapshot_codec import SnapshotError, pack
from engine.roles.live_model import LiveModel
from engine.storage.feedback_log import FeedbackLog
from engine.storage.retention import SnapshotInfo
from engine.storage.snapshot_store import NoUsableSnapshot, SnapshotStore
from engine.storage.snapshot_writer import SnapshotWriter
from engine.storage.tombstones import Tombstones, erase_tombstoned

log = logging.getLogger("freshrec.learner")

CHALLENGER_PREFIX = "challenger."  # snapshot arrays of the shadow model
DECISIONS_PREFIX = "decisions."  # snapshot arrays of the champion's logged decisions (with a challenger)


class Checkpointer:
    """Snapshots ``live`` every ``config.every_events`` learned events or ``config.every_s``
    seconds, whichever comes first; restores snapshots into it.

    Args:
        live: the live model.
        snapshots: the snapshot store (signing key and retention included).
        stream: the feedback log (trimmed behind the snapshots kept).
        redis_url: where the snapshot writer process writes.
        config: checkpoint policy.
        engine: this process's engine configuration (a snapshot's own wins on restore).
        tombstones: the erased users (None: no erasure support): every restored model
            forgets the users erased after its snapshot, and once a checkpoint after an
            erasure is committed, the snapshots written before it are deleted.
    """

    def __init__(self, live: LiveModel, snapshots: SnapshotStore, stream: FeedbackLog, redis_url: str,
                 config: SnapshotConfig, engine: EngineConfig, tombstones: Tombstones | None = None) -> None:
        self.live = live
        self.snapshots = snapshots
        self.stream = stream
        self.redis_url = redis_url
        self.config = config
        self.engine = engine
        self.tombstones = tombstones
        self.last_snapshot: SnapshotInfo | None = None
        self.checkpoint_ms: list[float] = []
        self.checkpoint_windows: list[tuple[float, float]] = []  # (start, end) unix s, last 100
        self._since = 0
        self._clock = time.monotonic()
        self._dirty_since: float | None = None  # monotonic time of the first event learned since the last snapshot
        self._lock = asyncio.Lock()  # one checkpoint (or restore) at a time
        self._task: asyncio.Task | None = None
        self._due_event = asyncio.Event()
        self._writer: SnapshotWriter | None = None  # started by start_writer() (or the first checkpoint)

    # ------------------------------------------------------------------ restore
    def config_for(self, meta: dict) -> EngineConfig:
        """The model's shape and learning parameters come from the snapshot (a model cannot
        change its number of factors on restore)."""
        config = config_of(meta)
        if config != self.engine:
            log.warning("restoring with the snapshot's model configuration %s (process had %s)", config, self.engine)
        return config

    async def latest(self) -> tuple[SnapshotInfo, Recommender, object, dict, dict] | None:
        """The newest good snapshot, decoded (in a worker thread): its info, model, guard
        state (``GuardedRecommender.decode_state``), arrays, meta, the tombstones of users
        erased after it (digest -> forget entry id) and the users erased from its model for
        them; None when there is none.

        Raises:
            engine.storage.snapshot_store.NoUsableSnapshot: snapshots exist but none
                verifies (another snapshot key, or all damaged): starting from an empty
                model would silently drop the history the trimmed stream no longer holds.
            redis.exceptions.RedisError: Redis unavailable.
        """
        restored = await self.snapshots.load_latest_good()
        if restored is None:
            stored = await self.snapshots.list()
            if stored:
                raise NoUsableSnapshot(
                    f"none of the {len(stored)} stored snapshots (v{stored[-1].version}..v{stored[0].version}) "
                    f"verifies with this process's snapshot key: each was refused as signed with another key or "
                    f"damaged. Give this process the key the learner signs with (FRESHREC_SNAPSHOT_KEY, setting "
                    f"snapshot_key, or the same data_dir/snapshot.key), or delete {self.snapshots.keys.snapshot_meta} "
                    f"to start over")
            return None
        info, arrays, meta = restored
        recommender, guard = await self.decode(arrays, meta)
        pending = await self.forgotten_after(info.last_event_id)
        erased = await asyncio.to_thread(erase_tombstoned, recommender, pending, self.tombstones.digest) \
            if pending else []
        return info, recommender, guard, arrays, meta, pending, erased

    def adopt(self, latest: tuple) -> None:
        """Serve a snapshot ``latest`` decoded: its model and guard state, and the challenger
        and promotion history it carries; users erased after the snapshot are erased from
        the guard state and the challenger too (the model had them erased by ``latest``)."""
        info, recommender, guard, arrays, meta, pending, erased = latest
        self.live.restore(recommender, guard)
        self._restore_arena(arrays, meta)
        if pending:
            guarded = self.live.guarded
            digest = self.tombstones.digest
            vetted = [u for u in guarded.accounts if digest(u) in pending]
            guarded.erase_restored(sorted(set(erased) | set(vetted)))
            erase_tombstoned(guarded.arena.challenger, pending, digest)
            log.warning("snapshot v%s predates %d erasure(s): erased %d user(s) from it", info.version,
                        len(pending), len(erased))
        self.last_snapshot = info

    async def rebuild_live(self) -> None:
        """What a new process would do, in this one (a role's restart after a crash): an
        empty guarded model, then the newest good snapshot adopted into it (decoded first,
        without the lock: serving goes on meanwhile); none: the empty model.

        Raises:
            redis.exceptions.RedisError: Redis unavailable (the supervisor retries).
        """
        latest = await self.latest()
        async with self.live.lock:
            self.live.rebuild()
            self.live.crashed_on = None
            self.last_snapshot = None
            if latest is not None:
                self.adopt(latest)

    async def restore_latest(self) -> SnapshotInfo | None:
        """Load the newest good snapshot into ``live`` (at start); None when there is none.

        Raises:
            engine.storage.snapshot_store.NoUsableSnapshot: see ``latest``.
        """
        latest = await self.latest()
        if latest is None:
            return None
        self.adopt(latest)
        info = latest[0]
        log.info("restored snapshot v%s (%s events)", info.version, info.events_learned)
        return info

    async def decode(self, arrays: dict, meta: dict) -> tuple[Recommender, object]:
        """A snapshot's model and decoded guard state (``GuardedRecommender.decode_state``),
        built in a worker thread, not yet adopted (``LiveModel.restore``)."""
        def build():
            rec = Recommender.from_state(arrays, meta, self.config_for(meta))
            return rec, self.live.guarded.decode_state(rec, arrays, meta.get(GUARD_SECTION))

        return await asyncio.to_thread(build)

    def _restore_arena(self, arrays: dict, meta: dict) -> None:
        """The challenger, the promotion history, the alpha spent and the champion's window of
        logged decisions a snapshot carries (if this process runs a challenger)."""
        arena = self.live.guarded.arena
        arena.history = list(meta.get("policy_history", []))
        spending = meta.get("policy_spending", {})  # alpha already spent on this champion's checks
        arena.looks, arena.spent_through = int(spending.get("looks", 0)), int(spending.get("spent_through", 0))
        arena.decisions.closed = int(spending.get("closed", 0))
        if arena.challenger is not None and "challenger" in meta:
            n = len(CHALLENGER_PREFIX)
            arena.challenger = Recommender.from_state({k[n:]: v for k, v in arrays.items()
                                                       if k.startswith(CHALLENGER_PREFIX)}, meta["challenger"])
        if arena.challenger is not None and "decisions" in meta:  # the evaluation window survives a restart
            n = len(DECISIONS_PREFIX)
            arena.decisions.load({k[n:]: v for k, v in arrays.items() if k.startswith(DECISIONS_PREFIX)},
                                 meta["decisions"])

    async def restore_version(self, version: int) -> dict:
        """Make snapshot ``version`` the serving model; learning continues from it with the
        events that arrive from now on (events between that snapshot and now are not
        re-applied: that is the point of a rollback). The guard's state comes back with it
        (accounts vetted since that snapshot are not vetted any more: their trusted events
        are among those skipped). A new snapshot records the restore, so a crash right after
        it does not undo it.

        Raises:
            KeyError: no such snapshot.
            engine.core.snapshot_codec.SnapshotError: it fails verification (the live model
                is kept).
        """
        live = self.live
        async with self._lock, live.lock:
            info, arrays, meta = await self.snapshots.load(version)
            previous = live.recommender
            restored, guard = await self.decode(arrays, meta)
            erased = await self.erase_forgotten(restored, info.last_event_id)
            restored.last_event_id = previous.last_event_id  # continue from the live stream position
            live.restore(restored, guard)
            live.guarded.erase_restored(erased)
            saved = await self._checkpoint(learn_lock_held=True, verdict=f"restored from v{version}",
                                           note={"restored_from": version, "skipped_events":
                                                 previous.events_learned - info.events_learned})
        log.warning("restored snapshot v%s as the serving model (new snapshot v%s)", version, saved.version)
        return {"restored_version": version, "snapshot_version": saved.version,
                "model_version": restored.events_learned, "previous_model_version": previous.events_learned,
                "last_event_id": restored.last_event_id}

    async def forgotten_after(self, last_id: str | None) -> dict[str, str]:
        """Tombstones (digest -> stream id of the forget entry) of users erased after stream
        id ``last_id``: a snapshot taken there may hold them. Empty without tombstones."""
        if self.tombstones is None or last_id is None:
            return {}
        return await self.tombstones.after(last_id)

    async def erase_forgotten(self, rec: Recommender, last_id: str | None) -> list[str]:
        """Erase from ``rec`` (restored from a snapshot taken at stream id ``last_id``, not
        yet serving) the users erased after that point (in a worker thread: one HMAC per
        user it holds); returns their ids."""
        pending = await self.forgotten_after(last_id)
        if not pending:
            return []
        erased = await asyncio.to_thread(erase_tombstoned, rec, pending, self.tombstones.digest)
        log.warning("a snapshot at %s predates %d erasure(s): erased %d user(s) from it", last_id, len(pending),
                    len(erased))
        return erased

    async def _prune_erased(self, info: SnapshotInfo) -> None:
        """After ``info`` is committed: if it comes after the newest erasure, delete every
        retained snapshot written before that erasure (they hold the erased users)."""
        if self.tombstones is None or info.last_event_id is None:
            return
        dirty = await self.tombstones.snapshots_dirty()
        if dirty is None or stream_id_key(info.last_event_id) < stream_id_key(dirty):
            return
        mark = stream_id_key(dirty)
        old = [i.version for i in await self.snapshots.list() if i.version != info.version
               and (i.last_event_id is None or stream_id_key(i.last_event_id) < mark)]
        await self.snapshots.drop(old)
        await self.tombstones.snapshots_clean(dirty)
        if old:
            log.warning("deleted %d snapshot(s) written before the erasure at %s: %s", len(old), dirty, old)

    # --------------------------------------------------------------- checkpoints
    def start_writer(self) -> None:
        """Start the snapshot writer process now (about 0.3 s of interpreter start-up that
        the first checkpoint would otherwise pay)."""
        self._writer_process().start()

    def learned(self, n: int) -> None:
        """Count ``n`` more learned events; wake ``step`` when a checkpoint is due."""
        if n > 0:
            self._since += n
            if self._dirty_since is None:
                self._dirty_since = time.monotonic()
        if self._due():
            self._due_event.set()

    def _due(self) -> bool:
        return self._since > 0 and (self._since >= self.config.every_events
                                    or time.monotonic() - self._clock >= self.config.every_s)

    def unsnapshotted_s(self) -> float:
        """How long (s) the oldest event learned since the last snapshot has waited for one
        (0 when every learned event is in a snapshot): ``/health/ready``'s snapshot age."""
        return 0.0 if self._dirty_since is None else time.monotonic() - self._dirty_since

    async def step(self) -> None:
        """One turn of the checkpointer's loop (run by the node's supervisor): wait until a
        checkpoint is due, then take it. The checkpoint runs as its own task, so cancelling
        the loop (shutdown) lets a started one finish (``close`` waits for it).

        Raises:
            redis.exceptions.RedisError: Redis refused it (an outage: retried with backoff).
            engine.core.snapshot_codec.SnapshotError: the writer process failed.
        """
        while not self._due() or self.live.broken:
            self._due_event.clear()
            left = self.config.every_s - (time.monotonic() - self._clock)
            try:
                await asyncio.wait_for(self._due_event.wait(), max(0.05, min(left, 1.0)))
            except asyncio.TimeoutError:
                pass
        if self._task is None:
            self._task = asyncio.create_task(self.checkpoint())
            self._task.add_done_callback(self._forget)
        await asyncio.shield(self._task)

    def _forget(self, task: asyncio.Task) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled():
            task.exception()  # retrieved here; the supervisor sees it through the shield

    async def checkpoint(self, verdict: str = "ok", note: dict | None = None) -> SnapshotInfo:
        """Snapshot the model as it is now and make it current. One checkpoint at a time.

        Three steps, none of which stalls ``/recommend``:

        1. *Capture* (write lock held, so no event is learned meanwhile): a worker thread
           packs views of the live arrays into a shared-memory buffer
           (``engine.core.snapshot_codec.pack``; numpy memcpys that release the GIL; ~5-10 ms
           for 70 MB). The event loop keeps serving; only learning waits.
        2. *Sign and write* (lock released, learning resumes): the long-lived writer process
           (``engine.storage.snapshot_writer``, nice 10) signs the buffer (HMAC-SHA256) and
           writes it in paced 1 MB ``SETRANGE`` chunks (``write_mb_s``); this process only
           waits for its one-line answer, so no GIL is shared with the write.
        3. *Publish*: metadata + current pointer in one MULTI/EXEC (``SnapshotStore.commit``).

        Nothing is published unless step 2 succeeded. Measured alternatives (issue 4): a
        fork per checkpoint (Redis's BGSAVE pattern) paused the ~0.5 GB Python heap ~10 ms
        and paid copy-on-write faults after it (p99 of overlapping requests 59 ms with a
        child that did nothing); signing and writing from a thread of this process stalled
        the event loop at every GIL handoff (server-side p99 7-18 ms vs 2.7 ms).

        Raises:
            redis.exceptions.RedisError: Redis unavailable (nothing published).
            engine.core.snapshot_codec.SnapshotError: the writer process failed (nothing
                published).
        """
        async with self._lock:
            if self.live.broken:
                raise SnapshotError("the live model is being rebuilt after a crash of the learner; not checkpointed")
            return await self._checkpoint(verdict, note)

    async def _checkpoint(self, verdict: str = "ok", note: dict | None = None,
                          learn_lock_held: bool = False) -> SnapshotInfo:
        t0 = time.perf_counter()
        wall0 = time.time()
        version = await self.snapshots.reserve_version()
        async with (contextlib.nullcontext() if learn_lock_held else self.live.lock):
            arrays, meta = self.live.recommender.state(copy=False)
            model_arrays, model_meta = dict(arrays), dict(meta)
            arena = self.live.guarded.arena
            if arena.challenger is not None:  # the shadow model, prefixed, and the promotion history
                ch_arrays, meta["challenger"] = arena.challenger.state(copy=False)
                arrays.update({CHALLENGER_PREFIX + k: v for k, v in ch_arrays.items()})
            meta["policy_history"] = arena.history[-50:]
            meta["policy_spending"] = {"looks": arena.looks, "spent_through": arena.spent_through,
                                       "closed": arena.decisions.closed}
            decisions = arena.decisions.capture() if arena.challenger is not None else None
            writer = self._writer_process()
            guarded = self.live.guarded

            def capture_and_pack():
                # the guard's state (its window encoded, its rollback points as deltas against
                # the live arrays) in the packing thread too: learning waits, serving does not
                guard_arrays, meta[GUARD_SECTION] = guarded.state(model_arrays, model_meta)
                if decisions is not None:  # the champion's evaluation window (complete decisions no longer change)
                    decision_arrays_, meta["decisions"] = decision_arrays(decisions)
                    guard_arrays.update({DECISIONS_PREFIX + k: v for k, v in decision_arrays_.items()})
                return pack({**arrays, **guard_arrays}, meta, writer.buffer)

            blob = await asyncio.to_thread(capture_and_pack)
            size = len(blob)
            arrays = model_arrays = blob = None  # the views and the blob released before the write
            capture_ms = (time.perf_counter() - t0) * 1000.0
            since, clock, dirty_since = self._since, self._clock, self._dirty_since
            self._since = 0
            self._clock = time.monotonic()
            self._dirty_since = None
        try:
            try:
                digest, writer_ms = await asyncio.to_thread(writer.write, size,
                                                            self.snapshots.keys.snapshot_blob(version))
            finally:
                writer.release_pages()  # no snapshot-sized buffer held between checkpoints
            info = await self.snapshots.commit(version, size, digest, meta["events_learned"], meta["last_event_id"],
                                               verdict, note)
        except BaseException:
            # nothing published: these events still wait for a snapshot (the retry is due at once)
            self._since += since
            self._clock = clock
            if dirty_since is not None:
                self._dirty_since = min(dirty_since, self._dirty_since or dirty_since)
            raise
        await self._prune_erased(info)
        trim = await self.snapshots.trim_point()
        if trim:
            await self.stream.trim_before(trim)
        self.last_snapshot = info
        self.checkpoint_ms.append((time.perf_counter() - t0) * 1000.0)
        self.checkpoint_windows = self.checkpoint_windows[-99:] + [(wall0, time.time())]
        log.info("snapshot v%s: %s events, %.1f KB, %.0f ms (capture %.1f ms, writer process %.0f ms)",
                 info.version, info.events_learned, info.size / 1024, self.checkpoint_ms[-1], capture_ms, writer_ms)
        return info

    def _writer_process(self) -> SnapshotWriter:
        if self._writer is None:
            self._writer = SnapshotWriter(self.redis_url, self.snapshots.key, self.config.write_mb_s)
        return self._writer

    async def wait(self) -> None:
        """Wait for a running background checkpoint, if any."""
        task = self._task
        if task is not None:
            try:
                await asyncio.shield(task)
            except BaseException as exc:  # noqa: BLE001 - the caller decides what comes next
                log.warning("background checkpoint ended with %r", exc)

    async def close(self, final: bool = True) -> None:
        """Wait for a running checkpoint, then (with ``final``) write a last one (graceful
        shutdown), and stop the writer process."""
        await self.wait()
        try:
            if final:
                info = await self.checkpoint(verdict="shutdown")
                log.info("final snapshot v%s at shutdown (%s events)", info.version, info.events_learned)
        finally:
            if self._writer is not None:
                self._writer.close()
