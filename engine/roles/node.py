"""One freshrec process's engine: it owns the Redis client (and the embedded redis-server, if
it started one), the live model and the roles that run in this process, and closes them.

The same code runs as one process (``freshrec serve``: API + learner) or as many
(``freshrec learner`` + ``freshrec serve --no-learner`` replicas), like Gorse's roles: a node
is either the learner (consumer group, checkpoints) or a follower (read-only replica).

The path of one click: ``node.log.accept`` (``FeedbackLog.accept``, the intake: validate,
classify trust against the served slates, XADD) -> ``learner.Learner`` (XREADGROUP ->
``GuardedRecommender.apply`` -> XACK). The path of one slate: ``recommend``
(``GuardedRecommender.recommend``: rank, slate id, record, alarm).

Operations: ``open`` waits a bounded time for Redis and refuses one that may evict keys;
``start`` refuses snapshots that none verifies; every role (learner or replica, and the
learner's checkpointer) runs under a ``Supervised`` loop; ``readiness`` says why the node is
not ready (``GET /health/ready``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from engine.config import EngineConfig, GuardConfig, OpsConfig, PolicyConfig, SnapshotConfig
from engine.core.events import Event
from engine.core.guard import GuardedRecommender, Slate
from engine.core.recommender import Recommender
from engine.core.trust import new_token
from engine.roles.checkpointer import Checkpointer
from engine.roles.clock import ClockWatch
from engine.roles.follower import Follower
from engine.roles.health import Lag, Probe, readiness
from engine.roles.learner import Learner
from engine.roles.live_model import LiveModel
from engine.roles.supervisor import FAILED, Supervised
from engine.storage.feedback_log import FeedbackLog, SchemaMismatch
from engine.storage.keys import Keys
from engine.storage.preflight import StartupError, check_eviction, wait_for_redis
from engine.storage.redis_server import RedisTarget, resolve
from engine.storage.retention import Retention
from engine.storage.signing import load_key
from engine.storage.slate_store import SlateStore
from engine.storage.snapshot_store import NoUsableSnapshot, SnapshotStore

log = logging.getLogger("freshrec.node")

STARTUP_ERRORS = (StartupError, NoUsableSnapshot, SchemaMismatch)
"""Misconfigurations that stop a process at start with a message saying what to change."""


class Node:
    """The engine of one process. Build it with ``Node.open`` (it connects); then ``start``,
    run ``run()`` as a task (``running`` does both), serve ``recommend`` and
    ``log.accept``, and ``close``.

    Args:
        redis: ``redis.asyncio.Redis`` (binary responses); the node closes it.
        target: where that Redis is (``engine.storage.redis_server.resolve``); the node stops
            an embedded server it started.
        snapshot_key: HMAC key that signs and verifies snapshots.
        engine, guard, snapshots, policies, ops: configuration (``engine.config``).
        key_prefix: Redis key prefix (``engine.storage.keys.Keys``).
        follower: a read-only replica (``Follower``) instead of the learner.
        consumer: consumer name within the learner group.
    """

    def __init__(self, redis: Redis, target: RedisTarget, snapshot_key: bytes, engine: EngineConfig | None = None,
                 guard: GuardConfig | None = None, snapshots: SnapshotConfig | None = None,
                 key_prefix: str = "freshrec", follower: bool = False, consumer: str = "learner-1",
                 policies: PolicyConfig | None = None, ops: OpsConfig | None = None) -> None:
        if not snapshot_key:
            raise ValueError("snapshot_key is required (see engine.storage.signing.load_key)")
        self.redis = redis
        self.target = target
        self.engine = engine or EngineConfig()
        self.guard = (guard or GuardConfig()).model_copy()
        self.snapshot_config = snapshots or SnapshotConfig()
        self.policies = policies or PolicyConfig()
        self.ops = ops or OpsConfig()
        self.follower = follower
        if follower:
            self.guard.validate_windows = False  # replicas take the learner's decisions from its snapshots
        keys = Keys(key_prefix)
        self.keys = keys
        c = self.snapshot_config
        self.snapshots = SnapshotStore(redis, keys, snapshot_key, Retention(c.recent, c.hours, c.max_bytes))
        self.slates = SlateStore(redis, keys, self.guard.join_window_s, log_to_stream=self.engine.log_slates)
        self.live = LiveModel(self._new_guarded(), self.engine.max_clock_skew_s, factory=self._new_guarded)
        judge = self._judge if self.guard.enabled else None
        self.log = FeedbackLog(redis, keys, self.live.recommender.semantics, judge, self.slates,  # the intake
                               max_clock_skew_s=self.engine.max_clock_skew_s)
        self.checkpointer = Checkpointer(self.live, self.snapshots, self.log, target.url, c, self.engine)
        n = self.ops.max_failures
        if follower:
            role = Follower(self.live, self.log, self.checkpointer, c.resync_s)
            self.supervised = Supervised("replica", role.step, restart=role.restart, max_failures=n)
            self.roles = [self.supervised]
        else:
            role = Learner(self.live, self.log, self.checkpointer, consumer)
            self.supervised = Supervised("learner", role.step, role.recover, restart=role.restart, max_failures=n)
            self.roles = [self.supervised, Supervised("checkpointer", self.checkpointer.step, max_failures=n)]
        self.role = role
        self.clock = ClockWatch(redis, self.engine.max_clock_skew_s)
        self.log.clock_error = self.clock.error
        self.roles.append(Supervised("clock", self.clock.step, max_failures=n))
        self.probe = Probe(redis, self.log, lambda: self.live.recommender.last_event_id, self.ops.max_lag_events + 1)
        self.started = False
        self.task: asyncio.Task | None = None  # run() as started by ``running``: done once a role failed

    def _new_guarded(self) -> GuardedRecommender:
        return GuardedRecommender(self.engine, self.guard, slate_sink=self.slates.record, policies=self.policies)

    async def _judge(self, events: list[Event]) -> list[Event]:
        # the join of the model serving now (a restart of the learner rebuilds it)
        return await self.slates.classify(events, join=self.live.guarded.join)

    @classmethod
    async def open(cls, redis_url: str | None, data_dir: str | None, *, snapshot_key: str | None = None,
                   appendfsync: str = "everysec", **kwargs) -> "Node":
        """Connect to Redis (``redis_url``, else the embedded server in ``data_dir``), waiting
        for it up to ``ops.redis_wait_s`` (unreachable or still loading), check that it will
        not evict keys, and build the node with the snapshot key (``snapshot_key``, else the
        data dir's key file). ``kwargs`` go to the constructor.

        Raises:
            engine.storage.preflight.RedisUnavailable: no answer within ``ops.redis_wait_s``.
            engine.storage.preflight.EvictingRedis: ``maxmemory-policy allkeys-*``.
            redis.exceptions.RedisError: an error retrying will not cure (a wrong password).
            (The embedded server, if any, is stopped before raising.)
        """
        ops = kwargs.get("ops") or OpsConfig()
        target = resolve(redis_url, data_dir, appendfsync)
        # one immediate retry (a pooled connection that died with a Redis restart), no more:
        # redis-py's default (10 retries, backoff to 1 s) would hold a /feedback for seconds
        # before its 503, and hide an outage from the roles, whose supervisor backs off itself
        redis = Redis.from_url(target.url, socket_timeout=5, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1))
        try:
            await wait_for_redis(redis, redis_url or "the embedded redis-server", ops.redis_wait_s)
            await check_eviction(redis)
            return cls(redis, target, load_key(data_dir, snapshot_key), **kwargs)
        except BaseException:
            await redis.aclose()
            target.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Check the event schema against the stored one (``FeedbackLog.ensure_schema``:
        raises ``SchemaMismatch``), restore the newest good snapshot (raises
        ``NoUsableSnapshot`` when snapshots exist but none verifies with our key); the learner
        also positions its consumer group after it and starts the snapshot writer process. A
        follower never touches the group: it belongs to the one learner, and rewinding it
        would make the learner apply entries twice."""
        await self.log.ensure_schema()
        await self.clock.measure()
        await self.checkpointer.restore_latest()
        if not self.follower:
            await self.role.position()
            self.checkpointer.start_writer()
        self.started = True

    async def run(self) -> None:
        """Every role's supervised loop, until cancelled; returns once a role failed
        (``failed``) and the others are cancelled."""
        tasks = [asyncio.create_task(r.run(), name=f"freshrec-{r.name}") for r in self.roles]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

    async def close(self, final_snapshot: bool = True) -> None:
        """Stop: the learner waits for a running checkpoint and (``final_snapshot``) writes a
        last one; then the Redis client is closed and an embedded server stopped."""
        try:
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

    # ------------------------------------------------------------------ reading
    @property
    def recommender(self) -> Recommender:
        """The live model."""
        return self.live.recommender

    @property
    def redis_ok(self) -> bool:
        """Whether the role currently reaches Redis (False: serving stale, not learning)."""
        return self.supervised.redis_ok

    @property
    def failed(self) -> list[str]:
        """The roles that failed (``ops.max_failures`` failures in a row)."""
        return [r.name for r in self.roles if r.state == FAILED]

    async def stream_lag(self) -> Lag:
        """Accepted entries not yet learned, from the shared probe (``engine.roles.health``:
        at most one bounded XRANGE per second; ``events`` None when Redis is unavailable)."""
        await self.probe.refresh()
        return self.probe.lag()

    async def readiness(self) -> list[str]:
        """Why this node should not get traffic now (empty: ready): a role not running,
        Redis not answering, the stream lag over ``ops.max_lag_events``, or (learner) learned
        events waiting for a snapshot longer than ``ops.max_snapshot_age_s``."""
        await self.probe.refresh()
        reasons = [] if self.started else ["starting"]
        if self.clock.error():
            reasons.append(f"clock: {self.clock.error()}")
        learner = not self.follower
        return reasons + readiness(self.roles, self.probe, self.ops.max_lag_events,
                                   self.checkpointer.unsnapshotted_s() if learner else None,
                                   self.ops.max_snapshot_age_s if learner else None)

    def status(self) -> dict:
        """Each role's state, restarts and last error (``GET /model``)."""
        return {r.name: r.status() for r in self.roles}


@contextlib.asynccontextmanager
async def running(node: Node, final_snapshot: bool = True):
    """``start`` the node, run its roles as a task (``node.task``, which ends early when a
    role fails), and on exit cancel it and ``close``."""
    task = None
    try:
        await node.start()
        task = node.task = asyncio.create_task(node.run())
        yield node
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # no final snapshot of a model whose learner failed (it may be half-updated)
        await node.close(final_snapshot and task is not None and not node.failed and not node.live.broken)

