"""FastAPI application factory: wires Redis, the learner and the routers in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.limits import BodySizeLimit
from api.timing import ServerTiming
from api.metrics import Metrics
from api.admin import router as admin_router
from api.routes import router
from api.settings import Settings
from engine.learner import open_learner

log = logging.getLogger("freshrec.api")


def _freeze_heap() -> None:
    """Move everything allocated so far (the restored model: millions of small objects) out of
    the cyclic GC's reach (``gc.freeze``) and make collections rarer, so a full collection
    does not stall requests for tens of ms (Instagram's gc.freeze pattern)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. On startup: connect to Redis (embedded when no URL), restore the
    newest good snapshot, replay the stream after it, and start the learner task.

    Raises (at startup):
        redis.exceptions.ConnectionError: Redis unreachable.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        learner, redis, target = await open_learner(settings.redis_url, settings.data_dir, settings.engine,
                                                    settings.guard)
        task = None
        try:  # whatever fails from here on, the embedded redis-server is stopped on the way out
            await learner.start(follower=not settings.learner)
            app.state.learner = learner
            learner.on_learned = app.state.metrics.feedback_to_effect.observe
            app.state.settings = settings
            _freeze_heap()
            task = asyncio.create_task(learner.run(follower=not settings.learner))
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                if settings.final_snapshot and settings.learner:
                    try:
                        await learner.close()
                    except BaseException:  # noqa: BLE001 - shutdown must finish; the stream still has every event
                        log.exception("final snapshot failed")
            await redis.aclose()
            target.close()

    app = FastAPI(title="freshrec", version="0.1.0", lifespan=lifespan)
    app.state.metrics = Metrics()
    app.include_router(router)
    app.include_router(admin_router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ServerTiming)  # outermost: times the whole request
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --workers N`` (each worker process builds its own app):
    settings come from ``FRESHREC_REDIS_URL`` and ``FRESHREC_ROLE`` (``replica`` = no
    learner) and ``FRESHREC_GUARD`` (on/off)."""
    settings = Settings(redis_url=os.environ["FRESHREC_REDIS_URL"],
                        learner=os.environ.get("FRESHREC_ROLE", "replica") != "replica")
    settings.guard.enabled = os.environ.get("FRESHREC_GUARD", "on") == "on"
    return create_app(settings)
