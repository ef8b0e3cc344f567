"""Request and response bodies (pydantic). Validation errors become 422 naming the field."""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Context = Annotated[dict[Annotated[str, StringConstraints(min_length=1, max_length=64)],
                         Annotated[str, StringConstraints(max_length=128)] | int | float | bool],
                    Field(max_length=16)]
"""Request context: at most 16 ``key: value`` pairs (string, number or boolean values)."""


class RecommendRequest(BaseModel):
    """``POST /recommend``: a slate of ``k`` items for ``user_id``."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id
    k: int = Field(10, ge=1, le=100)
    exclude: list[Id] = Field(default_factory=list, max_length=1000)
    context: Context = Field(default_factory=dict, description="what the app knows of the request (device, page, "
                             "daypart, ...): the ranker learns per-context popularity", examples=[{"device": "mobile"}])


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    """The slate, best first; ``model_version`` = events the serving model has learned;
    ``stale`` = the learner cannot reach Redis, so the model is not learning right now."""

    recommendation_id: str
    model_version: int
    items: list[ScoredItem]
    stale: bool = False


class FeedbackRequest(BaseModel):
    """``POST /feedback``: one event. ``event`` is one of the deployment's event types
    (``GET /model`` lists them: by default click, impression, rating); a rating needs a
    finite ``value`` on its scale; ``timestamp`` is event time in unix seconds."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id
    item_id: Id
    event: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="an event type of the deployment's schema (GET /model: schema)", examples=["click"])
    value: float | None = None
    recommendation_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    timestamp: float | None = Field(None, ge=0, le=1e11)
    context: Context | None = Field(None, description="the request context the event happened in (default: the "
                                    "context of the slate it answers)")
    event_key: Id | None = Field(None, description="client-chosen id of this event (e.g. a uuid4), kept across "
                                 "retries: a key accepted within dedup_window_s is not appended again, the answer is "
                                 "the original event_id")

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v


class FeedbackAccepted(BaseModel):
    event_id: str


class FeedbackBatch(BaseModel):
    """``POST /feedback/batch``: 1..1000 events, accepted all together or not at all."""

    model_config = ConfigDict(extra="forbid")
    events: list[FeedbackRequest] = Field(min_length=1, max_length=1000)


class FeedbackBatchAccepted(BaseModel):
    event_ids: list[str]


class ItemRequest(BaseModel):
    """``PUT /items/{item_id}``: catalogue metadata; ``hidden`` items are never recommended."""

    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, StringConstraints(max_length=512)] | None = None
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=64)
    hidden: bool = False
