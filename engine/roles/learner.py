"""The learner: the single writer that turns the feedback stream into model updates.

Loop: XREADGROUP a batch -> ``LiveModel.apply`` each entry in stream order -> dead letters to
``{prefix}:dead`` -> XACK -> tell the checkpointer. Before the loop starts, the node restores
the newest good snapshot and the learner rewinds its consumer group to that snapshot's last
stream id (``position``), so every accepted event after it is applied exactly once more (the
entries applied before a crash but after the snapshot were lost with the process memory).
A crash of the loop itself (``restart``) goes the same way, in-process.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError, ResponseError

from engine.roles.checkpointer import Checkpointer
from engine.roles.live_model import LiveModel, behind
from engine.storage.dead_letters import DeadLetter, DeadLetters
from engine.storage.feedback_log import FeedbackLog

log = logging.getLogger("freshrec.learner")


class Learner:
    """Consumes ``{prefix}:feedback`` with the ``learner`` consumer group into ``live``.

    Args:
        live: the live model.
        stream: the feedback log.
        checkpointer: told how many events each batch learned; restores snapshots.
        consumer: consumer name within the group.
        dead: the dead-letter stream (default: on the stream's Redis and keys).
    """

    def __init__(self, live: LiveModel, stream: FeedbackLog, checkpointer: Checkpointer,
                 consumer: str = "learner-1", dead: DeadLetters | None = None) -> None:
        self.live = live
        self.stream = stream
        self.checkpointer = checkpointer
        self.consumer = consumer
        self.dead = dead or DeadLetters(stream.redis, stream.keys)
        self.dead_written = 0
        self._unwritten: list[DeadLetter] = []  # dead letters Redis has not taken yet
        self._unacked: list[str] = []

    async def position(self) -> None:
        """Create the consumer group if missing and make it deliver the entries after what
        the live model has learned."""
        await self.stream.ensure_group()
        await self.stream.set_position(self.live.recommender.last_event_id)

    async def step(self, block_ms: int = 100, count: int = 1024) -> int:
        """Write what the previous step could not (dead letters, then acks), read and apply
        one batch, dead-letter what it set aside, ack it; returns how many entries were read.

        A dead letter is in ``{prefix}:dead`` before its entry is acknowledged, and the step
        does not read further while one waits to be written (nothing set aside is lost).

        Raises:
            redis.exceptions.RedisError: Redis unreachable (the node's supervisor retries).
            Exception: applying an entry failed unexpectedly (the supervisor restarts the
                learner: ``restart``).
        """
        await self._flush()
        entries = await self.stream.read(self.consumer, count=count, block_ms=block_ms)
        async with self.live.lock:
            rejected = await self.live.apply(entries, backlog=behind(entries, count))
        self._unwritten += rejected
        self._unacked += [e.entry_id for e in entries]
        self.checkpointer.learned(len(entries) - len(rejected))
        await self._flush()
        return len(entries)

    async def _flush(self) -> None:
        if self._unwritten:
            new = await self.dead.add(self._unwritten)
            self.dead_written += len(new)
            self._unwritten = []
        if self._unacked:
            await self.stream.ack(self._unacked)
            self._unacked = []

    async def recover(self, exc: RedisError) -> bool:
        """Redis came back without our stream or group (restarted empty): recreate it and
        continue after what we have learned. Other errors are outages (False)."""
        if not (isinstance(exc, ResponseError) and "NOGROUP" in str(exc)):
            return False
        log.error("consumer group missing (%s); recreating it", exc)
        await self.position()
        return True

    async def restart(self, exc: BaseException) -> None:
        """After a crash of the loop: what a new process would do, in this one. Rebuild the
        live model from the newest good snapshot (an empty model when there is none) and
        rewind the group after it, so the entries since are applied again, once. An entry
        that crashed the learner twice in a row is quarantined first: the replay
        dead-letters it (stage ``crash``) instead of applying it a third time.

        Raises:
            redis.exceptions.RedisError: Redis unavailable (the supervisor retries).
        """
        self.live.quarantine_repeated_crash(exc, "learner")
        await self.checkpointer.rebuild_live()  # decoded aside: serving goes on meanwhile
        await self.position()
        self._unacked = []  # the rewound group delivers them again
