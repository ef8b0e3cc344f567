"""``GET /model``, ``/model/learned``, ``/metrics`` and ``/health``: what the model knows and
how the process is doing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.dependencies import MetricsDep, NodeDep
from engine.roles.live_model import stream_id_key

router = APIRouter(tags=["model"])


@router.get("/health")
async def health(node: NodeDep) -> dict:
    """Liveness plus whether the node currently reaches Redis."""
    return {"status": "ok", "redis": node.redis_ok}


@router.get("/model")
async def model(node: NodeDep) -> dict:
    """Model version, learning progress, last snapshot, stream lag and freshness."""
    rec = node.recommender
    cp = node.checkpointer
    snap = cp.last_snapshot
    lag = await node.stream_lag()
    return {
        "model_version": rec.events_learned,
        "events_learned": rec.events_learned,
        "positives_learned": rec.positives_learned,
        "last_event_id": rec.last_event_id,
        "last_snapshot": None if snap is None else {
            "version": snap.version, "created_at": snap.created_at, "events_learned": snap.events_learned},
        "stream_lag": lag,
        "freshness_ms": node.live.freshness.percentiles(),
        "checkpoint_ms_last": cp.checkpoint_ms[-1] if cp.checkpoint_ms else None,
        "checkpoints": [list(w) for w in cp.checkpoint_windows],
        "learner_errors": node.live.errors,
        "redis_ok": node.redis_ok,
        "schema": rec.semantics.describe(),
        "bounds": {"evicted_users": rec.evicted_users, "erased_users": rec.erased_users,
                   "refused_items": rec.refused_items,
                   "max_users": rec.config.max_users, "user_ttl_s": rec.config.user_ttl_s,
                   "max_items": rec.config.max_items, "items_from_feedback": rec.config.items_from_feedback},
        "size": rec.stats(),
        "guard": node.live.guarded.stats(),
        "policies": {"challenger": node.policies.challenger is not None,
                     "estimates": node.live.guarded.arena.estimates()},
    }


@router.get("/metrics")
async def prometheus_metrics(node: NodeDep, metrics: MetricsDep) -> Response:
    """Prometheus text exposition: request latency, feedback->effect latency, events
    learned, stream lag, model version, guard rollbacks."""
    rec = node.recommender
    lag = await node.stream_lag()
    if lag is not None:
        metrics.stream_lag.set(lag)
    metrics.events_learned.set(rec.events_learned)
    metrics.model_version.set(rec.events_learned)
    metrics.rollbacks.set(node.live.guarded.stats()["rollbacks"])
    for name, est in node.live.guarded.arena.estimates().items():
        metrics.policy_value.labels(name).set(est["value"])
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/model/learned")
async def model_learned(node: NodeDep, event_id: Annotated[str, Query(pattern=r"^\d+-\d+$")],
                        timeout_ms: Annotated[int, Query(ge=0, le=30_000)] = 0) -> dict:
    """Read-your-writes: wait up to ``timeout_ms`` until the event ``event_id`` (from a 202)
    is learned; ``{"learned": bool, "events_learned": int}``."""
    stream_id_key(event_id)
    ok = await node.live.wait_learned(event_id, timeout_ms / 1000.0)
    return {"learned": ok, "events_learned": node.recommender.events_learned}
