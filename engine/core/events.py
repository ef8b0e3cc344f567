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

    def validate(self, event: Event, max_clock_skew_s: float | None = None) -> Event:
        """Check a feedback event before it becomes durable; returns it unchanged.

        Args:
            event: the event, stamped with its acceptance time (``received_at``, unix s).
            max_clock_skew_s: with it, an event time more than this many seconds after the
                acceptance time is refused (``EngineConfig.max_clock_skew_s``); None: no bound.

        Raises:
            InvalidEvent: empty or over-long ids, an event type the schema does not know, a
                rating without a finite value or off its scale (or not one of its declared
                values), a non-finite or negative timestamp, or (with ``max_clock_skew_s``) a
                timestamp too far in the future of the acceptance time.
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
        if (max_clock_skew_s is not None and event.timestamp is not None
                and event.timestamp > event.received_at + max_clock_skew_s):
            raise InvalidEvent("timestamp", f"{event.timestamp - event.received_at:.0f} s in the future of its "
                                            f"acceptance time (at most {max_clock_skew_s:g} s allowed)")
        return event

    def check_entry(self, event: Event, max_clock_skew_s: float, stream_time_s: float | None = None) -> Event:
        """The learner's check of an entry read back from the stream, before it is applied:
        what the intake (``validate``) would have refused, and, given ``stream_time_s`` (unix
        s of the entry's stream id ``"<ms>-<seq>"``: Redis's clock when it took the entry),
        an acceptance time after it by more than ``max_clock_skew_s``. So no entry moves the
        model's clock past its acceptance time + skew and no NaN or infinity reaches the
        model. Catalogue (``item``) events are checked for their item id and times only.
        Returns the event unchanged.

        Raises:
            InvalidEvent: the entry would have been refused at intake (the field is named).
        """
        if not (math.isfinite(event.received_at) and event.received_at >= 0):
            raise InvalidEvent("received_at", "must be a finite unix time in seconds")
        if stream_time_s is not None and event.received_at > stream_time_s + max_clock_skew_s:
            raise InvalidEvent("received_at", f"{event.received_at - stream_time_s:.0f} s after the time of its "
                                              f"stream id (at most {max_clock_skew_s:g} s allowed)")
        if event.kind == SLATE_KIND:
            return _check_slate(event)
        if event.kind != ITEM_KIND:
            return self.validate(event, max_clock_skew_s)
        if not isinstance(event.item_id, str) or not 0 < len(event.item_id) <= MAX_ID_CHARS:
            raise InvalidEvent("item_id", f"a non-empty string of at most {MAX_ID_CHARS} characters")
        if event.timestamp is not None:
            raise InvalidEvent("timestamp", "a catalogue event carries no event time")
        return event

    def describe(self) -> dict:
        """The schema as JSON-able data (``GET /model``, the copy stored beside the stream)."""
        return {name: t.model_dump(exclude_none=True) for name, t in sorted(self.types.items())}


def _check_slate(event: Event) -> Event:
    """A served slate's entry (written by the server, not a client): a user, a
    recommendation id, and per-slot items and propensities in (0, 1] of one length."""
    if not isinstance(event.user_id, str) or not 0 < len(event.user_id) <= MAX_ID_CHARS:
        raise InvalidEvent("user_id", f"a non-empty string of at most {MAX_ID_CHARS} characters")
    if not event.recommendation_id:
        raise InvalidEvent("recommendation_id", "a served slate carries its recommendation id")
    meta = event.meta or {}
    items, p = meta.get("items"), meta.get("p")
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise InvalidEvent("meta.items", "a list of item ids")
    if not isinstance(p, list) or len(p) != len(items) or not all(
            isinstance(x, (int, float)) and 0 < x <= 1 for x in p):
        raise InvalidEvent("meta.p", "one propensity in (0, 1] per item")
    return event


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
        kind: one of ``FEEDBACK_KINDS``, or ``ITEM_KIND``.
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


def _finite(text: str, name: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{name}: {text!r} is not a finite number")
    return value


def _json_object(text: str, name: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"{name}: a JSON object expected, got {type(value).__name__}")
    return value


def _slot(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"pos (slot): {text!r} is negative")
    return value


def _context(text: str) -> dict:
    context = _json_object(text, "c (context)")
    for key, value in context.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"c (context): {key} is not a finite number")
        if not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"c (context): {key} is a {type(value).__name__}, not a string, number or boolean")
    return context


def from_fields(event_id: str, fields: dict) -> Event:
    """Decode stream fields written by ``to_fields`` (keys/values may be bytes or str).

    Strict, so that an entry written by something else than ``to_fields`` fails here rather
    than inside the model: numbers must be finite, ``m`` (meta) and ``c`` (context) JSON
    objects (context values strings, finite numbers or booleans), ``h`` "0" or "1".

    Raises:
        KeyError: a required field (u, i, k, r) is missing.
        ValueError: a field is not UTF-8 (``UnicodeDecodeError``), a number does not parse
            or is NaN / infinite, meta or context is not a JSON object
            (``json.JSONDecodeError``), or ``h`` is not 0/1.
    """
    f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in fields.items()}
    if "h" in f and f["h"] not in ("0", "1"):
        raise ValueError(f"h (hidden): {f['h']!r} is not 0 or 1")
    return Event(
        user_id=f["u"],
        item_id=f["i"],
        kind=f["k"],
        value=_finite(f["v"], "v (value)") if "v" in f else None,
        timestamp=_finite(f["t"], "t (timestamp)") if "t" in f else None,
        received_at=_finite(f["r"], "r (acceptance time)"),
        recommendation_id=f.get("rec"),
        event_id=event_id.decode() if isinstance(event_id, bytes) else event_id,
        meta=_json_object(f["m"], "m (meta)") if "m" in f else None,
        hidden=(f["h"] == "1") if "h" in f else None,
        trust=f.get("tr"),
        context=_context(f["c"]) if "c" in f else None,
        position=_slot(f["pos"]) if "pos" in f else None,
        propensity=_finite(f["p"], "p (propensity)") if "p" in f else None,
    )
