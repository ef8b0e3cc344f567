"""``/users``: what the model knows about a user (``GET /users/{user_id}``, scope ``serve``),
the user ids it holds (``GET /users``, scope ``admin``), and the right to erasure
(``DELETE /users/{user_id}``, scope ``catalogue`` or ``admin``).

"Catalogue or admin" is ``require("catalogue")``: an admin key holds every scope
(``api.security.Principal.may``), so no extra helper is needed. In open mode (no
``api_keys``) the catalogue routes, this one included, answer every client that reaches the
port (a loopback host unless ``insecure``), like ``PUT /items``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from api.dependencies import NodeDep, unavailable
from api.schemas import ErasureReport, UserPage, UserProfile
from api.security import require
from engine.core.users import MAX_RECENT, knows, profile

router = APIRouter(tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=128, description="the user id (may contain '/')",
                             examples=["alice"])]
NOT_KNOWN = {404: {"description": "the model holds nothing about this user",
                   "content": {"application/json": {"example": {
                       "detail": "user_id: user 'alice' is not known to the model"}}}}}


def not_known(user_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"user_id: user {user_id!r} is not known to the model")


@router.get("/users", response_model=UserPage, dependencies=[Depends(require("admin"))])
async def list_users(node: NodeDep,
                     after: Annotated[str | None, Query(pattern=r"^\d+$", description="cursor from the previous page",
                                                        examples=["1000"])] = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> dict:
    """The user ids the serving model holds, a page at a time in the model's row order
    (``freshrec export --users-from-model`` reads them). A compaction of the model's rows
    between two pages (after evictions or erasures) may skip or repeat ids."""
    model = node.recommender.model
    ids, index = model.user_ids, model.user_index
    start = int(after) if after is not None else 0
    page, row = [], start
    while row < len(ids) and len(page) < limit:
        if index.get(ids[row]) == row:
            page.append(ids[row])
        row += 1
    return {"users": page, "next": str(row) if row < len(ids) else None, "total": len(index)}


@router.get("/users/{user_id:path}", response_model=UserProfile, responses=NOT_KNOWN,
            dependencies=[Depends(require("serve"))])
async def get_user(node: NodeDep, user_id: UserId,
                   recent: Annotated[int, Query(ge=0, le=MAX_RECENT, description="recent positives to list")] = 10
                   ) -> dict:
    """What the serving model knows about ``user_id``: their latest positives (item ids,
    newest first), counts, last activity (event time) and the guard's trust in the account.
    404 when it holds nothing about them (never seen, evicted, or erased). Creates no state."""
    guarded = node.live.guarded
    rec = guarded.recommender
    found = profile(rec, user_id, recent)
    if found is None:
        raise not_known(user_id)
    counts = {k: found[k] for k in ("positives", "interactions", "seen_items", "pending_impressions", "tag_profile")}
    challenger = guarded.arena.challenger
    return {"user_id": user_id, "model_version": rec.events_learned, "recent_positives": found["recent_positives"],
            "counts": counts, "last_active": found["last_active"], "trust": guarded.user_trust(user_id),
            "factors": found["factors"], "challenger": challenger is not None and knows(challenger, user_id)}


@router.delete("/users/{user_id:path}", response_model=ErasureReport, status_code=200,
               dependencies=[Depends(require("catalogue"))],
               responses={202: {"model": ErasureReport, "description": "durable, still being applied or purged"},
                          503: {"description": "Redis could not take the erasure: nothing was erased, retry"}})
async def delete_user(node: NodeDep, user_id: UserId,
                      wait_ms: Annotated[int, Query(ge=0, le=30_000, description="how long to wait for this node "
                                                    "to apply the erasure and for the purges")] = 5000):
    """Right to erasure: forget ``user_id`` everywhere freshrec keeps them.

    Durable before it answers (a ``forget`` entry in the stream and a tombstone, one atomic
    call): the learner and every replica erase the user from their model, guard state,
    challenger and decision log when they reach that entry; the user's earlier stream
    entries and served slates are deleted from Redis; every restore erases them from an
    older snapshot; the snapshots written before the erasure are deleted once a snapshot
    after it is committed. Aggregates the user contributed to (item popularity,
    co-occurrence counts, item factors) are not unlearned. A later ``/feedback`` for the same
    id starts a fresh user. Answers 200 with what was removed when done within ``wait_ms``,
    else 202 (it completes in the background). Unknown users are erased too (their
    entries may still be in the stream): the answer's ``removed.model.known`` says whether
    the model held anything."""
    try:
        report = await node.erase_user(user_id, wait_ms / 1000.0)
    except RedisError as exc:
        return unavailable(exc, "erasure store")
    return JSONResponse(status_code=200 if report["complete"] else 202,
                        content=ErasureReport.model_validate(report).model_dump(mode="json"))
