"""The learner: the single writer that turns the feedback stream into model updates.

Loop: XREADGROUP a batch -> ``LiveModel.apply`` each event in stream order -> XACK -> tell the
checkpointer. Before the loop starts, the node restores the newest good snapshot and the
learner rewinds its consumer group to that snapshot's last stream id (``position``), so every
accepted event after it is applied exactly once more (the entries applied before a crash but
after the snapshot were lost with the process memory).
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError, ResponseError

from engine.roles.checkpointer import Checkpointer
from engine.roles.live_model import LiveModel, behind
from engine.storage.feedback_log import FeedbackLog

log = logging.getLogger("freshrec.learner")


class Learner:
    """Consumes ``{prefix}:feedback`` with the ``learner`` consumer group into ``live``.

    Args:
        live: the live model.
        stream: the feedback log.
        checkpointer: told how many events each batch learned.
        consumer: consumer name within the group.
    """

    def __init__(self, live: LiveModel, stream: FeedbackLog, checkpointer: Checkpointer,
                 consumer: str = "learner-1") -> None:
        self.live = live
        self.stream = stream
        self.checkpointer = checkpointer
        self.consumer = consumer

    async def position(self) -> None:
        """Create the consumer group if missing and make it deliver the entries after what
        the live model has learned."""
        await self.stream.ensure_group()
        await self.stream.set_position(self.live.recommender.last_event_id)

    async def step(self, block_ms: int = 100, count: int = 1024) -> int:
        """Read and apply one batch; returns how many events were applied.

        Raises:
            redis.exceptions.RedisError: Redis unreachable (the node's supervisor retries).
        """
        events = await self.stream.read(self.consumer, count=count, block_ms=block_ms)
        async with self.live.lock:
            await self.live.apply(events, backlog=behind(events, count))
        if events:
            await self.stream.ack([e.event_id for e in events])
        self.checkpointer.learned(len(events))
        return len(events)

    async def recover(self, exc: RedisError) -> bool:
        """Redis came back without our stream or group (restarted empty): recreate it and
        continue after what we have learned. Other errors are outages (False)."""
        if not (isinstance(exc, ResponseError) and "NOGROUP" in str(exc)):
            return False
        log.error("consumer group missing (%s); recreating it", exc)
        await self.position()
        return True
