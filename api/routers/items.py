"""``/items``: the catalogue (``PUT`` and ``DELETE /items/{item_id}``, scope ``catalogue``) and
item-to-item recommendations (``GET /items/{item_id}/similar``, scope ``serve``).

Catalogue writes are events in the feedback stream (``ITEM_KIND``), applied by the learner
in stream order, so they survive restarts and replays like feedback; they answer 202 with
the event's id (``GET /model/learned`` waits until it is applied).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from redis.exceptions import RedisError

from api.dependencies import NodeDep, unavailable
from api.schemas import FeedbackAccepted, ItemRequest, SimilarResponse
from api.security import require
from engine.core.events import ITEM_KIND, Event, item_deletion
from engine.core.similar import similar

router = APIRouter(tags=["items"])

ItemId = Annotated[str, Path(min_length=1, max_length=128)]


def _gone(item_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"item_id: item {item_id!r} does not exist")


@router.put("/items/{item_id}", status_code=202, response_model=FeedbackAccepted,
            dependencies=[Depends(require("catalogue"))],
            responses={409: {"description": "the item was deleted (ids of deleted items are not reused)"}})
async def put_item(body: ItemRequest, node: NodeDep, item_id: ItemId):
    """Add or update a catalogue item (applied by the learner, in stream order); it is
    recommendable before its first click. ``tags`` and ``fields`` (numbers, or dates as
    ISO-8601 / unix seconds, stored as unix seconds) replace the item's previous ones and
    are what ``/recommend``'s filters, diversity cap and promotions select on."""
    if node.recommender.catalogue.is_deleted(item_id):
        raise HTTPException(status_code=409, detail=f"item_id: item {item_id!r} was deleted; a deleted id is not "
                                                    "reused")
    meta = {"title": body.title, "tags": body.tags}
    if body.fields:
        meta["fields"] = dict(body.fields)
    event = Event(user_id="", item_id=item_id, kind=ITEM_KIND, received_at=time.time(), meta=meta, hidden=body.hidden)
    try:
        (event_id,) = await node.log.append([event])
    except RedisError as exc:
        return unavailable(exc)
    return FeedbackAccepted(event_id=event_id)


@router.delete("/items/{item_id}", status_code=202, response_model=FeedbackAccepted,
               dependencies=[Depends(require("catalogue"))],
               responses={404: {"description": "the model does not know the item (or it is already deleted)"}})
async def delete_item(node: NodeDep, item_id: ItemId):
    """Delete an item for good: an event in the feedback stream (so it survives restarts
    and replays), applied by the learner in order. From then on the item is never served,
    listed as similar or trending, or matched by a filter or promotion; its tags and fields
    are dropped, feedback on it is accepted but not learned, and its id cannot be PUT again
    (409). Implemented as a permanent hide: what the model learned of the item stays in its
    row (rows are dense), snapshots carry the deletion. 404 when this node's model does not
    know the item (an item PUT a moment ago: wait for its event with ``GET
    /model/learned``)."""
    if node.recommender.catalogue.live(item_id) is None:
        raise _gone(item_id)
    try:
        (event_id,) = await node.log.append([item_deletion(item_id, time.time())])
    except RedisError as exc:
        return unavailable(exc)
    return FeedbackAccepted(event_id=event_id)


@router.get("/items/{item_id}/similar", response_model=SimilarResponse, dependencies=[Depends(require("serve"))],
            responses={404: {"description": "the model does not know the item (or it was deleted)"}})
async def similar_items(node: NodeDep, item_id: ItemId,
                        k: Annotated[int, Query(ge=1, le=100, description="items wanted", examples=[10])] = 10):
    """Up to ``k`` items similar to ``item_id`` from what the model holds: co-occurrence
    neighbours ("people who liked this also liked", cosine of co-counts) first, then, for
    the remaining places, the nearest items by cosine of River BiasedMF's item factors.
    Hidden and deleted items are never listed. Creates no state."""
    rec = node.recommender
    row = rec.catalogue.live(item_id)
    if row is None:
        raise _gone(item_id)
    ids = rec.catalogue.ids
    return SimilarResponse(item_id=item_id, model_version=rec.events_learned, items=[
        {"item_id": ids[s.row], "score": s.score, "source": s.source} for s in similar(rec, row, k)])
