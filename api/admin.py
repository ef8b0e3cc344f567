"""Admin endpoints (snapshot history and restore), separate from the public API: they
require ``Authorization: Bearer $FRESHREC_ADMIN_TOKEN`` or, when no token is configured,
a client on the loopback interface."""

from __future__ import annotations

import hmac
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from redis.exceptions import RedisError

from api.routes import LearnerDep
from engine.snapshots import SnapshotError

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


async def require_admin(request: Request) -> None:
    """403 unless the caller is an admin (token, or loopback when no token is set); 409 on a
    read-only replica for anything that writes snapshots."""
    token = request.app.state.settings.admin_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(status_code=403, detail="admin token required")
    elif request.client is None or request.client.host not in _LOOPBACK:
        raise HTTPException(status_code=403, detail="admin endpoints are loopback-only without FRESHREC_ADMIN_TOKEN")
    if request.method == "POST" and request.app.state.learner.follower:
        raise HTTPException(status_code=409, detail="read-only replica: send this to the learner")


router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("/snapshots")
async def list_snapshots(learner: LearnerDep) -> dict:
    """Retained snapshots, newest first: version, created_at, events_learned, size, verdict."""
    try:
        infos = await learner.snapshots.list()
    except RedisError as exc:
        raise HTTPException(status_code=503, detail=f"snapshot store unavailable: {type(exc).__name__}")
    current = learner.last_snapshot.version if learner.last_snapshot else None
    return {"current": current, "snapshots": [asdict(i) for i in infos]}


@router.post("/snapshots", status_code=201)
async def take_snapshot(learner: LearnerDep) -> dict:
    """Checkpoint now (e.g. before a deploy); answers the new snapshot's metadata."""
    try:
        info = await learner.checkpoint(verdict="manual")
    except RedisError as exc:
        raise HTTPException(status_code=503, detail=f"snapshot store unavailable: {type(exc).__name__}")
    return asdict(info)


@router.post("/snapshots/{version}/restore")
async def restore_snapshot(learner: LearnerDep, version: Annotated[int, Path(ge=1)]) -> dict:
    """Make an older snapshot the serving model; the learner continues from it."""
    try:
        return await learner.restore_version(version)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"version: snapshot {version} does not exist")
    except SnapshotError as exc:
        raise HTTPException(status_code=409, detail=f"version: snapshot {version} refused: {exc}")
    except RedisError as exc:
        raise HTTPException(status_code=503, detail=f"snapshot store unavailable: {type(exc).__name__}")
