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

A validation is written as cooperative steps (``validation_steps``, ``engine.core.steps``):
in process ``apply`` runs it to completion; the server's ``LiveModel`` drives it under the
learner's write lock in time slices, so requests are served while it runs and nothing is
learned until its verdict (the single writer: a validation may replace the model).
Everything that decides how an account's events weigh and what a validation judges goes
into every snapshot (``state`` / ``load_state``, ``engine.core.guard_state``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from river import drift

from engine.config import EngineConfig, GuardConfig, PolicyConfig
from engine.core import guard_state
from engine.core.arrays import splitmix64
from engine.core.model import stable_hash
from engine.core.champion import Arena
from engine.core.decisions import Decision
from engine.core.events import FORGET_KIND, ITEM_KIND, SLATE_KIND, Event
from engine.core.explain import explain as explain_slate
from engine.core.recommender import Recommender
from engine.core.steps import Steps, run
from engine.core.trust import TRUSTED, UNVETTED, VETTED, ImpressionJoin, slate_id


_MIN_EVIDENCE = 50  # reservoir pairs needed before validation can fail a window
_ERASURE_REPORTS = 1000  # erasure reports kept for the API to pick up (by stream id)

SlateSink = Callable[..., None]
"""Where served slates go for the impression join: ``(recommendation_id, user_id, item_ids,
served_at, context)``; ``ImpressionJoin.record`` in process, ``SlateStore.record`` (Redis) in
a server."""


@dataclass(frozen=True)
class Slate:
    """A served slate: its id (join key for impressions/clicks), item ids best first, their
    scores, the serving policy's per-slot propensities (given the slots above; 1 when
    greedy or promoted), which slots explored and which hold promoted items (same order),
    and, when asked for, each item's explanation (``engine.core.explain``)."""

    recommendation_id: str
    item_ids: list[str]
    scores: list[float] = field(default_factory=list)
    propensities: list[float] = field(default_factory=list)
    explored: list[bool] = field(default_factory=list)
    promoted: list[bool] = field(default_factory=list)
    explanations: list[dict] | None = None


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
        self._earlier_events: dict[str, int] = {}  # guard events by kind not in guard_events (restored)
        self.validation_windows = 0
        self.quarantined = 0
        self.events_seen = 0
        self._served = 0
        self._rng = np.random.default_rng(self.guard.seed)
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
        self.erasures: OrderedDict[str, dict] = OrderedDict()  # stream id of a forget event -> what it removed

    # ---------------------------------------------------------------- serving
    def recommend(self, user_id: str, k: int = 10, exclude: list[str] | tuple = (), now: float | None = None,
                  token: str | None = None, context: dict | None = None, policy=None, rules=None,
                  explain: bool = False) -> Slate:
        """Serve a slate: make its recommendation id (``engine.core.trust.slate_id``), draw
        it under the exploration policy seeded by that id (``Recommender.serve``: greedy
        unless configured; with a challenger, ``policies.share`` of every slot is drawn from
        the challenger's policy, ``engine.core.mixture``, so its off-policy estimate has
        support and bounded weights) and the request's business rules, record it for the impression
        join (``slate_sink``) and feed the guard's prequential alarm. Creates no model state.

        Args:
            user_id, k, exclude, context: as ``Recommender.recommend``.
            now: serving time (unix s; default: the model's event clock).
            token: the id's unique part (default: a seeded counter, reproducible).
            policy: an ``ExplorationPolicy`` for this request (default: the configured one).
            rules: ``engine.core.rules.Rules`` (filters, diversity cap, promotions), or None;
                the challenger's target probabilities are computed under the same rules.
            explain: add each item's explanation (``engine.core.explain``).

        Raises:
            engine.core.filters.UnknownName: ``rules`` name a tag or field no item has
                (before anything is recorded).
        """
        self._served += 1
        now = self.recommender.clock if now is None else now
        rid = slate_id(now, token or f"{splitmix64(self.slate_seed, self._served, 0):016x}")
        ruled = rules is not None and rules.active
        shadow = None if ruled else self.arena.shadow_pool(user_id, exclude, context)
        served = self.recommender.serve(user_id, k, exclude, context, policy, stable_hash(rid), rules,
                                        shadow=None if shadow is None else shadow[0])
        promoted = served.promoted if any(served.promoted) else None
        targets = self.arena.targets(user_id, served.item_ids, exclude, context, rules, promoted, shadow)
        self.slate_sink(rid, user_id, served.item_ids, now, context, served.propensities, targets)
        if self.guard.enabled:
            self._prequential(user_id, rid)
        if self._log_decisions:
            self.arena.decisions.served(Decision(rid, user_id, now, served.item_ids, served.propensities, targets,
                                                 context))
        explanations = explain_slate(self.recommender, user_id, served.item_ids, context) if explain else None
        return Slate(rid, served.item_ids, served.scores, served.propensities, served.explored, served.promoted,
                     explanations)

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
    @property
    def accounts(self):
        """The vetted accounts and their trusted clicks (``engine.core.accounts.Accounts``;
        the impression join's ``vetted``)."""
        return self.join.vetted

    def apply(self, event: Event, defer: bool = False) -> Steps[dict] | None:
        """Learn one event through the guard. Its trust is the one decided at intake
        (``Event.trust``); an event without one (in-process callers) is classified here by
        the same rule (``ImpressionJoin.classify``) against the in-process slates. A trusted
        event vets its account.

        When the event closes a validation window, the validation runs before this returns;
        with ``defer`` it is returned instead, as steps (``validation_steps``) the caller
        must drive to completion (``engine.core.steps``) before it applies the next event.
        Returns None when no validation is due (or it already ran)."""
        self.events_seen += 1
        g = self.guard
        if event.kind == FORGET_KIND:
            self._erase(event)
            return
        if not g.enabled or event.kind in (ITEM_KIND, SLATE_KIND):  # catalogue and served slates are not feedback
            self.recommender.apply(event)
            self._observe(event, 1.0)
            return None
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
        if trusted and positive:
            self._on_trusted_click(event)
        if not g.validate_windows:  # no window is kept when none will be judged (read-only replicas)
            return None
        self._window.append((event, weight, suspicious))
        self._suspicious += suspicious
        n = len(self._window)
        if (n >= g.window_events or self._suspicious >= g.early_suspicious
                or (self._suspicious >= g.min_suspicious and n >= g.window_events // 4)):
            steps = self.validation_steps()
            if defer:
                return steps
            run(steps)
        return None

    def _observe(self, event: Event, weight: float) -> None:
        """The challenger learns the event too; the decision log joins it; an automatic
        promotion happens here."""
        rec = self.recommender
        if self.arena.observe(event, weight, rec.semantics, rec.clock) == "promote":
            self.promote("auto")

    def _erase(self, event: Event) -> None:
        """A ``forget`` event (``DELETE /users/{id}``): erase the user from the model
        (``engine.core.users.erase``), from the guard's own state (vetted account, trusted
        clicks, reservoir pairs, open slate, in-process slates), from the challenger and the
        decision log. The open validation window is judged first, then the last-good and
        reference rollback points (which still hold the user) are retaken from the erased
        model (``reset``), so no rollback can bring the user back. The report is kept in
        ``erasures`` under the event's stream id."""
        g = self.guard
        if g.enabled and g.validate_windows and self._window:
            self.validate()
        self.recommender.apply(event)
        report = {"model": self.recommender.last_erasure, "guard": self._erase_guard_state(event.user_id),
                  **self.arena.erase(event)}
        self.reset(self.recommender)
        if event.event_id is not None:
            self.erasures[event.event_id] = report
            while len(self.erasures) > _ERASURE_REPORTS:
                self.erasures.popitem(last=False)

    def _erase_guard_state(self, user: str) -> dict:
        """Drop everything the guard holds about ``user``; what was removed."""
        clicks = self.accounts.clicks_of(user)
        out = self.join.forget(user)  # the account (and its trusted clicks) and its slates
        out["trusted_clicks"] = clicks
        kept = [pair for pair in self._reservoir if pair[0] != user]
        out["reservoir_pairs"] = len(self._reservoir) - len(kept)
        self._reservoir = kept
        out["open_slate"] = self._open_slate.pop(user, None) is not None
        return out

    def erase_restored(self, users: list[str]) -> None:
        """Erase ``users`` (already erased from the model: ``tombstones.erase_tombstoned``)
        from guard state restored from a snapshot that predates their erasure, and retake
        the rollback points from the erased model, so no rollback brings them back."""
        for user in users:
            self._erase_guard_state(user)
        if users:
            self.reset(self.recommender)

    def user_trust(self, user: str) -> dict:
        """The guard's view of ``user`` (``GET /users/{id}``): ``vetted`` (a trusted click
        vetted the account), ``trusted_clicks``, ``established`` (enough trusted clicks to
        count in validation and the alarm). Creates no state."""
        clicks = self.accounts.clicks_of(user)
        return {"vetted": user in self.accounts, "trusted_clicks": clicks,
                "established": clicks >= self.guard.established_clicks}

    def _forget(self, users: list[str]) -> None:
        """Drop the guard's own state of users the model forgot (bounded state)."""
        for user in users:
            self.accounts.discard(user)
            self._open_slate.pop(user, None)

    def _on_trusted_click(self, event: Event) -> None:
        user = event.user_id
        n = self.accounts.trusted_click(user)
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
        if self.accounts.clicks_of(user) < self.guard.established_clicks:
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
        """Close the current window: promote the live model or roll it back (runs
        ``validation_steps`` to completion); the verdict."""
        return run(self.validation_steps())

    def validation_steps(self) -> Steps[dict]:
        """``validate`` as cooperative steps (``engine.core.steps``): it yields after every
        reservoir pair and user scored, every event re-applied and every few thousand rows
        or MB of the model rebuilt or copied, and returns the verdict. The model and the
        guard must not learn meanwhile (the caller holds the writer's place); serving may
        read them, and sees the live model until a rollback swaps in the rebuilt one."""
        g = self.guard
        self.validation_windows += 1
        window, self._window = self._window, []
        suspicious, self._suspicious = self._suspicious, 0
        verdict = {"window": self.validation_windows, "at_event": self.events_seen, "suspicious": suspicious}
        failed = False
        jumped: set[str] = set()
        good = None
        if suspicious >= g.min_suspicious and self._good is not None and len(self._reservoir) >= _MIN_EVIDENCE:
            good = yield from Recommender.from_state_steps(*self._good, attributes=False)  # validation only: no filter index
            pairs = self._sample_pairs()
            users = self._sample_users()
            q_live = yield from _quality(self.recommender, pairs)
            q_good = yield from _quality(good, pairs)
            reach_live = yield from _reach(self.recommender, users)
            reach_good = yield from _reach(good, users)
            reach_good = np.pad(reach_good, (0, len(reach_live) - len(reach_good)))
            rise = reach_live - reach_good
            jump = float(np.max(rise, initial=0.0))
            jumped = {self.recommender.catalogue.ids[i] for i in np.flatnonzero(rise > g.exposure_jump).tolist()}
            ref = (yield from self._reference()) or good
            q_ref = (yield from _quality(ref, pairs)) if ref is not good else q_good
            verdict.update(quality_live=round(q_live, 4), quality_good=round(q_good, 4),
                           quality_reference=round(q_ref, 4), exposure_jump=round(jump, 4))
            failed = (q_live < q_good * (1 - g.quality_drop) or q_live < q_ref * (1 - g.cumulative_drop)
                      or jump > g.exposure_jump)
        if failed:
            yield from self._rollback(good, window, verdict, jumped)
        yield from self._promote()
        return verdict

    def reset(self, recommender: Recommender) -> None:
        """Serve and learn with ``recommender`` from now on (after a restore without guard
        state, or a promotion): it becomes the last good and reference model and the open
        window is dropped."""
        self.recommender = recommender
        self._window, self._suspicious = [], 0
        self._reference_model = self._reference_state = self._reference_slot = None
        enough = self.guard.validate_windows and len(self._reservoir) >= _MIN_EVIDENCE
        self._good = self._rollback_point() if enough else None
        self._windows_since_reference = 0

    def stats(self) -> dict:
        """Counters and the last 20 guard events (for ``GET /model``)."""
        return {"enabled": self.guard.enabled, "validation_windows": self.validation_windows,
                "rollbacks": self._count("rollback"), "alarms": self._count("alarm"),
                "quarantined_events": self.quarantined, "reservoir": len(self._reservoir),
                "vetted_accounts": len(self.accounts), "window_events": len(self._window),
                "window_suspicious": self._suspicious, "events": self.guard_events[-20:]}

    def account(self, user_id: str) -> dict:
        """What the guard holds about one account (``GET /guard/accounts/{user_id}``):
        whether it is vetted, its trusted clicks, whether it is established, and the weight
        its next unjoined event would be learned with (a joined one weighs 1)."""
        g = self.guard
        vetted = user_id in self.accounts
        clicks = self.accounts.clicks_of(user_id)
        return {"user_id": user_id, "vetted": vetted, "trusted_clicks": clicks,
                "established": clicks >= g.established_clicks,
                "unjoined_weight": (g.vetted_untrusted_weight if vetted else g.untrusted_weight) if g.enabled else 1.0,
                "reservoir_pairs": sum(1 for u, _ in self._reservoir if u == user_id)}

    def _count(self, kind: str) -> int:
        return self._earlier_events.get(kind, 0) + sum(1 for e in self.guard_events if e["kind"] == kind)

    def _rollback(self, good: Recommender, window: list[tuple[Event, float, bool]], verdict: dict,
                  jumped: set[str]) -> Steps[None]:
        """Back to the last good model (``good``, rebuilt by the validation and only read
        since); re-apply the window's events except the suspicious ones and the positives on
        the items whose exposure jumped (``jumped``: they reached established users only
        through the burst, so the clicks they drew there are its echo, not evidence). The
        rebuilt model replaces the live one once it has re-applied them."""
        last_event_id = self.recommender.last_event_id
        restored = good
        semantics = restored.semantics
        kept = 0
        for event, weight, suspicious in window:
            if suspicious or (event.item_id in jumped and semantics.is_positive(event.kind, event.value)):
                continue
            restored.apply(event, weight)
            kept += 1
            yield
        restored.last_event_id = last_event_id  # quarantined events count as handled
        self.recommender = restored
        dropped = len(window) - kept
        self.quarantined += dropped
        self.guard_events.append({"kind": "rollback", **verdict, "reapplied": kept})
        self.guard_events.append({"kind": "quarantine", "at_event": self.events_seen, "events": dropped})

    def _promote(self) -> Steps[None]:
        if len(self._reservoir) < _MIN_EVIDENCE:
            # without trusted evidence no window can fail, so no rollback target is needed:
            # skip the state copy (it costs ~50 ms per window on a 100k x 100k model)
            self._good = None
            return
        self._good = yield from self._rollback_point_steps()
        self._windows_since_reference += 1
        if self._windows_since_reference >= self.guard.reference_every:
            # kept as arrays: rebuilding a model costs ~0.1 s (seconds at 100k x 100k) in the
            # learning loop, and only a suspicious window ever needs it
            self._reference_state, self._reference_model = self._good, None
            self._reference_slot = self._good_slot
            self._windows_since_reference = 0

    def _rollback_point(self) -> tuple[dict, dict]:
        return run(self._rollback_point_steps())

    def _rollback_point_steps(self) -> Steps[tuple[dict, dict]]:
        """The live model's state, its co-occurrence table synced into the buffer the
        reference state does not hold."""
        slot = 1 if self._reference_slot == 0 else 0
        state, self._buffers[slot] = yield from self.recommender.rollback_point_steps(self._buffers[slot])
        self._good_slot = slot
        return state

    def _reference(self) -> Steps[Recommender | None]:
        """The cumulative reference model (rebuilt lazily from its saved state)."""
        if self._reference_model is None and self._reference_state is not None:
            self._reference_model = yield from Recommender.from_state_steps(*self._reference_state, attributes=False)
        return self._reference_model

    def _sample_pairs(self) -> list[tuple[str, str]]:
        n = min(self.guard.quality_pairs, len(self._reservoir))
        idx = self._rng.choice(len(self._reservoir), n, replace=False)
        return [self._reservoir[i] for i in idx.tolist()]

    def _sample_users(self) -> list[str]:
        """Established users for the exposure probe, drawn from them in vetting order (a
        function of the stream, so a restored guard draws the same ones)."""
        users = self.accounts.established(self.guard.established_clicks)
        n = min(self.guard.exposure_users, len(users))
        return [users[i] for i in self._rng.choice(len(users), n, replace=False).tolist()] if n else []

    # -------------------------------------------------------------- snapshots
    def state(self, arrays: dict | None = None, meta: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """The guard's part of a snapshot (``engine.core.guard_state``): arrays (named
        ``guard.*``; views of live state, so finish with them before learning again) and
        JSON metadata (for ``meta["guard"]``). ``arrays`` / ``meta``: the live model's
        ``state(copy=False)``, when the caller has it already (a checkpoint).

        Cost: the accounts are views; the window (<= ``window_events`` events) and the
        reservoir are encoded; each rollback point is a row delta against the live arrays
        (numpy comparisons of the per-item and per-user arrays, the co-occurrence rows
        changed since the point only)."""
        rec = self.recommender
        out = guard_state.accounts_arrays(self.accounts)
        meta_out: dict[str, Any] = {
            "version": guard_state.VERSION,
            "reservoir": [list(p) for p in self._reservoir], "reservoir_seen": self._reservoir_seen,
            "rng": self._rng.bit_generator.state,
            "window": guard_state.encode_window(self._window), "suspicious": self._suspicious,
            "validation_windows": self.validation_windows, "quarantined": self.quarantined,
            "events_seen": self.events_seen, "served": self._served,
            "windows_since_reference": self._windows_since_reference,
            "events": self.guard_events[-guard_state.EVENTS_KEPT:],
            "earlier_events": self._earlier_counts(guard_state.EVENTS_KEPT),
            "good": None, "reference": None,
        }
        if self._good is not None or self._reference_state is not None:
            if arrays is None or meta is None:
                arrays, meta = rec.state(copy=False)
            base = guard_state.point_base(rec, arrays)
            points = [("good", self._good, self._good_slot)]
            if self._reference_state is not None and self._reference_state is not self._good:
                points.append(("reference", self._reference_state, self._reference_slot))
            elif self._reference_state is not None:
                meta_out["reference"] = "good"
            for name, point, slot in points:
                if point is None:
                    continue
                encoded, stored = guard_state.encode_point(point, self._buffers[slot], rec, base, meta)
                meta_out[name] = encoded
                out.update(guard_state.prefixed(stored, name))
        return out, meta_out

    def load_state(self, recommender: Recommender, arrays: dict[str, np.ndarray], meta: dict | None) -> None:
        """Serve and learn with ``recommender`` (restored from the same snapshot) and the
        guard state the snapshot carries (``arrays``: all of its arrays; ``meta``: its
        ``meta["guard"]``), so the guard continues exactly as the process that wrote it:
        ``adopt(recommender, decode_state(recommender, arrays, meta))``.

        Raises:
            KeyError, ValueError: malformed guard state (nothing is changed).
        """
        self.adopt(recommender, self.decode_state(recommender, arrays, meta))

    def decode_state(self, recommender: Recommender, arrays: dict[str, np.ndarray],
                     meta: dict | None) -> guard_state.Decoded | None:
        """The guard state of a snapshot, decoded against ``recommender`` (restored from the
        same snapshot) and not yet adopted: pure, so it may run in a worker thread. None when
        the snapshot has no guard state (an older one). The rollback points are rebuilt only
        when this guard validates windows (a read-only replica takes the learner's decisions
        from its snapshots and needs none).

        Raises:
            KeyError, ValueError: malformed guard state.
        """
        if not meta:
            return None
        validating = self.guard.validate_windows
        rng = np.random.default_rng(self.guard.seed)
        rng.bit_generator.state = meta["rng"]
        out = guard_state.Decoded(
            accounts=guard_state.load_accounts(arrays),
            reservoir=[(u, i) for u, i in meta["reservoir"]], reservoir_seen=int(meta["reservoir_seen"]), rng=rng,
            window=guard_state.decode_window(meta["window"]) if validating else [],
            suspicious=int(meta["suspicious"]) if validating else 0,
            counters={k: int(meta[k]) for k in ("validation_windows", "quarantined", "events_seen",
                                                 "windows_since_reference")},
            served=meta.get("served"), events=[dict(e) for e in meta["events"]],
            earlier_events={k: int(v) for k, v in meta.get("earlier_events", {}).items()})
        if validating and meta.get("good"):
            base_arrays, base_meta = recommender.state(copy=False)
            base = guard_state.point_base(recommender, base_arrays)
            out.good, out.buffers[0] = guard_state.decode_point(
                meta["good"], guard_state.sub_arrays(arrays, "good"), recommender, base, base_meta)
            if meta.get("reference") == "good":
                out.reference = out.good
            elif meta.get("reference"):
                out.reference, out.buffers[1] = guard_state.decode_point(
                    meta["reference"], guard_state.sub_arrays(arrays, "reference"), recommender, base, base_meta)
        return out

    def adopt(self, recommender: Recommender, state: guard_state.Decoded | None) -> None:
        """Serve and learn with ``recommender`` and the decoded guard ``state``
        (``decode_state`` of the same snapshot); None: ``reset``."""
        if state is None:
            self.reset(recommender)
            return
        self.recommender = recommender
        self.join.vetted = state.accounts
        self._reservoir, self._reservoir_seen, self._rng = state.reservoir, state.reservoir_seen, state.rng
        self._window, self._suspicious = state.window, state.suspicious
        c = state.counters
        self.validation_windows, self.quarantined = c["validation_windows"], c["quarantined"]
        self.events_seen, self._windows_since_reference = c["events_seen"], c["windows_since_reference"]
        if state.served is not None:
            self._served = int(state.served)
        self.guard_events, self._earlier_events = state.events, state.earlier_events
        self._good, self._reference_state, self._reference_model = state.good, state.reference, None
        self._buffers = list(state.buffers)
        self._good_slot = 0 if state.good is not None else None
        self._reference_slot = None if state.reference is None else (0 if state.reference is state.good else 1)

    def _earlier_counts(self, kept: int) -> dict[str, int]:
        """Guard events by kind, counting those a snapshot does not keep (all but the last
        ``kept``) and those restored as counts."""
        counts = dict(self._earlier_events)
        for e in self.guard_events[:-kept] if kept else self.guard_events:
            counts[e["kind"]] = counts.get(e["kind"], 0) + 1
        return counts


def _quality(rec: Recommender, pairs: list[tuple[str, str]], k: int = 10) -> Steps[float]:
    """Share of (user, item) pairs whose item ranks in the user's top k (no exclusions); a
    step per pair."""
    if not pairs:
        return 0.0
    hits = 0
    for user, item in pairs:
        idx = rec.catalogue.get(item)
        if idx is None:
            continue
        hits += rec.in_top(user, idx, k)
        yield
    return hits / len(pairs)


def _reach(rec: Recommender, users: list[str], k: int = 10) -> Steps[np.ndarray]:
    """Per item (catalogue rows), the share of ``users`` with it in their served top k; a
    step per user."""
    n = len(rec.catalogue)
    counts = np.zeros(n)
    for user in users:
        seen = rec.seen.get(user)
        exclude = np.fromiter(seen, dtype=np.int64, count=len(seen)) if seen else np.zeros(0, dtype=np.int64)
        idx, _ = rec.top(user, k, exclude)
        counts[idx] += 1
        yield
    return counts / max(1, len(users))
