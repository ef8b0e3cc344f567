"""Request and response bodies (pydantic). Validation errors become 422 naming the field."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, FiniteFloat, StrictBool,
                      StringConstraints, ValidationInfo, field_validator, model_validator)

from simulators.datasets import TIME_UNITS, UNIT_NAMES, time_unit_of

Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Context = Annotated[dict[Annotated[str, StringConstraints(min_length=1, max_length=64)],
                         Annotated[str, StringConstraints(max_length=128)] | int | FiniteFloat | bool],
                    Field(max_length=16)]
"""Request context: at most 16 ``key: value`` pairs (string, finite number or boolean values;
the learner refuses a non-finite one, so the API must not accept it)."""


TagName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


def to_unix_seconds(value) -> float:
    """A field value or bound as a float: a finite number as it is, an ISO-8601 date or
    date-time (``2024-05-01``, ``2024-05-01T12:00:00Z``; no zone = UTC) as unix seconds.

    Raises:
        ValueError: anything else (pydantic answers 422 naming the field).
    """
    if isinstance(value, bool):
        raise ValueError("must be a number or an ISO-8601 date, not a boolean")
    if isinstance(value, (int, float)):
        try:
            value = float(value)  # an int beyond a float's range raises OverflowError
        except OverflowError:
            raise ValueError("must be a finite number (this integer is beyond a float's range)") from None
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither a number nor an ISO-8601 date") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return t.timestamp()
    raise ValueError("must be a number or an ISO-8601 date")


def _not_a_boolean(value):
    """A count must not be a JSON boolean (``true`` would be read as 1)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


MAX_UNIX_S = 1e11
"""Largest event time ``/feedback`` takes (unix seconds; the year 5138): a larger number is
another unit, which ``unix_seconds_in_range`` names."""


def unix_seconds_in_range(t: float) -> float:
    """``t`` (unix seconds) if in [0, ``MAX_UNIX_S``].

    Raises:
        ValueError: negative, or above ``MAX_UNIX_S``; the message names the unit the
            number looks like (milliseconds, microseconds, nanoseconds: JavaScript's
            ``Date.now()`` is milliseconds) and how to convert it.
    """
    if t < 0:
        raise ValueError(f"must be unix seconds >= 0, got {t!r}")
    if t > MAX_UNIX_S * 1e9:  # beyond nanoseconds of the year 5138: no unit makes it a time
        raise ValueError(f"must be unix seconds (<= {MAX_UNIX_S:.0e}); {t:.3g} is not a time in any unit")
    if t > MAX_UNIX_S:
        unit = time_unit_of([t])  # the unit a log's timestamps are read in (freshrec replay / import)
        raise ValueError(f"must be unix seconds (<= {MAX_UNIX_S:.0e}); {t!r} looks like {UNIT_NAMES[unit]}: send "
                         f"{t * TIME_UNITS[unit]:.3f}, or an ISO 8601 date-time")
    return t


NumberOrDate = Annotated[float | str, BeforeValidator(to_unix_seconds)]
"""A number, or an ISO-8601 date / date-time (converted to unix seconds; no zone = UTC)."""


class TagFilter(BaseModel):
    """Items with ``any`` (at least one) or ``all`` of ``tags``."""

    model_config = ConfigDict(extra="forbid")
    tags: list[TagName] = Field(min_length=1, max_length=64, examples=[["drama", "comedy"]])
    match: Literal["any", "all"] = Field("any", description="any: at least one of the tags; all: every one")


class FieldRange(BaseModel):
    """Items whose numeric or date field ``field`` is in ``[min, max]`` (inclusive; a
    missing bound is open, no bound at all: items that have the field). Items without the
    field never pass. Dates as ISO-8601 or unix seconds."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"field": "price", "min": 0, "max": 20}, {"field": "published_at", "min": "2024-01-01T00:00:00Z"}]})
    field: FieldName
    min: NumberOrDate | None = None
    max: NumberOrDate | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "FieldRange":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{self.field}: min must be <= max")
        return self


class Filters(BaseModel):
    """Which items the slate may hold (every filter must hold; promoted items included). A
    tag or field no item was ever PUT with is a 422 naming it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"include_tags": {"tags": ["drama", "comedy"], "match": "any"},
         "exclude_tags": {"tags": ["horror"]},
         "fields": [{"field": "published_at", "min": "2024-01-01"}, {"field": "price", "max": 20}]}]})
    include_tags: TagFilter | None = Field(None, description="only items with any / all of these tags")
    exclude_tags: TagFilter | None = Field(None, description="no item with any / all of these tags")
    fields: list[FieldRange] = Field(default_factory=list, max_length=16,
                                     description="ranges over numeric or date fields of the items (PUT /items fields)")


class Diversity(BaseModel):
    """At most ``max_per_tag`` items per tag in the slate (an item counts for each of its
    tags; ``tags``: cap only these)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"max_per_tag": 2}]})
    max_per_tag: int = Field(ge=1, le=100)
    tags: list[TagName] | None = Field(None, max_length=64, description="the capped tags (default: every tag)")


class Promotion(BaseModel):
    """``slots`` slots of the slate go to the best items of a set, named by ``items`` (ids;
    unknown ones are ignored) and / or ``tags`` (any of them); they are marked
    ``promoted`` in the answer."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "in-house", "tags": ["in-house"], "slots": 2}, {"items": ["film-42", "film-7"], "slots": 1}]})
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    items: list[Id] = Field(default_factory=list, max_length=1000)
    tags: list[TagName] = Field(default_factory=list, max_length=64)
    slots: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _names_a_set(self) -> "Promotion":
        if not self.items and not self.tags:
            raise ValueError("a promotion needs items or tags")
        return self


class Explore(BaseModel):
    """Exploration for one request (overrides the ``engine.explore*`` settings)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["none", "epsilon", "softmax"] | None = None
    epsilon: float | None = Field(None, ge=0, le=1)
    temperature: float | None = Field(None, ge=1e-6, le=1e6)
    new_item_bonus: float | None = Field(None, ge=0, le=1e6)


class RecommendRequest(BaseModel):
    """``POST /recommend``: a slate of ``k`` items for ``user_id``."""

    model_config = ConfigDict(extra="forbid")
    user_id: Id
    k: Annotated[int, BeforeValidator(_not_a_boolean)] = Field(10, ge=1, le=100)
    exclude: list[Id] = Field(default_factory=list, max_length=1000)
    context: Context = Field(default_factory=dict, description="what the app knows of the request (device, page, "
                             "daypart, ...): the ranker learns per-context popularity", examples=[{"device": "mobile"}])
    explore: Explore | None = Field(None, description="exploration for this request (default: the server's "
                                    "engine.explore settings)", examples=[{"kind": "epsilon", "epsilon": 0.1}])
    filters: Filters | None = Field(None, description="business rules: which items the slate may hold (by tags, "
                                    "by numeric or date fields); applied before ranking, the slate still has k items "
                                    "when k eligible items exist")
    diversity: Diversity | None = Field(None, description="business rules: at most max_per_tag items per tag")
    promotions: list[Promotion] = Field(default_factory=list, max_length=5, description="business rules: slots "
                                        "guaranteed to sets of items (their total at most k), marked promoted, "
                                        "propensity 1")
    explain: StrictBool = Field(False, description="add each item's explanation: the parts of its score and a "
                          "'because you liked' hint (costs ~0.3 ms per request, load/bench_explain.py)")

    @field_validator("promotions")
    @classmethod
    def _fit_in_k(cls, v: list, info: ValidationInfo) -> list:
        k = info.data.get("k")
        if k is not None and sum(p.slots for p in v) > k:
            raise ValueError(f"the promotions' slots ({sum(p.slots for p in v)}) exceed k ({k})")
        return v


class Explanation(BaseModel):
    """Why an item is in the slate (``explain: true``)."""

    ranker: Literal["learned", "blend"]
    parts: dict[str, float] = Field(description="learned: per feature, weight x standardised value (and tie_break); "
                                    "blend: trend, cooc, mf. They sum to the score",
                                    examples=[{"pop_1d": 0.41, "cooc_10": 0.22, "mf": 0.05, "tie_break": 3e-7}])
    because_you_liked: str | None = Field(None, description="the user's recent positive that co-occurs most with "
                                          "this item, when co-occurrence raised its score")


class ScoredItem(BaseModel):
    item_id: str
    score: float
    propensity: float = Field(1.0, description="probability the serving policy put this item in this slot, given "
                              "the slots above (1 when greedy)")
    explored: bool = Field(False, description="the slot holds an exploration pick, not the ranker's best remaining item")
    promoted: bool = Field(False, description="the slot belongs to a promotion (request promotions)")
    explanation: Explanation | None = Field(None, description="present with explain: true")


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
    timestamp: NumberOrDate | None = Field(
        None, description="event time: unix seconds (0 to 1e11), or an ISO 8601 date-time (no zone = UTC); "
        "default: when the server accepts it", examples=[1733097600, "2024-12-02T00:00:00Z"],
        json_schema_extra={"minimum": 0, "maximum": MAX_UNIX_S})
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

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso_in_range(cls, v):
        """An ISO date-time past ``MAX_UNIX_S`` is a date, not another unit: say so. Returns
        the unix seconds, so the date is parsed once (``NumberOrDate`` passes a number on)."""
        if isinstance(v, str):
            t = to_unix_seconds(v)
            if t > MAX_UNIX_S:
                raise ValueError(f"{v!r} is later than any event time this server takes (the year 5138)")
            return t
        return v

    @field_validator("timestamp")
    @classmethod
    def _unix_seconds(cls, v: float | None) -> float | None:
        return None if v is None else unix_seconds_in_range(v)


class FeedbackAccepted(BaseModel):
    event_id: str


class FeedbackBatch(BaseModel):
    """``POST /feedback/batch``: 1..1000 events, accepted all together or not at all."""

    model_config = ConfigDict(extra="forbid")
    events: list[FeedbackRequest] = Field(min_length=1, max_length=1000)


class FeedbackBatchAccepted(BaseModel):
    event_ids: list[str]


class ItemRequest(BaseModel):
    """``PUT /items/{item_id}``: catalogue metadata; ``hidden`` items are never recommended.
    ``tags`` and ``fields`` (numbers, or dates as ISO-8601 / unix seconds) are what request
    filters, diversity caps and promotions select on."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"title": "New film", "tags": ["drama", "in-house"], "fields": {"price": 4.99, "published_at": "2024-05-01"}}]})
    title: Annotated[str, StringConstraints(max_length=512)] | None = None
    tags: list[TagName] = Field(default_factory=list, max_length=64)
    fields: dict[FieldName, NumberOrDate] = Field(default_factory=dict, max_length=32,
                                                  description="numeric or date fields (dates become unix seconds)")
    hidden: bool = False


class SimilarItem(BaseModel):
    """An item similar to the one asked about."""

    item_id: str
    score: float = Field(description="cosine: of co-occurrence counts (0..1] or of the factor vectors [-1, 1]")
    source: Literal["cooccurrence", "factors"]


class SimilarResponse(BaseModel):
    """``GET /items/{item_id}/similar``: co-occurrence neighbours first, then factor cosine."""

    item_id: str
    model_version: int
    items: list[SimilarItem]


class TrendingItem(BaseModel):
    item_id: str
    score: float = Field(description="decayed positives now (event time)")


class TrendingResponse(BaseModel):
    """``GET /trending``: the most popular items now, best first."""

    model_version: int
    tag: str | None = None
    items: list[TrendingItem]


class UserCounts(BaseModel):
    """How much the model holds about a user."""

    positives: int = Field(description="positives learned (clicks, ratings at or above the threshold, ...)")
    interactions: int = Field(description="positives and negatives learned (an ignored impression becomes one)")
    seen_items: int = Field(description="distinct items the user interacted with (never in their slates)")
    pending_impressions: int = Field(description="impressions still waiting for a click within the reward window")
    tag_profile: int = Field(description="item tags counted in the user's tag profile")


class UserTrust(BaseModel):
    """The forgetting guard's view of the account."""

    vetted: bool = Field(description="a click on a slate served to this user vetted the account")
    trusted_clicks: int = Field(description="clicks that joined a served slate")
    established: bool = Field(description="enough trusted clicks to count in the guard's validation and alarm")


class UserProfile(BaseModel):
    """``GET /users/{user_id}``: what the serving model knows about one user (no latent
    vectors, no slate tokens)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_id": "alice", "model_version": 1234, "recent_positives": ["film-9", "film-2"],
        "counts": {"positives": 2, "interactions": 3, "seen_items": 3, "pending_impressions": 0, "tag_profile": 1},
        "last_active": 1700000000.0, "trust": {"vetted": False, "trusted_clicks": 0, "established": False},
        "factors": True, "challenger": False}]})
    user_id: str
    model_version: int = Field(description="events the serving model has learned")
    recent_positives: list[str] = Field(description="item ids of the user's latest positives, newest first (at most "
                                        "`recent`, and at most 20: what the model keeps)")
    counts: UserCounts
    last_active: float | None = Field(description="event time of the user's last event other than an impression "
                                      "(unix s)")
    trust: UserTrust
    factors: bool = Field(description="the factor model holds a latent vector for the user")
    challenger: bool = Field(description="the shadow challenger model (if one runs) knows the user too")


class UserPage(BaseModel):
    """``GET /users``: a page of the user ids the serving model holds."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"users": ["alice", "bob"], "next": "2", "total": 2}]})
    users: list[str]
    next: str | None = Field(description="cursor of the next page (the `after` parameter), null on the last page")
    total: int = Field(description="users the model holds")


class ErasureStream(BaseModel):
    purged: bool = Field(description="the user's entries before the forget entry are deleted from the stream (XDEL)")
    entries_deleted: int | None = Field(description="stream entries deleted (null while the purge runs)")


class ErasureSlates(BaseModel):
    deleted: int | None = Field(description="served slates of the user deleted from the impression join (null while "
                                "the purge runs)")


class ErasureSnapshots(BaseModel):
    written_before: list[int] = Field(description="retained snapshot versions written before the erasure: they still "
                                      "hold the user and are deleted once a snapshot after it is committed (next "
                                      "checkpoint, or POST /snapshots)")


class ErasureReport(BaseModel):
    """``DELETE /users/{user_id}``: the erasure is durable (a `forget` entry in the stream and
    a tombstone) whatever the status; 200 when this node has applied it and the stream and
    slate purges are done, 202 while either is still running."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "user_id": "alice", "event_id": "1700000000000-0", "complete": True, "learned": True,
        "removed": {"model": {"known": True, "interactions": 3, "positives": 2, "seen_items": 3,
                              "pending_impressions": 0, "tag_profile": 1, "rows": 1},
                    "guard": {"vetted": False, "slates": 0, "trusted_clicks": 0, "reservoir_pairs": 0,
                              "open_slate": False},
                    "challenger": None, "decisions": 0},
        "stream": {"purged": True, "entries_deleted": 3}, "slates": {"deleted": 1},
        "snapshots": {"written_before": [4, 5]}}]})
    user_id: str
    event_id: str = Field(description="stream id of the forget entry (GET /model/learned takes it)")
    complete: bool = Field(description="learned here and purged")
    learned: bool = Field(description="this node's model has applied the erasure")
    removed: dict | None = Field(description="what this node's model, guard, challenger and decision log removed "
                                 "(null until learned)")
    stream: ErasureStream
    slates: ErasureSlates
    snapshots: ErasureSnapshots
