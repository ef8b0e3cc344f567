"""The replica follower: a read-only API replica keeps its copy of the model current by
applying the stream after its position (XREAD, no group, no acks, no checkpoints) and
adopting the learner's newer snapshots.

Learning is deterministic given the event order, so a replica that restored the learner's
snapshot and applies the same entries holds the same model; every ``resync_s`` it adopts the
learner's newest snapshot, which also brings over any guard rollback the learner decided and
the guard's accounts (so the replica's intake weighs unjoined events of vetted accounts as
the learner would; it keeps no window and no rollback points: it validates nothing).
An entry it cannot decode or apply is skipped and counted (``LiveModel.dead_letters``): the
learner, not a replica, writes the dead letters.
"""

from __future__ import annotations

import logging
import time

from engine.core.snapshot_codec import SnapshotError
from engine.roles.checkpointer import Checkpointer
from engine.roles.live_model import LiveModel, behind
from engine.storage.feedback_log import FeedbackLog

log = logging.getLogger("freshrec.replica")


class Follower:
    """Follows ``{prefix}:feedback`` into ``live`` without touching the learner's group.

    Args:
        live: the live model (its guard validates nothing: decisions come with snapshots).
        stream: the feedback log.
        checkpointer: reads snapshots (``config_for``) and remembers the adopted one.
        resync_s: seconds between looks for a newer snapshot.
    """

    def __init__(self, live: LiveModel, stream: FeedbackLog, checkpointer: Checkpointer, resync_s: float = 5.0) -> None:
        self.live = live
        self.stream = stream
        self.checkpointer = checkpointer
        self.resync_s = resync_s
        self._resync_at = 0.0
        self._refused: set[int] = set()  # snapshot versions that failed verification (logged once)

    async def step(self, block_ms: int = 100, count: int = 256) -> int:
        """Adopt a newer snapshot when one is due, then apply the entries after our
        position; returns how many were read (skipped ones included).

        Raises:
            redis.exceptions.RedisError: Redis unreachable (the node's supervisor retries).
        """
        if time.monotonic() >= self._resync_at:
            self._resync_at = time.monotonic() + self.resync_s
            await self._adopt_newer_snapshot()
        entries = await self.stream.read_after(self.live.recommender.last_event_id, count=count, block_ms=block_ms)
        async with self.live.lock:
            await self.live.apply(entries, backlog=behind(entries, count))
        return len(entries)

    async def _adopt_newer_snapshot(self) -> None:
        cp = self.checkpointer
        current = cp.last_snapshot.version if cp.last_snapshot else 0
        infos = [i for i in await cp.snapshots.list() if i.version > current and i.version not in self._refused]
        if not infos:
            return
        try:
            info, arrays, meta = await cp.snapshots.load(infos[0].version)
        except (KeyError, SnapshotError) as exc:  # refused (logged by the store) or pruned meanwhile
            self._refused.add(infos[0].version)
            log.error("replica keeps its model: snapshot v%s not adoptable (%r)", infos[0].version, exc)
            return
        restored, guard = await cp.decode(arrays, meta)
        erased = await cp.erase_forgotten(restored, info.last_event_id)  # erasures after the snapshot (replayed again, too)
        async with self.live.lock:
            self.live.restore(restored, guard)  # replay continues from the snapshot's last stream id
            self.live.guarded.erase_restored(erased)
            cp.last_snapshot = info

    async def restart(self, exc: BaseException) -> None:
        """After a crash of the loop: rebuild the model from the newest good snapshot (an
        empty model when there is none) and follow the stream after it; an entry that
        crashed the replica twice in a row is skipped from then on.

        Raises:
            redis.exceptions.RedisError: Redis unavailable (the supervisor retries).
        """
        self.live.quarantine_repeated_crash(exc, "replica")
        await self.checkpointer.rebuild_live()
