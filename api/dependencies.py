"""Shared state for the routers, injected with ``Depends`` (FastAPI's bigger-applications
layout): the process's engine node, its metrics and settings, and the admin check (keys,
scopes and rate limits: ``api.security``).

Dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
thread pool, which cost two thread handoffs per request (measured with ``load/bench.py``:
/recommend went from 1.4k to 1.9k req/s, server-side p50 from ~20 ms of queueing to 0.4 ms,
when the dependencies became ``async``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from api.metrics import Metrics
from api.security import Principal, require
from api.settings import Settings
from engine.roles.node import Node


async def get_node(request: Request) -> Node:
    """The app's engine node (built in the lifespan)."""
    return request.app.state.node


async def get_metrics(request: Request) -> Metrics:
    """The app's Prometheus metrics."""
    return request.app.state.metrics


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


NodeDep = Annotated[Node, Depends(get_node)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def require_admin(request: Request, _: Annotated[Principal, Depends(require("admin"))]) -> None:
    """The ``admin`` scope (``api.security.require``: 401 / 403 / 429), then 409 on a
    read-only replica for anything that writes snapshots."""
    if request.method == "POST" and request.app.state.node.follower:
        raise HTTPException(status_code=409, detail="read-only replica: send this to the learner")


def unavailable(exc: Exception, what: str = "feedback store") -> JSONResponse:
    """503 with ``Retry-After: 1``: Redis could not take a write; the client must retry."""
    return JSONResponse(status_code=503, content={"detail": f"{what} unavailable, retry: {type(exc).__name__}"},
                        headers={"Retry-After": "1"})
