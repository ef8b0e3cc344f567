"""Trust from the impression join: was a click on an item we actually served to that user?"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from engine.core.events import CLICK, IMPRESSION, Event

TRUSTED, VETTED, UNVETTED = "trusted", "vetted", "unvetted"
_MEMORY = object()  # "look the slate up in ImpressionJoin.slates"


class ImpressionJoin:
    """Remembers served slates and tells which events join one.

    A ``click`` (or ``impression``) is trusted when its ``recommendation_id`` names a slate
    served to the same user, containing that item, at most ``window_s`` seconds (event
    time) before the event. Everything else (organic logs, unknown sources, sybil accounts
    clicking what they were never shown) is untrusted. Accounts with at least one trusted
    event are *vetted*. Memory is bounded: the oldest slates are forgotten past
    ``max_slates`` (the Learning Loop / Personalizer "reward join" idea, keyed by event id).

    Args:
        window_s: join window in seconds of event time.
        max_slates: slates remembered.
    """

    def __init__(self, window_s: float = 3600.0, max_slates: int = 200_000) -> None:
        self.window_s = window_s
        self.max_slates = max_slates
        self.slates: OrderedDict[str, tuple[str, tuple[str, ...], float]] = OrderedDict()
        self.vetted: set[str] = set()

    def record(self, recommendation_id: str, user_id: str, item_ids: list[str], t: float,
               context: dict | None = None, propensities: list[float] | None = None,
               targets: dict | None = None) -> None:
        """Remember a served slate (in this process; the API uses ``SlateStore``). In
        process, events carry their own context, and propensities and targets are logged by
        the guard's decision log, so none of them is kept here."""
        self.slates[recommendation_id] = (user_id, tuple(item_ids), t)
        if len(self.slates) > self.max_slates:
            self.slates.popitem(last=False)

    def joins(self, event: Event, now: float | None = None, served=_MEMORY) -> bool:
        """Does ``event`` join a slate we served? Pure: nothing is recorded. ``now`` is the
        time compared with the slate's serving time (default: the event's time). ``served``:
        the slate ``(user_id, item_ids, served_at[, context])`` named by the event's recommendation_id,
        or None, when it was looked up elsewhere (``engine.storage.slate_store``); default:
        this object's memory."""
        rid = event.recommendation_id
        if served is _MEMORY:
            served = self.slates.get(rid) if rid else None
        now = event.time if now is None else now
        return (served is not None and served[0] == event.user_id and event.item_id in served[1]
                and 0.0 <= now - served[2] <= self.window_s)

    def trusted(self, event: Event, now: float | None = None, served=_MEMORY) -> bool:
        """``joins``, and vet the account when it does: what the learner does when it applies
        a trusted event (in process). Intake uses the pure ``classify``."""
        ok = self.joins(event, now, served)
        if ok:
            self.vetted.add(event.user_id)
        return ok

    def classify(self, event: Event, now: float | None = None, served=_MEMORY) -> str:
        """"trusted" (joins a served slate), "vetted" (unjoined, from an account with trusted
        history) or "unvetted" (unjoined, from an account without). Pure: no account is
        vetted here, so an event that is classified and then not accepted changes nothing;
        accounts are vetted when the learner applies a trusted event (``vet``). ``served``:
        as in ``joins``."""
        if event.kind in (CLICK, IMPRESSION) and self.joins(event, now, served):
            return TRUSTED
        return VETTED if event.user_id in self.vetted else UNVETTED

    def vet(self, user_id: str) -> None:
        """Mark an account as having trusted history (the learner applied a trusted event)."""
        self.vetted.add(user_id)


SLATE_BUCKET_S = 60
"""Slate ids start with the minute they were served in (hex), so a store can file them by minute."""


def slate_id(t: float, token: str) -> str:
    """The one recommendation-id scheme: ``"<minute of t, hex>-<token>"``.

    ``t``: serving time (unix s). ``token``: unique within that minute; the server uses 32
    random hex digits (``new_token``), in-process simulations a seeded counter, so their
    runs repeat exactly.
    """
    return f"{int(t // SLATE_BUCKET_S):x}-{token}"


def new_token() -> str:
    """32 random hex digits (128 bits) for ``slate_id``."""
    return secrets.token_hex(16)


def slate_bucket(recommendation_id: str) -> str | None:
    """The minute (hex) a recommendation id was served in, or None when it is not one of ours."""
    head, sep, _ = recommendation_id.partition("-")
    if not sep or not head or len(head) > 12:
        return None
    try:
        int(head, 16)
    except ValueError:
        return None
    return head
