"""Request and response bodies (pydantic). Validation errors become 422 naming the field."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Context = Annotated[dict[Annotated[str, StringConstraints(min_length=1, max_length=64)],
                         Annotated[str, StringConstraints(max_length=128)] | int | float | bool],
                    Field(max_length=16)]
"""Request context: at most 16 ``key: value`` pairs (string, number or boolean values)."""


class Explore(BaseModel):
    """Exploration for one request (overrides the ``engine.explore*`` settings)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["none", "epsilon", "softmax"] | None = None
    epsilon: float | None = Field(None, ge=0, le=1)
    temperature: float | None = Field(None, gt=0, le=1e6)
    new_item_bonus: float | None = Field(None, ge=0, le=1e6)


class RecommendRequest(BaseModel):
    """``POST /recommend``: a slate of ``k`` items for ``user_id``."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id
    k: int = Field(10, ge=1, le=100)
    exclude: list[Id] = Field(default_factory=list, max_length=1000)
    context: Context = Field(default_factory=dict, description="what the app knows of the request (device, page, "
                             "daypart, ...): the ranker learns per-context popularity", examples=[{"device": "mobile"}])
    explore: Explore | None = Field(None, description="exploration for this request (default: the server's "
                                    "engine.explore settings)", examples=[{"kind": "epsilon", "epsilon": 0.1}])


class ScoredItem(BaseModel):
    item_id: str
    score: float
    propensity: float = Field(1.0, description="probability the serving policy put this item in this slot, given "
                              "the slots above (1 when greedy)")
    explored: bool = Field(False, description="the slot holds an exploration pick, not the ranker's best remaining item")


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
