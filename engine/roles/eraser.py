"""Erasure of a user (``DELETE /users/{id}``, the right to erasure) for one node.

``Eraser.erase``:

1. makes the erasure durable: one atomic Lua call appends a ``forget`` entry to the stream
   and records the user's tombstone (``engine.storage.tombstones.Tombstones.forget``);
2. drops the user's slates this process has not written yet;
3. starts the purge of what Redis holds (in a worker thread with its own synchronous client,
   in bounded batches): every stream entry of the user before the forget entry (XDEL), and
   their served slates in the impression join's hashes;
4. waits (read-your-writes, up to a timeout) until this node's model has applied the forget
   entry, and answers what it removed.

The learner applies the forget entry like any other (``GuardedRecommender.apply``), and so
does every replica that follows the stream: all of them forget at the same point. If the
process dies after step 1, nothing is lost: the forget entry is in the stream, the
tombstone makes every restore erase the user again (``Checkpointer``), and the pending
stream purge is resumed by the next erasure or the next learner start (``resume``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis as redis_sync

from engine.core.events import stream_id_key
from engine.roles.live_model import LiveModel
from engine.storage.slate_store import SlateStore
from engine.storage.snapshot_store import SnapshotStore
from engine.storage.tombstones import Tombstones, purge_slates, purge_stream

log = logging.getLogger("freshrec.erasure")


class Eraser:
    """The erasure path of one node.

    Args:
        live: the node's live model (its guard keeps erasure reports by stream id).
        tombstones: the deployment's tombstones.
        snapshots: the snapshot store (to say which retained snapshots predate an erasure).
        slates: the node's slate store.
        redis_url: where the purge threads connect.
        join_window_s: how long served slates live (the slate purge scans that far back).
    """

    def __init__(self, live: LiveModel, tombstones: Tombstones, snapshots: SnapshotStore, slates: SlateStore,
                 redis_url: str, join_window_s: float) -> None:
        self.live = live
        self.tombstones = tombstones
        self.snapshots = snapshots
        self.slates = slates
        self.redis_url = redis_url
        self.join_window_s = join_window_s
        self._tasks: set[asyncio.Task] = set()

    async def erase(self, user_id: str, timeout_s: float = 5.0) -> dict:
        """Erase ``user_id`` (see the module docstring); waits up to ``timeout_s`` for this
        node to apply it and for the purge of the stream and the slates.

        Returns:
            ``user_id``, ``event_id`` (the forget entry), ``complete`` (learned here and
            purged), ``learned``, ``removed`` (this node's report: model, guard, challenger,
            decisions; None until learned), ``stream`` (``purged``, ``entries_deleted``),
            ``slates`` (``deleted``), ``snapshots`` (``written_before``: retained versions
            that predate the erasure and are pruned after the next checkpoint).

        Raises:
            redis.exceptions.RedisError: Redis could not take the forget entry (nothing was
                erased; the client must retry).
        """
        deadline = time.monotonic() + timeout_s
        event_id = await self.tombstones.forget(user_id)
        local = self.slates.forget(user_id)
        purge = self._purge(await self.tombstones.pending_purges(), [user_id])
        learned = await self.live.wait_learned(event_id, timeout_s)
        removed = self.live.guarded.erasures.pop(event_id, None) if learned else None
        done, _ = await asyncio.wait({purge}, timeout=max(0.0, deadline - time.monotonic()))
        entries = slates = None
        if done and purge.exception() is None:
            entries, slates = purge.result()
        try:
            infos = await self.snapshots.list()
        except redis_sync.RedisError:
            infos = []
        mark = stream_id_key(event_id)
        before = [i.version for i in infos if i.last_event_id is None or stream_id_key(i.last_event_id) < mark]
        return {"user_id": user_id, "event_id": event_id, "complete": learned and entries is not None,
                "learned": learned, "removed": removed,
                "stream": {"purged": entries is not None, "entries_deleted": entries},
                "slates": {"deleted": None if slates is None else slates + local},
                "snapshots": {"written_before": sorted(before)}}

    async def resume(self) -> int:
        """Run the stream purges left pending (a process died mid-purge); returns the
        entries deleted. The learner awaits it at start."""
        pending = await self.tombstones.pending_purges()
        if not pending:
            return 0
        entries, _ = await self._purge(pending, [])
        log.warning("resumed the stream purge of %d erased user(s): %d entries deleted", len(pending), entries)
        return entries

    def _purge(self, pending: dict[str, str], user_ids: list[str]) -> asyncio.Task:
        task = asyncio.create_task(self._run_purge(pending, user_ids))
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("erasure purge failed (it stays pending and is resumed later): %r", task.exception())

    async def _run_purge(self, pending: dict[str, str], user_ids: list[str]) -> tuple[int, int]:
        entries, slates = await asyncio.to_thread(self._purge_sync, pending, user_ids)
        await self.tombstones.purged(list(pending))
        return entries, slates

    def _purge_sync(self, pending: dict[str, str], user_ids: list[str]) -> tuple[int, int]:
        client = redis_sync.Redis.from_url(self.redis_url, socket_timeout=30)
        try:
            entries = purge_stream(client, self.tombstones.keys, pending, self.tombstones.key)
            slates = purge_slates(client, self.tombstones.keys, user_ids, self.join_window_s)
            return entries, slates
        finally:
            client.close()

    async def close(self, timeout_s: float = 30.0) -> None:
        """Wait for running purges (they stay pending in Redis if cut short)."""
        if self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait(set(self._tasks), timeout=timeout_s)
