"""Feedback events and their encoding as Redis Stream entries.

Event kinds (the field's standard vocabulary):
    click       the user clicked an item: a positive.
    impression  the item was shown in a slate; it becomes a negative when no click on the
                same item by the same user arrives within ``reward_window_s`` (event time).
    rating      an explicit rating ``value``; positive when value >= ``positive_threshold``,
                negative otherwise. Organic logs such as MovieTweetings replay as ratings.
    item        (internal) a catalogue upsert with ``meta`` / ``hidden``; it goes through the
                stream so the single learner applies catalogue changes in order, durably.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

CLICK, IMPRESSION, RATING = "click", "impression", "rating"
FEEDBACK_KINDS = (CLICK, IMPRESSION, RATING)
"""The event kinds a client sends (``POST /feedback``); the API validates against these."""
ITEM_KIND = "item"  # catalogue upsert (PUT /items/{id}); travels the same stream, in order


MAX_ID_CHARS = 128


class InvalidEvent(ValueError):
    """An event the engine will not accept; ``field`` names the offending field (the API
    answers 422 naming it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def validate(event: Event) -> Event:
    """Check a feedback event before it becomes durable; returns it unchanged.

    Raises:
        InvalidEvent: empty or over-long ids, an unknown kind, a rating without a finite
            value, a non-finite or negative timestamp.
    """
    for name in ("user_id", "item_id"):
        value = getattr(event, name)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
            raise InvalidEvent(name, f"a non-empty string of at most {MAX_ID_CHARS} characters")
    if event.kind not in FEEDBACK_KINDS:
        raise InvalidEvent("event", f"unknown event type {event.kind!r}; known: {', '.join(FEEDBACK_KINDS)}")
    if event.value is not None and not math.isfinite(event.value):
        raise InvalidEvent("value", "must be a finite number")
    if event.kind == RATING and event.value is None:
        raise InvalidEvent("value", "required when event is 'rating'")
    if event.timestamp is not None and not (math.isfinite(event.timestamp) and event.timestamp >= 0):
        raise InvalidEvent("timestamp", "must be a finite unix time in seconds")
    return event


def is_positive(kind: str, value: float | None, positive_threshold: float) -> bool:
    """The one "is this a positive" rule: a click, or a rating of at least the threshold."""
    return kind == CLICK or (kind == RATING and value is not None and value >= positive_threshold)


@dataclass(frozen=True, slots=True)
class Event:
    """One feedback event.

    Attributes:
        user_id, item_id: opaque ids (non-empty strings, <= 128 chars; validated by the API).
        kind: one of ``FEEDBACK_KINDS``, or ``ITEM_KIND``.
        value: rating value (required for ``rating``, ignored otherwise).
        timestamp: event time, unix seconds, when the client sent one.
        received_at: acceptance time, unix seconds, stamped when the event was made durable.
            Stored in the stream, so a replay after a crash sees the same processing time.
        recommendation_id: id of the slate this event answers, if any.
        event_id: Redis Stream entry id ("<ms>-<seq>") once the event is durable.
        meta, hidden: catalogue data of an ``item`` event.
        trust: "trusted" | "vetted" | "unvetted", decided when the event was accepted
            (``engine.core.trust.ImpressionJoin.classify``) and stored with it, so a replay after
            a crash weighs the event exactly as the first time; None = not decided.
    """

    user_id: str
    item_id: str
    kind: str
    value: float | None = None
    timestamp: float | None = None
    received_at: float = 0.0
    recommendation_id: str | None = None
    event_id: str | None = None
    meta: dict | None = None
    hidden: bool | None = None
    trust: str | None = None

    @property
    def time(self) -> float:
        """Event time (unix s) when the event carries one, processing time otherwise."""
        return self.timestamp if self.timestamp is not None else self.received_at


def to_fields(event: Event) -> dict[str, str]:
    """Encode an event as flat Redis Stream fields (strings only, absent fields omitted)."""
    fields = {"u": event.user_id, "i": event.item_id, "k": event.kind, "r": repr(event.received_at)}
    if event.value is not None:
        fields["v"] = repr(float(event.value))
    if event.timestamp is not None:
        fields["t"] = repr(float(event.timestamp))
    if event.recommendation_id:
        fields["rec"] = event.recommendation_id
    if event.meta is not None:
        fields["m"] = json.dumps(event.meta, separators=(",", ":"))
    if event.hidden is not None:
        fields["h"] = "1" if event.hidden else "0"
    if event.trust is not None:
        fields["tr"] = event.trust
    return fields


def from_fields(event_id: str, fields: dict) -> Event:
    """Decode stream fields written by ``to_fields`` (keys/values may be bytes or str).

    Raises:
        KeyError: a required field (u, i, k, r) is missing.
        ValueError: a numeric field does not parse.
    """
    f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in fields.items()}
    return Event(
        user_id=f["u"],
        item_id=f["i"],
        kind=f["k"],
        value=float(f["v"]) if "v" in f else None,
        timestamp=float(f["t"]) if "t" in f else None,
        received_at=float(f["r"]),
        recommendation_id=f.get("rec"),
        event_id=event_id.decode() if isinstance(event_id, bytes) else event_id,
        meta=json.loads(f["m"]) if "m" in f else None,
        hidden=(f["h"] == "1") if "h" in f else None,
        trust=f.get("tr"),
    )
