"""``PUT /items/{item_id}``: the catalogue."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from redis.exceptions import RedisError

from api.dependencies import NodeDep, unavailable
from api.schemas import FeedbackAccepted, ItemRequest
from api.security import require
from engine.core.events import ITEM_KIND, Event

router = APIRouter(tags=["items"], dependencies=[Depends(require("catalogue"))])


@router.put("/items/{item_id}", status_code=202, response_model=FeedbackAccepted)
async def put_item(body: ItemRequest, node: NodeDep, item_id: Annotated[str, Path(min_length=1, max_length=128)]):
    """Add or update a catalogue item (applied by the learner, in stream order); it is
    recommendable before its first click."""
    meta = {"title": body.title, "tags": body.tags}
    event = Event(user_id="", item_id=item_id, kind=ITEM_KIND, received_at=time.time(), meta=meta, hidden=body.hidden)
    try:
        (event_id,) = await node.log.append([event])
    except RedisError as exc:
        return unavailable(exc)
    return FeedbackAccepted(event_id=event_id)
