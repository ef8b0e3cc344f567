"""Trust from the impression join: was a click on an item we actually served to that user?"""

from __future__ import annotations

from collections import OrderedDict

from engine.events import Event

TRUSTED, VETTED, UNVETTED = "trusted", "vetted", "unvetted"


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
        self.slates: OrderedDict[str, tuple[str, frozenset, float]] = OrderedDict()
        self.vetted: set[str] = set()

    def record(self, recommendation_id: str, user_id: str, item_ids: list[str], t: float) -> None:
        """Remember a served slate."""
        self.slates[recommendation_id] = (user_id, frozenset(item_ids), t)
        if len(self.slates) > self.max_slates:
            self.slates.popitem(last=False)

    def trusted(self, event: Event, now: float | None = None) -> bool:
        """Does ``event`` join a slate we served (and so vet its account)? ``now`` is the
        time compared with the slate's serving time (default: the event's time)."""
        rid = event.recommendation_id
        served = self.slates.get(rid) if rid else None
        now = event.time if now is None else now
        ok = (served is not None and served[0] == event.user_id and event.item_id in served[1]
              and 0.0 <= now - served[2] <= self.window_s)
        if ok:
            self.vetted.add(event.user_id)
        return ok

    def classify(self, event: Event, now: float | None = None) -> str:
        """"trusted" (joins a served slate), "vetted" (unjoined, from an account with trusted
        history) or "unvetted" (unjoined, from an account without)."""
        if event.kind in ("click", "impression") and self.trusted(event, now):
            return TRUSTED
        return VETTED if event.user_id in self.vetted else UNVETTED

    def vet(self, user_id: str) -> None:
        """Mark an account as having trusted history (from a stored trusted event)."""
        self.vetted.add(user_id)
