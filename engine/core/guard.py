"""The forgetting guard: keeps an online model from losing what it knows about established
users to a burst of suspicious clicks, without freezing it.

Mechanisms (each switchable through ``engine.config.GuardConfig``):

1. **Trust from the impression join** (``engine.core.trust.ImpressionJoin``): clicks on items we
   served to that user are trusted; other events still teach the model, with their
   influence on shared item parameters (trend, co-occurrence, item-side MF step) damped by
   ``untrusted_weight``. Untrusted events from accounts with no trusted history are
   *suspicious*.
2. **Validation-gated promotion with rollback**: every ``window_events`` events the live
   model is compared with the last good one on (a) quality: the share of a held-out
   reservoir of trusted (user, item) positives from established users whose item still
   ranks in that user's top 10 (paired: same pairs, both models), and (b) exposure
   concentration: the largest increase, over items, of the share of sampled established
   users that have the item in their top 10. It is also compared cumulatively with a
   reference snapshot taken every ``reference_every`` windows, so small per-window losses
   cannot ratchet. A window fails when it carries at least ``min_suspicious`` suspicious
   positives and quality dropped by more than ``quality_drop`` (or ``cumulative_drop``
   against the reference) or exposure jumped by more than ``exposure_jump``. On failure the
   live model is rolled back to the last good snapshot, the window's suspicious events are
   quarantined and the others re-applied in order; otherwise the live model is promoted.
   Without trusted evidence (an empty reservoir, e.g. replays of organic logs) the guard
   never rolls back.
3. **Alarm**: ``river.drift.ADWIN`` (Bifet & Gavaldà, SDM 2007) on established users'
   prequential slate hits (did the slate served to an established user get a trusted
   click before that user's next slate?); a detected drop is logged as an alarm.

Guard events (rollback, quarantine, alarm) are kept in ``guard_events``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from river import drift

from engine.config import EngineConfig, GuardConfig, PolicyConfig
from engine.core.arrays import splitmix64
from engine.core.model import stable_hash
from engine.core.champion import Arena
from engine.core.decisions import Decision
from engine.core.events import ITEM_KIND, SLATE_KIND, Event
from engine.core.recommender import Recommender
from engine.core.trust import TRUSTED, UNVETTED, VETTED, ImpressionJoin, slate_id


_MIN_EVIDENCE = 50  # reservoir pairs needed before validation can fail a window

SlateSink = Callable[..., None]
"""Where served slates go for the impression join: ``(recommendation_id, user_id, item_ids,
served_at, context)``; ``ImpressionJoin.record`` in process, ``SlateStore.record`` (Redis) in
a server."""


@dataclass(frozen=True)
class Slate:
    """A served slate: its id (join key for impressions/clicks), item ids best first, their
    scores, the serving policy's per-slot propensities (given the slots above; 1 when
    greedy) and which slots explored (same order)."""

    recommendation_id: str
    item_ids: list[str]
    scores: list[float] = field(default_factory=list)
    propensities: list[float] = field(default_factory=list)
    explored: list[bool] = field(default_factory=list)


@dataclass
class GuardedRecommender:
    """A ``Recommender`` behind the forgetting guard (in-process; single writer).

    ``recommend(user_id, k) -> Slate`` is the one serving function (the HTTP server, the
    simulators and so the replays all go through it); ``apply(event)`` learns one event.
    ``recommender`` is the live model.

    Args:
        config: the model's parameters.
        guard: the guard's.
        slate_sink: where served slates are recorded for the impression join (default: this
            object's in-process ``join``); the server passes the Redis slate store.
        slate_seed: seeds the token of in-process slate ids (``engine.core.trust.slate_id``),
            so a simulation repeats exactly; the server passes random tokens instead.
    """

    config: EngineConfig = field(default_factory=EngineConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    slate_sink: SlateSink | None = None
    slate_seed: int = 0
    policies: PolicyConfig = field(default_factory=PolicyConfig)

    def __post_init__(self) -> None:
        self.recommender = Recommender(self.config)
        self.join = ImpressionJoin(self.guard.join_window_s)
        self.arena = Arena(self.config, self.policies)
        # in process the served slates are logged as decisions here; a server logs them in
        # the stream (``slate`` events) and learns them back in order
        self._log_decisions = self.slate_sink is None
        if self.slate_sink is None:
            self.slate_sink = self.join.record
        self.guard_events: list[dict] = []
        self.validation_windows = 0
        self.quarantined = 0
        self.events_seen = 0
        self._served = 0
        self._rng = np.random.default_rng(self.guard.seed)
        self._trusted_clicks: dict[str, int] = {}
        self._reservoir: list[tuple[str, str]] = []
        self._reservoir_seen = 0
        self._window: list[tuple[Event, float, bool]] = []
        self._suspicious = 0
        self._good: tuple | None = None
        self._reference_model: Recommender | None = None
        self._reference_state: tuple[dict, dict] | None = None  # built into a model only when needed
        self._windows_since_reference = 0
        # co-occurrence tables of the last-good and reference states (Recommender.rollback_point):
        # two, reused and synced incrementally, so the guard's memory does not grow as the model learns
        self._buffers: list = [None, None]
        self._good_slot: int | None = None
        self._reference_slot: int | None = None
        self._open_slate: dict[str, list] = {}
        self._adwin = drift.ADWIN()

    # ---------------------------------------------------------------- serving
    def recommend(self, user_id: str, k: int = 10, exclude: list[str] | tuple = (), now: float | None = None,
                  token: str | None = None, context: dict | None = None, policy=None) -> Slate:
        """Serve a slate: make its recommendation id (``engine.core.trust.slate_id``), draw
        it under the exploration policy seeded by that id (``Recommender.serve``: greedy
        unless configured), record it for the impression join (``slate_sink``) and feed the
        guard's prequential alarm. Creates no model state.

        Args:
            user_id, k, exclude, context: as ``Recommender.recommend``.
            now: serving time (unix s; default: the model's event clock).
            token: the id's unique part (default: a seeded counter, reproducible).
            policy: an ``ExplorationPolicy`` for this request (default: the configured one).
        """
        self._served += 1
        now = self.recommender.clock if now is None else now
        rid = slate_id(now, token or f"{splitmix64(self.slate_seed, self._served, 0):016x}")
        served = self.recommender.serve(user_id, k, exclude, context, policy, stable_hash(rid))
        targets = self.arena.targets(user_id, served.item_ids, exclude, context)
        self.slate_sink(rid, user_id, served.item_ids, now, context, served.propensities, targets)
        if self.guard.enabled:
            self._prequential(user_id, rid)
        if self._log_decisions:
            self.arena.decisions.served(Decision(rid, user_id, now, served.item_ids, served.propensities, targets,
                                                 context))
        return Slate(rid, served.item_ids, served.scores, served.propensities, served.explored)

    def promote(self, by: str = "admin") -> dict:
        """Make the challenger the serving model (the old champion becomes the challenger);
        the guard restarts from it. Raises ValueError without a challenger."""
        return self._swap(by, "promotion")

    def rollback_promotion(self, by: str = "admin") -> dict:
        """Undo the last promotion: the previous champion serves again."""
        return self._swap(by, "rollback")

    def _swap(self, by: str, kind: str) -> dict:
        if self.arena.challenger is None:
            raise ValueError("no challenger configured (setting policies.challenger)")
        self.reset(self.arena.swap(self.recommender, by, kind))
        return self.arena.history[-1]

    # --------------------------------------------------------------- learning
    def apply(self, event: Event) -> None:
        """Learn one event through the guard. Its trust is the one decided at intake
        (``Event.trust``); an event without one (in-process callers) is classified here by
        the same rule (``ImpressionJoin.classify``) against the in-process slates. A trusted
        event vets its account."""
        self.events_seen += 1
        g = self.guard
        if not g.enabled or event.kind in (ITEM_KIND, SLATE_KIND):  # catalogue and served slates are not feedback
            self.recommender.apply(event)
            self._observe(event, 1.0)
            return
        trust = event.trust or self.join.classify(event)
        if trust == TRUSTED:
            self.join.vet(event.user_id)
        trusted = trust == TRUSTED
        weight = 1.0 if trusted else (g.vetted_untrusted_weight if trust == VETTED else g.untrusted_weight)
        positive = self.recommender.semantics.is_positive(event.kind, event.value)
        suspicious = trust == UNVETTED and positive
        self.recommender.apply(event, weight)
        if self.recommender.evicted_since:
            self._forget(self.recommender.drain_evicted())
        self._observe(event, weight)
        self._window.append((event, weight, suspicious))
        self._suspicious += suspicious
        if trusted and positive:
            self._on_trusted_click(event)
        n = len(self._window)
        if g.validate_windows and (n >= g.window_events or self._suspicious >= g.early_suspicious
                                   or (self._suspicious >= g.min_suspicious and n >= g.window_events // 4)):
            self.validate()

    def _observe(self, event: Event, weight: float) -> None:
        """The challenger learns the event too; the decision log joins it; an automatic
        promotion happens here."""
        rec = self.recommender
        if self.arena.observe(event, weight, rec.semantics, rec.clock) == "promote":
            self.promote("auto")

    def _forget(self, users: list[str]) -> None:
        """Drop the guard's own state of users the model forgot (bounded state)."""
        for user in users:
            self.join.vetted.discard(user)
            self._trusted_clicks.pop(user, None)
            self._open_slate.pop(user, None)

    def _on_trusted_click(self, event: Event) -> None:
        user = event.user_id
        n = self._trusted_clicks.get(user, 0) + 1
        self._trusted_clicks[user] = n
        slate = self._open_slate.get(user)
        if slate is not None and slate[0] == event.recommendation_id:
            slate[1] = True
        if n > self.guard.established_clicks:  # reservoir sampling (Vitter's algorithm R)
            self._reservoir_seen += 1
            if len(self._reservoir) < self.guard.reservoir_size:
                self._reservoir.append((user, event.item_id))
            else:
                j = int(self._rng.integers(self._reservoir_seen))
                if j < self.guard.reservoir_size:
                    self._reservoir[j] = (user, event.item_id)

    def _prequential(self, user: str, rid: str) -> None:
        if self._trusted_clicks.get(user, 0) < self.guard.established_clicks:
            return
        previous = self._open_slate.get(user)
        if previous is not None:
            self._adwin.update(1.0 if previous[1] else 0.0)
            if self._adwin.drift_detected:
                self.guard_events.append({"kind": "alarm", "at_event": self.events_seen,
                                          "detector": "ADWIN", "hit_rate": round(self._adwin.estimation, 4)})
        self._open_slate[user] = [rid, False]

    # ------------------------------------------------------------- validation
    def validate(self) -> dict:
        """Close the current window: promote the live model or roll it back."""
        g = self.guard
        self.validation_windows += 1
        window, self._window = self._window, []
        suspicious, self._suspicious = self._suspicious, 0
        verdict = {"window": self.validation_windows, "at_event": self.events_seen, "suspicious": suspicious}
        failed = False
        jumped: set[str] = set()
        if suspicious >= g.min_suspicious and self._good is not None and len(self._reservoir) >= _MIN_EVIDENCE:
            good = Recommender.from_state(*self._good)
            pairs = self._sample_pairs()
            users = self._sample_users()
            q_live, q_good = _quality(self.recommender, pairs), _quality(good, pairs)
            reach_live, reach_good = _reach(self.recommender, users), _reach(good, users)
            reach_good = np.pad(reach_good, (0, len(reach_live) - len(reach_good)))
            rise = reach_live - reach_good
            jump = float(np.max(rise, initial=0.0))
            jumped = {self.recommender.catalogue.ids[i] for i in np.flatnonzero(rise > g.exposure_jump).tolist()}
            ref = self._reference() or good
            q_ref = _quality(ref, pairs) if ref is not good else q_good
            verdict.update(quality_live=round(q_live, 4), quality_good=round(q_good, 4),
                           quality_reference=round(q_ref, 4), exposure_jump=round(jump, 4))
            failed = (q_live < q_good * (1 - g.quality_drop) or q_live < q_ref * (1 - g.cumulative_drop)
                      or jump > g.exposure_jump)
        if failed:
            self._rollback(window, verdict, jumped)
        self._promote()
        return verdict

    def reset(self, recommender: Recommender) -> None:
        """Serve and learn with ``recommender`` from now on (after a restore): it becomes the
        last good and reference model and the open window is dropped."""
        self.recommender = recommender
        self._window, self._suspicious = [], 0
        self._reference_model = self._reference_state = self._reference_slot = None
        self._good = self._rollback_point() if len(self._reservoir) >= _MIN_EVIDENCE else None
        self._windows_since_reference = 0

    def stats(self) -> dict:
        """Counters and the last 20 guard events (for ``GET /model``)."""
        return {"enabled": self.guard.enabled, "validation_windows": self.validation_windows,
                "rollbacks": sum(1 for e in self.guard_events if e["kind"] == "rollback"),
                "alarms": sum(1 for e in self.guard_events if e["kind"] == "alarm"),
                "quarantined_events": self.quarantined, "reservoir": len(self._reservoir),
                "vetted_accounts": len(self.join.vetted), "events": self.guard_events[-20:]}

    def _rollback(self, window: list[tuple[Event, float, bool]], verdict: dict, jumped: set[str]) -> None:
        """Back to the last good model; re-apply the window's events except the suspicious
        ones and the positives on the items whose exposure jumped (``jumped``: they reached
        established users only through the burst, so the clicks they drew there are its
        echo, not evidence)."""
        last_event_id = self.recommender.last_event_id
        self.recommender = Recommender.from_state(*self._good)
        semantics = self.recommender.semantics
        kept = 0
        for event, weight, suspicious in window:
            if suspicious or (event.item_id in jumped and semantics.is_positive(event.kind, event.value)):
                continue
            self.recommender.apply(event, weight)
            kept += 1
        self.recommender.last_event_id = last_event_id  # quarantined events count as handled
        dropped = len(window) - kept
        self.quarantined += dropped
        self.guard_events.append({"kind": "rollback", **verdict, "reapplied": kept})
        self.guard_events.append({"kind": "quarantine", "at_event": self.events_seen, "events": dropped})

    def _promote(self) -> None:
        if len(self._reservoir) < _MIN_EVIDENCE:
            # without trusted evidence no window can fail, so no rollback target is needed:
            # skip the state copy (it costs ~50 ms per window on a 100k x 100k model)
            self._good = None
            return
        self._good = self._rollback_point()
        self._windows_since_reference += 1
        if self._windows_since_reference >= self.guard.reference_every:
            # kept as arrays: rebuilding a model costs ~0.1 s (seconds at 100k x 100k) in the
            # learning loop, and only a suspicious window ever needs it
            self._reference_state, self._reference_model = self._good, None
            self._reference_slot = self._good_slot
            self._windows_since_reference = 0

    def _rollback_point(self) -> tuple[dict, dict]:
        """The live model's state, its co-occurrence table synced into the buffer the
        reference state does not hold."""
        slot = 1 if self._reference_slot == 0 else 0
        state, self._buffers[slot] = self.recommender.rollback_point(self._buffers[slot])
        self._good_slot = slot
        return state

    def _reference(self) -> Recommender | None:
        """The cumulative reference model (rebuilt lazily from its saved state)."""
        if self._reference_model is None and self._reference_state is not None:
            self._reference_model = Recommender.from_state(*self._reference_state)
        return self._reference_model

    def _sample_pairs(self) -> list[tuple[str, str]]:
        n = min(self.guard.quality_pairs, len(self._reservoir))
        idx = self._rng.choice(len(self._reservoir), n, replace=False)
        return [self._reservoir[i] for i in idx.tolist()]

    def _sample_users(self) -> list[str]:
        users = sorted(u for u, n in self._trusted_clicks.items() if n >= self.guard.established_clicks)
        n = min(self.guard.exposure_users, len(users))
        return [users[i] for i in self._rng.choice(len(users), n, replace=False).tolist()] if n else []


def _quality(rec: Recommender, pairs: list[tuple[str, str]], k: int = 10) -> float:
    """Share of (user, item) pairs whose item ranks in the user's top k (no exclusions)."""
    if not pairs:
        return 0.0
    hits = 0
    for user, item in pairs:
        idx = rec.catalogue.get(item)
        if idx is None:
            continue
        hits += rec.in_top(user, idx, k)
    return hits / len(pairs)


def _reach(rec: Recommender, users: list[str], k: int = 10) -> np.ndarray:
    """Per item (catalogue rows), the share of ``users`` with it in their served top k."""
    n = len(rec.catalogue)
    counts = np.zeros(n)
    for user in users:
        seen = rec.seen.get(user)
        exclude = np.fromiter(seen, dtype=np.int64, count=len(seen)) if seen else np.zeros(0, dtype=np.int64)
        idx, _ = rec.top(user, k, exclude)
        counts[idx] += 1
    return counts / max(1, len(users))
