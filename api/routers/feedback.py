"""``POST /feedback`` and ``/feedback/batch``: events made durable through the engine's intake."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api.dependencies import MetricsDep, NodeDep, unavailable
from api.schemas import FeedbackAccepted, FeedbackBatch, FeedbackBatchAccepted, FeedbackRequest
from api.security import require
from engine.core.events import Event, InvalidEvent

router = APIRouter(tags=["feedback"], dependencies=[Depends(require("serve"))])


def to_events(bodies: list[FeedbackRequest], received_at: float) -> list[Event]:
    """The engine events for feedback bodies, stamped with their acceptance time."""
    return [Event(user_id=b.user_id, item_id=b.item_id, kind=b.event, value=b.value, timestamp=b.timestamp,
                  received_at=received_at, recommendation_id=b.recommendation_id, context=b.context or None)
            for b in bodies]


def invalid(exc: InvalidEvent, prefix: tuple = ("body",)) -> JSONResponse:
    """422 naming the field, in FastAPI's validation-error shape."""
    return JSONResponse(status_code=422, content={"detail": [
        {"loc": [*prefix, exc.field], "msg": str(exc), "type": "value_error"}]})


@router.post("/feedback", status_code=202, response_model=FeedbackAccepted)
async def feedback(body: FeedbackRequest, node: NodeDep, metrics: MetricsDep):
    """Make one event durable (Redis Stream) and answer 202 with its id; 503 if Redis can't."""
    t0 = time.perf_counter()
    try:
        (event_id,) = await node.log.accept(to_events([body], time.time()), [body.event_key])
    except InvalidEvent as exc:
        return invalid(exc)
    except RedisError as exc:
        metrics.feedback_rejected.inc()
        return unavailable(exc)
    metrics.feedback_accepted.inc()
    metrics.feedback_seconds.observe(time.perf_counter() - t0)
    return FeedbackAccepted(event_id=event_id)


@router.post("/feedback/batch", status_code=202, response_model=FeedbackBatchAccepted)
async def feedback_batch(body: FeedbackBatch, node: NodeDep, metrics: MetricsDep):
    """Up to 1,000 events in one MULTI/EXEC: all durable (202) or none (503)."""
    try:
        ids = await node.log.accept(to_events(body.events, time.time()), [b.event_key for b in body.events])
    except InvalidEvent as exc:
        return invalid(exc, ("body", "events"))
    except RedisError as exc:
        metrics.feedback_rejected.inc(len(body.events))
        return unavailable(exc)
    metrics.feedback_accepted.inc(len(ids))
    return FeedbackBatchAccepted(event_ids=ids)
