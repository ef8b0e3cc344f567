"""Feedback events, what they mean (the deployment's event schema), and their encoding as
Redis Stream entries.

A deployment declares its event types (``engine.config.EventType``, setting
``engine.events``), each with a role; ``Semantics`` is the one place that turns an event
into what the model learns:

    positive    (click, purchase, like, ...) counts towards popularity and co-occurrence
                with the type's weight and teaches the factor model and the ranker;
    negative    (dislike, skip, ...) the factor model learns a 0; the item leaves the
                user's slates;
    exposure    (impression) becomes a negative when no positive on the same item by the
                same user arrives within ``reward_window_s`` (event time);
    rating      an explicit ``value`` on the type's scale: a positive at or above its
                ``positive_threshold``, a negative below, or the weight its ``values`` map
                gives (> 0 positive, < 0 negative, 0 only seen). Organic logs such as
                MovieTweetings replay as ratings.

The defaults are ``click`` (positive), ``impression`` (exposure) and ``rating`` (0-10,
positive from 8). ``item`` (internal) is a catalogue upsert with ``meta`` / ``hidden``; it
goes through the stream so the single learner applies catalogue changes in order, durably.
``forget`` (internal) erases a user (``engine.core.users.erase``); it travels the same stream
for the same reason: a replay from an older snapshot, and every replica, forget at the same
point of the stream.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from engine.config import EventType

CLICK, IMPRESSION, RATING = "click", "impression", "rating"
"""The default event types' names."""
ITEM_KIND = "item"  # catalogue upsert (PUT /items/{id}); travels the same stream, in order
SLATE_KIND = "slate"  # a served slate (its items, propensities, targets): impressions and a logged decision
FORGET_KIND = "forget"  # erase a user (DELETE /users/{id}): applied in stream order, so replays and replicas forget too
POSITIVE, NEGATIVE, EXPOSURE, NEUTRAL = "positive", "negative", "exposure", "neutral"
"""What an event means to the model (``Semantics.meaning``)."""

MAX_ID_CHARS = 128


class InvalidEvent(ValueError):
    """An event the engine will not accept; ``field`` names the offending field (the API
    answers 422 naming it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Semantics:
    """The deployment's event schema, compiled for the hot paths: ``meaning`` (learner),
    ``validate`` (intake), ``is_positive`` (guard, replays).

    Args:
        types: event type name -> ``EventType`` (``EngineConfig.events``).
    """

    def __init__(self, types: dict[str, EventType]) -> None:
        self.types = dict(types)
        self._rules = {name: (t.role, t.weight, t.positive_threshold,
                              None if t.values is None else {float(k): w for k, w in t.values.items()})
                       for name, t in self.types.items()}

    def meaning(self, kind: str, value: float | None) -> tuple[str, float]:
        """(role, weight) of an event: role ``positive`` / ``negative`` / ``exposure`` /
        ``neutral``, weight > 0 its strength.

        Raises:
            ValueError: an event type the schema does not know, or a rating without a
                value (the intake refuses both before they become durable).
        """
        rule = self._rules.get(kind)
        if rule is None:
            raise ValueError(f"unknown event type {kind!r}")
        role, weight, threshold, values = rule
        if role != "rating":
            return role, weight
        if value is None:
            raise ValueError(f"{kind} event without a value")
        if values is None:
            return (POSITIVE, weight) if value >= threshold else (NEGATIVE, weight)
        w = values.get(float(value), 0.0)
        return (POSITIVE, w) if w > 0 else (NEGATIVE, -w) if w < 0 else (NEUTRAL, 0.0)

    def is_positive(self, kind: str, value: float | None) -> bool:
        """The one "is this a positive" rule (False for unknown types)."""
        try:
            return self.meaning(kind, value)[0] == POSITIVE
        except ValueError:
            return False

    def validate(self, event: Event) -> Event:
        """Check a feedback event before it becomes durable; returns it unchanged.

        Raises:
            InvalidEvent: empty or over-long ids, an event type the schema does not know, a
                rating without a finite value or off its scale (or not one of its declared
                values), a non-finite or negative timestamp.
        """
        for name in ("user_id", "item_id"):
            value = getattr(event, name)
            if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
                raise InvalidEvent(name, f"a non-empty string of at most {MAX_ID_CHARS} characters")
        t = self.types.get(event.kind)
        if t is None:
            raise InvalidEvent("event", f"unknown event type {event.kind!r}; this deployment's types: "
                                        f"{', '.join(sorted(self.types))}")
        if event.value is not None and not math.isfinite(event.value):
            raise InvalidEvent("value", "must be a finite number")
        if t.role == "rating":
            if event.value is None:
                raise InvalidEvent("value", f"required when event is {event.kind!r} (a rating)")
            if not t.min <= event.value <= t.max:
                raise InvalidEvent("value", f"{event.value:g} is outside {event.kind!r}'s scale {t.min:g}..{t.max:g}")
            if t.values is not None and float(event.value) not in self._rules[event.kind][3]:
                raise InvalidEvent("value", f"{event.value:g} is not one of {event.kind!r}'s values "
                                            f"{', '.join(t.values)}")
        if event.timestamp is not None and not (math.isfinite(event.timestamp) and event.timestamp >= 0):
            raise InvalidEvent("timestamp", "must be a finite unix time in seconds")
        return event

    def describe(self) -> dict:
        """The schema as JSON-able data (``GET /model``, the copy stored beside the stream)."""
        return {name: t.model_dump(exclude_none=True) for name, t in sorted(self.types.items())}


def schema_difference(stored: dict, ours: dict) -> list[str]:
    """What differs between two ``Semantics.describe()`` schemas, one line per field:
    ``"rating.positive_threshold: stored 8.0, this process 4.0"`` (empty when equal)."""
    lines = []
    for name in sorted(set(stored) | set(ours)):
        a, b = stored.get(name), ours.get(name)
        if a is None or b is None:
            lines.append(f"{name}: {'absent' if a is None else 'declared'} in the stored schema, "
                         f"{'absent' if b is None else 'declared'} in this process")
            continue
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                lines.append(f"{name}.{key}: stored {a.get(key)!r}, this process {b.get(key)!r}")
    return lines


@dataclass(frozen=True, slots=True)
class Event:
    """One feedback event.

    Attributes:
        user_id, item_id: opaque ids (non-empty strings, <= 128 chars; validated by the API).
        kind: an event type of the schema, or ``ITEM_KIND`` / ``SLATE_KIND`` / ``FORGET_KIND``.
        value: rating value (required for ``rating``, ignored otherwise).
        timestamp: event time, unix seconds, when the client sent one.
        received_at: acceptance time, unix seconds, stamped when the event was made durable.
            Stored in the stream, so a replay after a crash sees the same processing time.
        recommendation_id: id of the slate this event answers, if any.
        event_id: Redis Stream entry id ("<ms>-<seq>") once the event is durable.
        meta, hidden: catalogue data of an ``item`` event.
        context: what the client knew of the request (device, page, hour, ...: string or
            number values), or None; the ranker learns per-context popularity from it.
        position, propensity: for an event that joins a served slate, the 0-based slot of
            its item and the probability the serving policy put it there (copied from the
            slate at intake, so the stream alone is an off-policy dataset).
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
    context: dict | None = None
    position: int | None = None
    propensity: float | None = None

    @property
    def time(self) -> float:
        """Event time (unix s) when the event carries one, processing time otherwise."""
        return self.timestamp if self.timestamp is not None else self.received_at


def stream_id_key(event_id: str | bytes) -> tuple[int, int]:
    """Sortable key of a Redis Stream id ``"<ms>-<seq>"`` (str or bytes).

    Raises:
        ValueError: not a stream id.
    """
    if isinstance(event_id, bytes):
        event_id = event_id.decode()
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


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
    if event.context:
        fields["c"] = json.dumps(event.context, separators=(",", ":"), sort_keys=True)
    if event.position is not None:
        fields["pos"] = str(event.position)
    if event.propensity is not None:
        fields["p"] = repr(float(event.propensity))
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
        context=json.loads(f["c"]) if "c" in f else None,
        position=int(f["pos"]) if "pos" in f else None,
        propensity=float(f["p"]) if "p" in f else None,
    )
