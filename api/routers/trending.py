"""``GET /trending``: what is popular now (decayed popularity at the model's clock),
optionally within a tag; scope ``serve``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.dependencies import NodeDep, unprocessable
from api.schemas import TrendingResponse
from api.security import require
from engine.core.filters import UnknownName, tag_mask
from engine.core.trending import trending

router = APIRouter(tags=["trending"], dependencies=[Depends(require("serve"))])


@router.get("/trending", response_model=TrendingResponse,
            responses={422: {"description": "bad k, or a tag no item was ever PUT with"}})
async def trending_items(node: NodeDep,
                         k: Annotated[int, Query(ge=1, le=100, description="items wanted", examples=[10])] = 10,
                         tag: Annotated[str | None, Query(min_length=1, max_length=64, examples=["drama"],
                                                          description="only items with this tag")] = None):
    """The ``k`` items with the most decayed positives now (``engine.core.trending``: the
    model's trend, or for the learned ranker the popularity column nearest the trend
    half-life), best first, only items with a positive count; hidden and deleted items
    never. The same for every user (no personal terms). Creates no state."""
    rec = node.recommender
    allowed = None
    if tag is not None:
        try:
            allowed = tag_mask(rec.catalogue.attributes, [tag], "any", len(rec.catalogue), ("tag",))
        except UnknownName as exc:
            return unprocessable(("query", "tag"), str(exc))
    rows, counts = trending(rec, k, allowed)
    ids = rec.catalogue.ids
    return TrendingResponse(model_version=rec.events_learned, tag=tag, items=[
        {"item_id": ids[r], "score": c} for r, c in zip(rows.tolist(), counts.tolist())])
