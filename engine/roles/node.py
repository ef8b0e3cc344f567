"""One freshrec process's engine: it owns the Redis client (and the embedded redis-server, if
it started one), the live model and the roles that run in this process, and closes them.

The same code runs as one process (``freshrec serve``: API + learner) or as many
(``freshrec learner`` + ``freshrec serve --no-learner`` replicas), like Gorse's roles: a node
is either the learner (consumer group, checkpoints) or a follower (read-only replica).

The path of one click: ``node.log.accept`` (``FeedbackLog.accept``, the intake: validate,
classify trust against the served slates, XADD) -> ``learner.Learner`` (XREADGROUP ->
``GuardedRecommender.apply`` -> XACK). The path of one slate: ``recommend``
(``GuardedRecommender.recommend``: rank, slate id, record, alarm).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial

from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.config import EngineConfig, GuardConfig, PolicyConfig, SnapshotConfig
from engine.core.guard import GuardedRecommender, Slate
from engine.core.recommender import Recommender
from engine.core.trust import new_token
from engine.roles.checkpointer import Checkpointer
from engine.roles.eraser import Eraser
from engine.roles.follower import Follower
from engine.roles.learner import Learner
from engine.roles.live_model import LiveModel
from engine.roles.supervisor import Supervised
from engine.storage.feedback_log import FeedbackLog
from engine.storage.keys import Keys
from engine.storage.redis_server import RedisTarget, resolve
from engine.storage.retention import Retention
from engine.storage.signing import load_key
from engine.storage.slate_store import SlateStore
from engine.storage.snapshot_store import SnapshotStore
from engine.storage.tombstones import Tombstones

log = logging.getLogger("freshrec.node")


class Node:
    """The engine of one process. Build it with ``Node.open`` (it connects); then ``start``,
    run ``run()`` as a task (``running`` does both), serve ``recommend`` and
    ``log.accept``, and ``close``.

    Args:
        redis: ``redis.asyncio.Redis`` (binary responses); the node closes it.
        target: where that Redis is (``engine.storage.redis_server.resolve``); the node stops
            an embedded server it started.
        snapshot_key: HMAC key that signs and verifies snapshots.
        engine, guard, snapshots, policies: configuration (``engine.config``).
        key_prefix: Redis key prefix (``engine.storage.keys.Keys``).
        follower: a read-only replica (``Follower``) instead of the learner.
        consumer: consumer name within the learner group.
    """

    def __init__(self, redis: Redis, target: RedisTarget, snapshot_key: bytes, engine: EngineConfig | None = None,
                 guard: GuardConfig | None = None, snapshots: SnapshotConfig | None = None,
                 key_prefix: str = "freshrec", follower: bool = False, consumer: str = "learner-1",
                 policies: PolicyConfig | None = None) -> None:
        if not snapshot_key:
            raise ValueError("snapshot_key is required (see engine.storage.signing.load_key)")
        self.redis = redis
        self.target = target
        self.engine = engine or EngineConfig()
        self.guard = (guard or GuardConfig()).model_copy()
        self.snapshot_config = snapshots or SnapshotConfig()
        self.policies = policies or PolicyConfig()
        self.follower = follower
        if follower:
            self.guard.validate_windows = False  # replicas take the learner's decisions from its snapshots
        keys = Keys(key_prefix)
        self.keys = keys
        c = self.snapshot_config
        self.snapshots = SnapshotStore(redis, keys, snapshot_key, Retention(c.recent, c.hours, c.max_bytes))
        self.slates = SlateStore(redis, keys, self.guard.join_window_s, log_to_stream=self.engine.log_slates)
        self.live = LiveModel(GuardedRecommender(self.engine, self.guard, slate_sink=self.slates.record,
                                                 policies=self.policies))
        judge = partial(self.slates.classify, join=self.live.guarded.join) if self.guard.enabled else None
        self.log = FeedbackLog(redis, keys, self.live.recommender.semantics, judge, self.slates)  # the intake
        self.tombstones = Tombstones(redis, keys, snapshot_key)
        self.checkpointer = Checkpointer(self.live, self.snapshots, self.log, target.url, c, self.engine,
                                         self.tombstones)
        self.eraser = Eraser(self.live, self.tombstones, self.snapshots, self.slates, target.url,
                             self.guard.join_window_s)
        if follower:
            role = Follower(self.live, self.log, self.checkpointer, c.resync_s)
            self.supervised = Supervised("replica", role.step)
        else:
            role = Learner(self.live, self.log, self.checkpointer, consumer)
            self.supervised = Supervised("learner", role.step, role.recover)
        self.role = role

    @classmethod
    async def open(cls, redis_url: str | None, data_dir: str | None, *, snapshot_key: str | None = None,
                   appendfsync: str = "everysec", **kwargs) -> "Node":
        """Connect to Redis (``redis_url``, else the embedded server in ``data_dir``) and
        build the node with the snapshot key (``snapshot_key``, else the data dir's key
        file). ``kwargs`` go to the constructor.

        Raises:
            redis.exceptions.ConnectionError: Redis unreachable (the embedded server, if any,
                is stopped before raising).
        """
        target = resolve(redis_url, data_dir, appendfsync)
        redis = Redis.from_url(target.url, socket_timeout=5, socket_connect_timeout=2)
        try:
            await redis.ping()
            return cls(redis, target, load_key(data_dir, snapshot_key), **kwargs)
        except BaseException:
            await redis.aclose()
            target.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Check the event schema against the stored one (``FeedbackLog.ensure_schema``:
        raises ``SchemaMismatch``), restore the newest good snapshot; the learner also
        positions its consumer group after it and starts the snapshot writer process. A
        follower never touches the group: it belongs to the one learner, and rewinding it
        would make the learner apply entries twice. The learner finally resumes stream
        purges of erased users left pending by a process that died mid-way."""
        await self.log.ensure_schema()
        await self.checkpointer.restore_latest()
        if not self.follower:
            await self.role.position()
            self.checkpointer.start_writer()
            await self.eraser.resume()

    async def run(self) -> None:
        """The role's loop, forever (until cancelled)."""
        await self.supervised.run()

    async def close(self, final_snapshot: bool = True) -> None:
        """Stop: the learner waits for a running checkpoint and (``final_snapshot``) writes a
        last one; then the Redis client is closed and an embedded server stopped."""
        try:
            await self.eraser.close()
            if not self.follower:
                await self.checkpointer.close(final_snapshot)
        finally:
            await self.redis.aclose()
            self.target.close()

    # ------------------------------------------------------------------ serving
    def recommend(self, user_id: str, k: int = 10, exclude: list[str] | tuple = (),
                  context: dict | None = None, policy=None) -> Slate:
        """The serving function (``GuardedRecommender.recommend``): a fresh recommendation
        id, the slate drawn in ``context`` under the exploration ``policy`` (default: the
        configured one) seeded by that id, recorded for the impression join (written to
        Redis behind), the guard's prequential alarm fed. Never creates model state."""
        return self.live.guarded.recommend(user_id, k, exclude, now=time.time(), token=new_token(), context=context,
                                           policy=policy)

    async def erase_user(self, user_id: str, timeout_s: float = 5.0) -> dict:
        """Erase a user (``DELETE /users/{id}``): ``engine.roles.eraser.Eraser.erase``.

        Raises:
            redis.exceptions.RedisError: Redis could not take the erasure (nothing erased).
        """
        return await self.eraser.erase(user_id, timeout_s)

    # ------------------------------------------------------------------ reading
    @property
    def recommender(self) -> Recommender:
        """The live model."""
        return self.live.recommender

    @property
    def redis_ok(self) -> bool:
        """Whether the role currently reaches Redis (False: serving stale, not learning)."""
        return self.supervised.redis_ok

    async def stream_lag(self) -> int | None:
        """Accepted events not yet learned (capped; None when Redis is unavailable)."""
        try:
            return await self.log.lag(self.recommender.last_event_id)
        except RedisError:
            return None


@contextlib.asynccontextmanager
async def running(node: Node, final_snapshot: bool = True):
    """``start`` the node, run its role as a task, and on exit cancel it and ``close``."""
    task = None
    try:
        await node.start()
        task = asyncio.create_task(node.run())
        yield node
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await node.close(final_snapshot and task is not None)

