"""Admin endpoints (snapshot history and restore), separate from the public API: they need
an API key with the ``admin`` scope, or ``admin_token``, or, with neither configured, a
client on the loopback interface (``api.dependencies.require_admin``, ``api.security``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from redis.exceptions import RedisError

from api.dependencies import NodeDep, require_admin
from engine.core.snapshot_codec import SnapshotError

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("/snapshots")
async def list_snapshots(node: NodeDep) -> dict:
    """Retained snapshots, newest first: version, created_at, events_learned, size, verdict."""
    try:
        infos = await node.snapshots.list()
    except RedisError as exc:
        raise HTTPException(status_code=503, detail=f"snapshot store unavailable: {type(exc).__name__}")
    current = node.checkpointer.last_snapshot.version if node.checkpointer.last_snapshot else None
    return {"current": current, "snapshots": [asdict(i) for i in infos]}


@router.post("/snapshots", status_code=201)
async def take_snapshot(node: NodeDep) -> dict:
    """Checkpoint now (e.g. before a deploy); answers the new snapshot's metadata."""
    try:
        info = await node.checkpointer.checkpoint(verdict="manual")
    except RedisError as exc:
        raise HTTPException(status_code=503, detail=f"snapshot store unavailable: {type(exc).__name__}")
    return asdict(info)


@router.post("/snapshots/{version}/restore")
async def restore_snapshot(node: NodeDep, version: Annotated[int, Path(ge=1)]) -> dict:
    """Make an older snapshot the serving model; the learner continues from it."""
    try:
        return await node.checkpointer.restore_version(version)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"version: snapshot {version} does not exist")
    except SnapshotError as exc:
        raise HTTPException(status_code=409, detail=f"version: snapshot {version} refused: {exc}")
    except RedisError as exc:
        raise HTTPException(status_code=503, detail=f"snapshot store unavailable: {type(exc).__name__}")
