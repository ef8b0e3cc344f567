"""The replica follower: a read-only API replica keeps its copy of the model current by
applying the stream after its position (XREAD, no group, no acks, no checkpoints) and
adopting the learner's newer snapshots.

Learning is deterministic given the event order, so a replica that restored the learner's
snapshot and applies the same entries holds the same model; every ``resync_s`` it adopts the
learner's newest snapshot, which also brings over any guard rollback the learner decided.
"""

from __future__ import annotations

import asyncio
import time

from engine.core.recommender import Recommender
from engine.roles.checkpointer import Checkpointer
from engine.roles.live_model import LiveModel, behind
from engine.storage.feedback_log import FeedbackLog

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

    async def step(self, block_ms: int = 100, count: int = 256) -> int:
        """Adopt a newer snapshot when one is due, then apply the entries after our
        position; returns how many were applied.

        Raises:
            redis.exceptions.RedisError: Redis unreachable (the node's supervisor retries).
        """
        if time.monotonic() >= self._resync_at:
            self._resync_at = time.monotonic() + self.resync_s
            await self._adopt_newer_snapshot()
        events = await self.stream.read_after(self.live.recommender.last_event_id, count=count, block_ms=block_ms)
        async with self.live.lock:
            await self.live.apply(events, backlog=behind(events, count))
        return len(events)

    async def _adopt_newer_snapshot(self) -> None:
        cp = self.checkpointer
        current = cp.last_snapshot.version if cp.last_snapshot else 0
        infos = await cp.snapshots.list()
        if not infos or infos[0].version <= current:
            return
        info, arrays, meta = await cp.snapshots.load(infos[0].version)
        restored = await asyncio.to_thread(Recommender.from_state, arrays, meta, cp.config_for(meta))
        await cp.erase_forgotten(restored, info.last_event_id)  # erasures after the snapshot (replayed again, too)
        async with self.live.lock:
            self.live.swap(restored)  # replay continues from the snapshot's last stream id
            cp.last_snapshot = info
