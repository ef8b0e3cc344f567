"""FastAPI application factory: the engine node in the lifespan, a router per resource."""

from __future__ import annotations

import gc
import json
import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from api.limits import BodySizeLimit
from api.metrics import Metrics
from api.request_log import RequestLog
from api.routers import admin, dashboard, feedback, guard, items, model, policies, recommend, trending, users
from api.settings import Settings, secret
from api.timing import ServerTiming
from api.validation_errors import validation_error
from engine.roles.node import STARTUP_ERRORS, Node, running

log = logging.getLogger("freshrec.api")

WORKER_ARGS_ENV = "FRESHREC_WORKER_ARGS"
"""How ``freshrec serve --workers N`` hands its command line to the worker processes (see
``app_from_env``): JSON ``{"flags": {...}, "config": path}``, never secrets."""


def _freeze_heap() -> None:
    """Move everything allocated so far (the restored model: millions of small objects) out of
    the cyclic GC's reach (``gc.freeze``) and make collections rarer, so a full collection
    does not stall requests for tens of ms (Instagram's gc.freeze pattern)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. On startup: connect to Redis (embedded when no URL), restore the
    newest good snapshot, replay the stream after it, and run the node's role (the learner,
    or a read-only replica's follower) as a task.

    Raises (at startup; uvicorn then exits non-zero):
        engine.storage.preflight.RedisUnavailable: Redis unreachable for ``ops.redis_wait_s``.
        engine.storage.preflight.EvictingRedis: Redis may evict keys (maxmemory-policy allkeys-*).
        engine.storage.snapshot_store.NoUsableSnapshot: none of the stored snapshots verifies
            with this process's snapshot key.
        engine.storage.feedback_log.SchemaMismatch: another event schema is stored.
    """
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            node = await Node.open(settings.redis_url, settings.data_dir, snapshot_key=secret(settings.snapshot_key),
                                   appendfsync=settings.appendfsync, engine=settings.engine, guard=settings.guard,
                                   snapshots=settings.snapshots, policies=settings.policies,
                                   key_prefix=settings.key_prefix,
                                   follower=not settings.learner, ops=settings.ops)
        except STARTUP_ERRORS as exc:
            log.critical("freshrec cannot start: %s", exc)
            raise
        node.log.dedup.window_s = settings.dedup_window_s
        node.live.on_learned = app.state.metrics.feedback_to_effect.observe
        try:
            async with running(node, final_snapshot=settings.final_snapshot and settings.learner):
                app.state.node = node
                app.state.settings = settings
                _freeze_heap()
                yield
        except STARTUP_ERRORS as exc:
            log.critical("freshrec cannot start: %s", exc)
            raise

    app = FastAPI(title="freshrec", version="0.1.0", lifespan=lifespan)
    app.state.metrics = Metrics()
    app.state.settings = settings
    app.add_exception_handler(RequestValidationError, validation_error)  # 422 even for NaN / 1e400 inputs
    for module in (recommend, feedback, items, trending, users, model, admin, policies, guard, dashboard):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ServerTiming)  # times the whole request
    app.add_middleware(RequestLog, enabled=settings.access_log)  # outermost: ids and logs every answer
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --workers N``: each worker process builds its own app from
    the same command line as its parent (``FRESHREC_WORKER_ARGS``, set by ``freshrec
    serve``), the environment and the TOML file, so every worker resolves the same settings."""
    args = json.loads(os.environ.get(WORKER_ARGS_ENV, "{}"))
    return create_app(Settings.load(args.get("flags"), args.get("config")))
