"""HTTP routes: /recommend, /feedback, /feedback/batch, /items/{id}, /health, /model."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from api.metrics import Metrics
from api.schemas import (
    FeedbackAccepted,
    FeedbackBatch,
    FeedbackBatchAccepted,
    FeedbackRequest,
    ItemRequest,
    RecommendRequest,
    RecommendResponse,
)
from engine.events import ITEM_KIND, Event
from engine.learner import Learner, stream_id_key

router = APIRouter()


async def get_learner(request: Request) -> Learner:
    """The app's learner. ``async`` on purpose: FastAPI runs a plain ``def`` dependency in
    its thread pool, which cost two thread handoffs per request (measured with
    ``load/bench.py``: /recommend went from 1.4k to 1.9k req/s, server-side p50 from ~20 ms
    of queueing to 0.4 ms, when the dependencies became ``async``)."""
    return request.app.state.learner


LearnerDep = Annotated[Learner, Depends(get_learner)]


def _unavailable(exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": f"feedback store unavailable, retry: {type(exc).__name__}"},
                        headers={"Retry-After": "1"})


async def _events(bodies: list[FeedbackRequest], received_at: float, learner: Learner) -> list[Event]:
    """The engine events for feedback bodies; with the guard on, their trust (impression
    join against the served slates in Redis, ``SlateStore.lookup``) is decided now, at
    acceptance, and stored with them.

    Raises:
        redis.exceptions.RedisError: Redis unavailable.
    """
    events = [Event(user_id=b.user_id, item_id=b.item_id, kind=b.event, value=b.value, timestamp=b.timestamp,
                    received_at=received_at, recommendation_id=b.recommendation_id) for b in bodies]
    if not learner.guarded.guard.enabled:
        return events
    served = await learner.slates.lookup([e.recommendation_id for e in events])
    return [replace(e, trust=learner.join.classify(e, received_at, s)) for e, s in zip(events, served)]


async def get_metrics(request: Request) -> Metrics:
    """The app's Prometheus metrics (``async``: see ``get_learner``)."""
    return request.app.state.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


@router.post("/recommend", response_model=RecommendResponse)
async def recommend(body: RecommendRequest, request: Request) -> Response:
    """Top-k slate for a user from the in-memory model (never creates state).

    The body is built and serialised by pydantic here (``RecommendResponse``) and returned as
    JSON bytes, and the learner is read from ``app.state`` rather than through ``Depends``:
    FastAPI's ``response_model`` path re-validates a returned model before serialising it,
    and with the dependency resolution that cost ~35 µs per request: the HTTP path with
    the ranking taken out (``load/route_app.py``) went from 6.0k to 7.6k req/s, ~166 to
    ~131 µs per request, in one run of the same load generator. ``response_model`` still
    documents the body in OpenAPI.
    """
    t0 = time.perf_counter()
    state = request.app.state
    learner: Learner = state.learner
    rec = learner.recommender
    ranked = rec.recommend(body.user_id, body.k, body.exclude)
    now = time.time()
    rid = learner.slates.new_id(now)
    if learner.guarded.guard.enabled:  # remembered for the impression join (trust), written behind
        learner.slates.record(rid, body.user_id, [r.item_id for r in ranked], now)
    payload = RecommendResponse.model_validate({
        "recommendation_id": rid,
        "model_version": rec.events_learned,
        "items": [{"item_id": r.item_id, "score": r.score} for r in ranked],
        "stale": not learner.redis_ok,
    }).model_dump_json()
    state.metrics.recommend_seconds.observe(time.perf_counter() - t0)
    return Response(payload, media_type="application/json")


@router.post("/feedback", status_code=202, response_model=FeedbackAccepted)
async def feedback(body: FeedbackRequest, learner: LearnerDep, metrics: MetricsDep):
    """Make one event durable (Redis Stream) and answer 202 with its id; 503 if Redis can't."""
    t0 = time.perf_counter()
    try:
        (event_id,) = await learner.log.append(await _events([body], time.time(), learner))
    except RedisError as exc:
        metrics.feedback_rejected.inc()
        return _unavailable(exc)
    metrics.feedback_accepted.inc()
    metrics.feedback_seconds.observe(time.perf_counter() - t0)
    return FeedbackAccepted(event_id=event_id)


@router.post("/feedback/batch", status_code=202, response_model=FeedbackBatchAccepted)
async def feedback_batch(body: FeedbackBatch, learner: LearnerDep, metrics: MetricsDep):
    """Up to 1,000 events in one MULTI/EXEC: all durable (202) or none (503)."""
    now = time.time()
    try:
        ids = await learner.log.append(await _events(body.events, now, learner))
    except RedisError as exc:
        metrics.feedback_rejected.inc(len(body.events))
        return _unavailable(exc)
    metrics.feedback_accepted.inc(len(ids))
    return FeedbackBatchAccepted(event_ids=ids)


@router.put("/items/{item_id}", status_code=202, response_model=FeedbackAccepted)
async def put_item(body: ItemRequest, learner: LearnerDep,
                   item_id: Annotated[str, Path(min_length=1, max_length=128)]):
    """Add or update a catalogue item (applied by the learner, in stream order)."""
    meta = {"title": body.title, "tags": body.tags}
    event = Event(user_id="", item_id=item_id, kind=ITEM_KIND, received_at=time.time(), meta=meta, hidden=body.hidden)
    try:
        (event_id,) = await learner.log.append([event])
    except RedisError as exc:
        return _unavailable(exc)
    return FeedbackAccepted(event_id=event_id)


@router.get("/health")
async def health(learner: LearnerDep) -> dict:
    """Liveness plus whether the learner currently reaches Redis."""
    return {"status": "ok", "redis": learner.redis_ok}


@router.get("/model")
async def model(learner: LearnerDep) -> dict:
    """Model version, learning progress, last snapshot, stream lag and freshness."""
    rec = learner.recommender
    snap = learner.last_snapshot
    try:
        lag = await learner.log.lag(rec.last_event_id)
    except RedisError:
        lag = None
    return {
        "model_version": rec.events_learned,
        "events_learned": rec.events_learned,
        "last_event_id": rec.last_event_id,
        "last_snapshot": None if snap is None else {
            "version": snap.version, "created_at": snap.created_at, "events_learned": snap.events_learned},
        "stream_lag": lag,
        "freshness_ms": learner.freshness.percentiles(),
        "checkpoint_ms_last": learner.checkpoint_ms[-1] if learner.checkpoint_ms else None,
        "checkpoints": [list(w) for w in learner.checkpoint_windows],
        "learner_errors": learner.errors,
        "redis_ok": learner.redis_ok,
        "size": rec.stats(),
        "guard": learner.guarded.stats(),
    }


@router.get("/metrics")
async def prometheus_metrics(learner: LearnerDep, metrics: MetricsDep) -> Response:
    """Prometheus text exposition: request latency, feedback->effect latency, events
    learned, stream lag, model version, guard rollbacks."""
    rec = learner.recommender
    try:
        metrics.stream_lag.set(await learner.log.lag(rec.last_event_id))
    except RedisError:
        pass
    metrics.events_learned.set(rec.events_learned)
    metrics.model_version.set(rec.events_learned)
    metrics.rollbacks.set(learner.guarded.stats()["rollbacks"])
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/model/learned")
async def model_learned(learner: LearnerDep, event_id: Annotated[str, Query(pattern=r"^\d+-\d+$")],
                        timeout_ms: Annotated[int, Query(ge=0, le=30_000)] = 0) -> dict:
    """Read-your-writes: wait up to ``timeout_ms`` until the event ``event_id`` (from a 202)
    is learned; ``{"learned": bool, "events_learned": int}``."""
    stream_id_key(event_id)
    ok = await learner.wait_learned(event_id, timeout_ms / 1000.0)
    return {"learned": ok, "events_learned": learner.recommender.events_learned}
