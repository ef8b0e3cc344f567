"""``GET /model``, ``/model/learned``, ``/metrics`` and ``/health`` (+ ``/health/live``,
``/health/ready``): what the model knows and how the process is doing.

The stream lag of ``/model``, ``/metrics`` and ``/health/ready`` comes from one shared probe
(``engine.roles.health.Probe``): at most one bounded XRANGE per second, never a read of the
whole backlog on the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.dependencies import MetricsDep, NodeDep
from engine.roles.live_model import stream_id_key

router = APIRouter(tags=["model"])


@router.get("/health")
async def health(node: NodeDep) -> dict:
    """Liveness plus whether the node currently reaches Redis."""
    return {"status": "ok", "redis": node.redis_ok}


@router.get("/health/live")
async def health_live() -> dict:
    """Liveness: 200 while the process answers (an orchestrator restarts it otherwise)."""
    return {"live": True}


@router.get("/health/ready")
async def health_ready(node: NodeDep):
    """Readiness: 200 ``{"ready": true}``, or 503 ``{"ready": false, "reasons": [...]}``
    naming each reason: a role not running (paused by a Redis outage, restarting, failed),
    Redis not answering, more than ``ops.max_lag_events`` entries waiting to be learned,
    or (learner) learned events waiting for a snapshot longer than ``ops.max_snapshot_age_s``."""
    reasons = await node.readiness()
    if reasons:
        return JSONResponse(status_code=503, content={"ready": False, "reasons": reasons, "roles": node.status()})
    return {"ready": True, "roles": node.status()}


@router.get("/model")
async def model(node: NodeDep) -> dict:
    """Model version, learning progress, last snapshot, stream lag and freshness; the learned
    ranker's serving candidate, feature groups, decayed hit rates and weights (``ranker``)."""
    rec = node.recommender
    cp = node.checkpointer
    snap = cp.last_snapshot
    lag = await node.stream_lag()
    return {
        "model_version": rec.events_learned,
        "events_learned": rec.events_learned,
        "positives_learned": rec.positives_learned,
        "last_event_id": rec.last_event_id,
        "event_clock": rec.clock,
        "last_snapshot": None if snap is None else {
            "version": snap.version, "created_at": snap.created_at, "events_learned": snap.events_learned},
        "stream_lag": lag.events,
        "stream_lag_capped": lag.capped,
        "stream_lag_oldest_ms": lag.oldest_ms,
        "freshness_ms": node.live.freshness.percentiles(),
        "checkpoint_ms_last": cp.checkpoint_ms[-1] if cp.checkpoint_ms else None,
        "checkpoints": [list(w) for w in cp.checkpoint_windows],
        "dead_letters": node.live.dead_letters,
        "validations": [list(w) for w in node.live.validations],
        "learner_errors": node.live.errors,
        "unsnapshotted_s": None if node.follower else round(cp.unsnapshotted_s(), 3),
        "roles": node.status(),
        "redis_ok": node.redis_ok,
        "schema": rec.semantics.describe(),
        "bounds": {"evicted_users": rec.evicted_users, "erased_users": rec.erased_users,
                   "refused_items": rec.refused_items,
                   "max_users": rec.config.max_users, "user_ttl_s": rec.config.user_ttl_s,
                   "max_items": rec.config.max_items, "items_from_feedback": rec.config.items_from_feedback},
        "size": rec.stats(),
        "ranker": rec.ranker.weights() if rec.learned else None,
        "guard": node.live.guarded.stats(),
        "policies": {"challenger": node.policies.challenger is not None,
                     "estimates": node.live.guarded.arena.estimates()},
    }


@router.get("/metrics")
async def prometheus_metrics(node: NodeDep, metrics: MetricsDep) -> Response:
    """Prometheus text exposition: request latency, feedback->effect latency, events
    learned, stream lag, model version, guard rollbacks, dead letters, role restarts and
    states, readiness."""
    rec = node.recommender
    reasons = await node.readiness()  # refreshes the shared probe (at most once a second)
    lag = node.probe.lag()
    if lag.events is not None:
        metrics.stream_lag.set(lag.events)
    metrics.node_counters.data = {"dead_letters": node.live.dead_letters, "roles": node.status(),
                                  "ready": 0.0 if reasons else 1.0}
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
