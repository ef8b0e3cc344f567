"""Request and response bodies (pydantic). Validation errors become 422 naming the field."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RecommendRequest(BaseModel):
    """``POST /recommend``: a slate of ``k`` items for ``user_id``."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id
    k: int = Field(10, ge=1, le=100)
    exclude: list[Id] = Field(default_factory=list, max_length=1000)
    context: dict = Field(default_factory=dict)


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
    """``POST /feedback``: one event. ``rating`` needs a finite ``value``; ``timestamp`` is
    event time in unix seconds."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id
    item_id: Id
    event: Literal["click", "impression", "rating"]
    value: float | None = None
    recommendation_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    timestamp: float | None = Field(None, ge=0, le=1e11)

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("value must be a finite number")
        return v

    @model_validator(mode="after")
    def _rating_has_value(self) -> "FeedbackRequest":
        if self.event == "rating" and self.value is None:
            raise ValueError("value: required when event is 'rating'")
        return self


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
