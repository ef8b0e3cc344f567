"""The recommender: one object that learns from events and ranks the catalogue.

It keeps the signals (decayed popularity, item-to-item co-occurrence, River's BiasedMF,
the user's history) and ranks with one of two rankers (``EngineConfig.ranker``):

``learned`` (default)
    candidates from cheap vectorised sources, per-candidate features, and a River logistic
    regression that learns on the stream how much each feature counts
    (``engine.core.learned_ranking``); the blend adapts to each deployment.
``blend``
    the fixed formula over the whole catalogue (per-item numpy vectors, one pass)::

        score(u, i) = log(trend_i + eps)                   decayed popularity, event time
                    + cooc_weight * cooc(H_u, i)            co-occurrence with u's last positives
                    + mf_weight   * (b_i + <p_u, q_i>)      River BiasedMF (implicit feedback)

Unknown users get the same ranking without personal terms: what is trending now.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from engine.config import EngineConfig
from engine.core.arrays import ensure_capacity, splitmix64
from engine.core.catalogue import Catalogue
from engine.core.context import ContextPopularity
from engine.core import learned_ranking, slates
from engine.core.cooccurrence import CoOccurrence
from engine.core.eviction import UserActivity, compact, dead_rows, forget
from engine.core.events import (EXPOSURE, FORGET_KIND, ITEM_KIND, NEGATIVE, POSITIVE, SLATE_KIND, Event, Semantics,
                                 is_deletion)
from engine.core.features import feature_groups, feature_names
from engine.core.model import FactorModel
from engine.core.popularity import PopularityBank
from engine.core.ranker import Ranker
from engine.core.ranking import top_k
from engine.core import steps
from engine.core.rules import Rules
from engine.core.steps import ROWS_PER_STEP, Steps, run
from engine.core.tags import TagProfiles
from engine.core.trend import DecayedPopularity
from engine.core.users import erase

_RECENT = 4096  # ring of recent positives that implicit negatives are sampled from
APPEND_ONLY = frozenset({"log_user", "log_item", "log_pos", "items_text", "items_len", "users_text", "users_len",
                         "added_at"})
"""``state()`` arrays whose written rows never change (they only grow, or are replaced whole
by a compaction): rollback points hold prefix views of them instead of copies."""


@dataclass(frozen=True, slots=True)
class Served:
    """A served slate: item ids best slot first, scores, the probability the serving policy
    put each item in its slot given the slots above (1 when greedy or promoted), whether each
    slot explored, and whether it holds a promoted item (all False without promotions)."""

    item_ids: list[str]
    scores: list[float]
    propensities: list[float]
    explored: list[bool]
    promoted: list[bool] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Ranked:
    """One ranked item: catalogue id and blended score (higher is better)."""

    item_id: str
    score: float


class Recommender:
    """Learns from ``Event``s and serves top-k slates; single writer, many readers.

    Write path: ``apply(event)`` (the learner calls it for every stream entry, in order).
    Read path: ``recommend(user_id, k, exclude)`` creates no state for unknown ids.
    Not thread-safe: the server runs reads and the learner on one event loop.

    Args:
        config: ``EngineConfig``.
    """

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        c = self.config
        self.catalogue = Catalogue()
        self.learned = c.ranker == "learned"
        self.semantics = Semantics(c.events)
        self.trend = DecayedPopularity(c.trend_half_life_h * 3600.0)
        self.bank = PopularityBank(tuple(h * 3600.0 for h in c.popularity_half_lives_h),
                                   c.popularity_half_lives_events, head_size=c.trending_candidates)
        self.added_at = np.zeros(0, dtype=np.int64)  # per item: positives counted when it was added (age)
        self.impressions = np.zeros(0, dtype=np.int64)  # per item: exposure events (new-item exploration)
        self._added_n = 0
        self.context_pop = ContextPopularity(c.context_buckets)
        self.tags = TagProfiles()
        self.cooc = CoOccurrence(window=2 * c.cooc_history, max_neighbours=c.cooc_neighbours)
        self.transitions = CoOccurrence(window=1, max_neighbours=c.transition_neighbours)  # previous -> next positive
        self.model = FactorModel(c.n_factors, c.learning_rate, c.l2, c.seed)
        columns = self.bank.names
        names = feature_names(c)
        groups = feature_groups(c)
        self.ranker = Ranker(groups, prior={name: 1.0 / len(columns) for name in columns},
                             learning_rate=c.ranker_learning_rate)
        off = [names.index(col) for g in c.ranker_ablate for col in groups[g]]
        self.ablated = np.array(off, dtype=np.int64) if off else None  # feature columns left out
        self.seen: dict[str, dict[int, None]] = {}
        self.positives: dict[str, list[int]] = {}
        # append-only interaction log (user row, item row, positive?) in numpy, so a snapshot
        # copies it with a memcpy instead of flattening the per-user dicts in Python
        self._log_user = np.zeros(0, dtype=np.int64)
        self._log_item = np.zeros(0, dtype=np.int64)
        self._log_pos = np.zeros(0, dtype=bool)
        self._log_n = 0
        self.recent = np.zeros(_RECENT, dtype=np.int64)
        self.recent_count = 0
        self.pending: dict[tuple[str, int], float] = {}
        self._shown: dict[str, dict[int, None]] = {}  # per user: rows of its pending impressions
        self._expiry: list[tuple[float, str, int]] = []
        self.clock = 0.0
        self.activity = UserActivity()  # users by last activity (eviction)
        self.dead_users = np.zeros(0, dtype=bool)  # per user row: forgotten, awaiting compaction
        self.evicted_users = 0
        self.erased_users = 0  # users erased on request (FORGET_KIND events)
        self.last_erasure: dict | None = None  # what the last erasure removed (engine.core.users.erase)
        self.refused_items = 0
        self.evicted_since: list[str] = []  # users forgotten since the guard last asked (``drain_evicted``)
        self.positives_learned = 0
        self.events_learned = 0
        self.last_event_id: str | None = None

    # ------------------------------------------------------------------ read path
    def recommend(self, user_id: str, k: int = 10, exclude: list[str] | tuple = (),
                  context: dict | None = None) -> list[Ranked]:
        """Top-``k`` items for ``user_id`` in ``context`` (device, page, ...), best first.

        Excludes items the user already interacted with, ids in ``exclude`` (unknown ids are
        ignored) and hidden items. Unknown users get the cold-start (trending) ranking.
        Creates no state. Cost: O(n_items * n_factors) numpy work, no per-item Python loop.

        Returns:
            up to ``k`` ``Ranked`` items (fewer when the catalogue has fewer eligible items).
        """
        if len(self.catalogue) == 0:
            return []
        idx, top = self.top(user_id, k, self.excluded(user_id, exclude), context)
        ids = self.catalogue.ids
        return [Ranked(ids[i], float(s)) for i, s in zip(idx.tolist(), top.tolist())]

    def serve(self, user_id: str, k: int, exclude: list[str] | tuple = (), context: dict | None = None,
              policy=None, seed: int = 0, rules: Rules | None = None,
              shadow=None) -> "Served":
        """A slate for ``user_id`` drawn under an exploration ``policy``
        (``engine.core.exploration.ExplorationPolicy``; None: the configured one) seeded by
        ``seed``: item ids best slot first, scores, per-slot propensities, explored and
        promoted flags (``engine.core.slates.draw``). Greedy and without ``rules``, it
        equals ``recommend``. With business ``rules`` (``engine.core.rules.Rules``: filters,
        diversity cap, promotions) the slate is filled by ``engine.core.ruled_slates``.
        ``shadow``: a challenger's pool (``engine.core.mixture.ShadowPool``): its share of
        every slot is drawn from the challenger's policy (not under ``rules``).
        Creates no state.

        Raises:
            engine.core.filters.UnknownName: ``rules`` name a tag or field no item has.
        """
        compiled = rules.compile(self.catalogue) if rules is not None and rules.active else None
        if len(self.catalogue) == 0:
            return Served([], [], [], [], [])
        d = slates.draw(self, user_id, k, self.excluded(user_id, exclude), context,
                        policy or slates.policy_of(self.config), seed, compiled, shadow)
        ids = self.catalogue.ids
        promoted = d.promoted.tolist() if d.promoted is not None else [False] * len(d.rows)
        return Served([ids[r] for r in d.rows.tolist()], d.scores.tolist(), d.propensities.tolist(),
                      d.explored.tolist(), promoted)

    def excluded(self, user_id: str, exclude: list[str] | tuple = ()) -> np.ndarray:
        """Rows a slate for ``user_id`` never holds: hidden items, what the user interacted
        with, and the known ids of ``exclude`` (int array, may repeat)."""
        parts = [self.catalogue.hidden_idx]
        seen = self.seen.get(user_id)
        if seen:
            parts.append(np.fromiter(seen, dtype=np.int64, count=len(seen)))
        if exclude:
            ids = [self.catalogue.get(item) for item in exclude]
            parts.append(np.array([i for i in ids if i is not None], dtype=np.int64))
        return np.concatenate(parts)

    def top(self, user_id: str, k: int, excluded: np.ndarray, context: dict | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best (rows, scores) for ``user_id``, best first, none in ``excluded``
        (int rows), by this recommender's ranker (the blend ignores ``context``). Creates no
        state."""
        if self.learned:
            return learned_ranking.rank(self, user_id, excluded, k, context)
        return top_k(self.scores(user_id), k, excluded)

    def in_top(self, user_id: str, idx: int, k: int = 10) -> bool:
        """Whether item row ``idx`` ranks among ``user_id``'s top ``k`` with nothing excluded
        (the forgetting guard's quality probe). Creates no state."""
        if self.learned:
            rows, _ = learned_ranking.rank(self, user_id, np.zeros(0, dtype=np.int64), k, with_item=idx)
            return bool(np.isin(idx, rows))
        scores = self.scores(user_id)
        return bool(np.sum(scores > scores[idx]) < k)

    def scores(self, user_id: str) -> np.ndarray:
        """The blend ranker's score of every catalogue item for ``user_id`` (n_items,),
        before any exclusion; a fresh array the caller may modify. Creates no state."""
        n = len(self.catalogue)
        c = self.config
        scores = self.model.scores(user_id, n)  # a fresh array: accumulate in place
        if c.mf_weight != 1.0:
            scores *= c.mf_weight
        scores += self.trend.log_score[:n]
        history = self.positives.get(user_id)
        if history:
            self.cooc.add_scores(history[-c.cooc_history:], scores, c.cooc_weight)
        return scores

    def knows_user(self, user_id: str) -> bool:
        return user_id in self.seen

    # ----------------------------------------------------------------- write path
    def upsert_item(self, item_id: str, meta: dict | None = None, hidden: bool | None = None) -> None:
        """Add or update a catalogue item; a new item is recommendable before its first click,
        its ``meta["tags"]`` feed the ranker's tag affinity, and its tags and ``meta["fields"]``
        the request filters (``engine.core.attributes``). A deleted item stays deleted."""
        idx = self.catalogue.upsert(item_id, meta, hidden)
        self._grow()
        if meta is not None and idx not in self.catalogue.deleted:
            self.tags.set_item(idx, meta.get("tags"))

    def delete_item(self, item_id: str) -> None:
        """Delete an item for good (``Catalogue.delete``: a permanent hide, its metadata, tags
        and fields dropped). Its row and what the model learned of it stay (rows are dense),
        but it is never served, matched by a filter or listed again, and feedback on it is
        counted in ``refused_items`` and not learned. An unknown id is registered deleted."""
        idx = self.catalogue.add(item_id)
        self._grow()
        self.catalogue.delete(idx)
        self.tags.set_item(idx, [])

    def apply(self, event: Event, weight: float = 1.0) -> None:
        """Learn from one event (the learner's write path). Events must arrive in stream order.

        What the event means comes from the event schema (``self.semantics``). ``weight``
        (0..1] damps the event's influence on shared item parameters: its trend and
        co-occurrence counts and the step size of the item-side MF update (the forgetting
        guard passes < 1 for events that join no served impression). A ``forget`` event
        erases its user (``engine.core.users.erase``; the report is left in
        ``last_erasure``).

        Raises:
            ValueError: an event type the schema does not know or a rating without a value
                (the intake rejects these before they become durable).
        """
        if event.kind == FORGET_KIND:  # erasure of a user (DELETE /users/{id}), in stream order
            self.last_erasure = erase(self, event.user_id)
            self._advance(event)
            return
        c = self.config
        known = self.catalogue.get(event.item_id) is not None
        if not known and c.max_items and len(self.catalogue) >= c.max_items:
            self.refused_items += 1  # the catalogue is full: nothing about a new item is learned
            self._advance(event)
            return
        if event.kind == ITEM_KIND:
            if is_deletion(event):
                self.delete_item(event.item_id)
            else:
                self.upsert_item(event.item_id, event.meta, event.hidden)
            self._advance(event)
            return
        if event.kind == SLATE_KIND:
            self._slate(event)
            self._advance(event)
            return
        if (not known and not c.items_from_feedback) or (known and self.catalogue.live(event.item_id) is None):
            self.refused_items += 1  # not admitted, or deleted: nothing about it is learned
            self._advance(event)
            return
        t = event.time
        if t > self.clock:
            self.clock = t
        self._expire_impressions()
        idx = self.catalogue.add(event.item_id)
        self._grow()
        user = event.user_id
        role, strength = self.semantics.meaning(event.kind, event.value)
        if role == POSITIVE:
            self._positive(user, event.item_id, idx, t, weight, strength, event.context, known)
            self._resolve(user, idx)  # after: the ranker learns the click against the rest of what was shown
        elif role == EXPOSURE:
            self._expose(user, idx, t)
        else:  # a negative learns a 0; a neutral rating only marks the item seen
            self._resolve(user, idx)
            self._negative(user, event.item_id, idx, weight, learn=role == NEGATIVE)
        if role != EXPOSURE:
            self.activity.touch(user, t)
            if c.user_ttl_s or c.max_users:
                self._evict()
        self._advance(event)

    def _slate(self, event: Event) -> None:
        """A served slate: with ``log_slates``, an impression of each of its
        known items the user has not interacted with (a slot not clicked within the reward
        window becomes a negative)."""
        if not self.config.log_slates:
            return
        t = event.time
        if t > self.clock:
            self.clock = t
        self._expire_impressions()
        for item in (event.meta or {}).get("items", ()):
            idx = self.catalogue.get(item)
            if idx is not None:
                self._expose(event.user_id, idx, t)

    def _expose(self, user: str, idx: int, t: float) -> None:
        """An impression of ``idx`` to ``user`` at ``t``: pending until a positive answers it
        or the reward window passes (then a negative); none for an item already seen."""
        self.impressions[idx] += 1
        key = (user, idx)
        if key not in self.pending and idx not in self.seen.get(user, ()):
            deadline = t + self.config.reward_window_s
            self.pending[key] = deadline
            self._shown.setdefault(user, {})[idx] = None
            heapq.heappush(self._expiry, (deadline, user, idx))

    def _evict(self) -> None:
        """Forget the users due at the current clock; compact their rows when enough are dead."""
        c = self.config
        due = self.activity.due(self.clock, c.user_ttl_s, c.max_users)
        for user in due:
            forget(self, user)
        if due:
            self.evicted_since.extend(due)
            compact(self)

    def drain_evicted(self) -> list[str]:
        """The users forgotten since the last call (the guard drops its own state of them)."""
        out, self.evicted_since = self.evicted_since, []
        return out
    def _advance(self, event: Event) -> None:
        self.events_learned += 1
        if event.event_id is not None:
            self.last_event_id = event.event_id

    def _grow(self) -> None:
        n = len(self.catalogue)
        self.trend.grow(n)
        self.bank.grow(n)
        self.context_pop.grow(n)
        self.tags.grow(n)
        if n > self._added_n:
            self.added_at = ensure_capacity(self.added_at, n)
            self.added_at[self._added_n: n] = self.bank.events
            self.impressions = ensure_capacity(self.impressions, n)
            self._added_n = n
        self.cooc.grow(n)
        self.transitions.grow(n)
        self.model.grow(n)

    def shown_to(self, user: str) -> list[int]:
        """Rows of the items ``user`` was shown and has not clicked yet (pending
        impressions), oldest first."""
        return list(self._shown.get(user, ()))

    def _resolve(self, user: str, idx: int) -> None:
        """A click answers the user's pending impression of that item, if any."""
        if self.pending.pop((user, idx), None) is not None:
            shown = self._shown[user]
            del shown[idx]
            if not shown:
                del self._shown[user]

    def _positive(self, user: str, item_id: str, idx: int, t: float, weight: float = 1.0,
                  strength: float = 1.0, context: dict | None = None, known: bool = True) -> None:
        """A positive: the ranker learns it first (when sampled); then the factor model (item
        step damped by ``weight``), co-occurrence and popularity (counted ``weight *
        strength``, the type's weight) and the user's history."""
        c = self.config
        seen = self.seen.setdefault(user, {})
        if self.learned and known and idx not in seen and ((user, idx) in self.pending or learned_ranking.should_learn(self)):
            # before the event: what a slate served now would see. A positive on an item that
            # was not in the catalogue, or that the user had already interacted with, could
            # not have been in a slate: nothing to learn about ranking from it. A click on a
            # shown item is learned against the rest of what was shown (a list of ~10 rows,
            # cheap: always); an organic positive against its candidates (ranker_sample of them)
            learned_ranking.learn(self, user, idx, context)
        steps = [(item_id, idx, 1.0, weight)]
        if self.recent_count and c.negatives_per_positive:
            size = min(self.recent_count, _RECENT)
            ids = self.catalogue.ids
            for n in range(c.negatives_per_positive):
                j = int(self.recent[splitmix64(c.seed, self.events_learned, n) % size])
                if j != idx and j not in seen:
                    steps.append((ids[j], j, 0.0, 1.0))
        self.model.learn_steps(user, steps)
        count = weight * strength
        history = self.positives.setdefault(user, [])
        self.cooc.add(history, idx, count)
        if self.learned and history:
            self.transitions.add_directed(history[-1:], idx, count)
        history.append(idx)
        if len(history) > 2 * self.cooc.window:  # only the last `window` are ever read
            del history[: -self.cooc.window]
        seen[idx] = None
        self._log(user, idx, True)
        self.positives_learned += 1
        if self.learned:
            self.bank.add(idx, t, count)
            self.context_pop.add(idx, context, count)
            self.tags.on_positive(user, idx, count)
        else:
            self.trend.add(idx, t, count)
        if weight >= 0.5:  # damped (untrusted) positives do not feed the negative-sampling pool
            self.recent[self.recent_count % _RECENT] = idx
            self.recent_count += 1

    def _negative(self, user: str, item_id: str, idx: int, weight: float = 1.0, learn: bool = True) -> None:
        if learn:
            self.model.learn(user, item_id, idx, 0.0, weight)
        else:
            self.model.touch_user(user)  # the interaction log refers to the user's row
        self.seen.setdefault(user, {})[idx] = None
        self._log(user, idx, False)

    def _log(self, user: str, idx: int, positive: bool) -> None:
        n = self._log_n
        if n == self._log_user.shape[0]:
            self._log_user = ensure_capacity(self._log_user, n + 1)
            self._log_item = ensure_capacity(self._log_item, n + 1)
            self._log_pos = ensure_capacity(self._log_pos, n + 1, False)
        self._log_user[n] = self.model.user_index[user]
        self._log_item[n] = idx
        self._log_pos[n] = positive
        self._log_n = n + 1

    def _expire_impressions(self) -> None:
        """Impressions whose reward window has passed (engine clock) become negatives; with
        ``hide_ignored`` (the default) their items are also seen (not shown to that user again)."""
        heap = self._expiry
        while heap and heap[0][0] <= self.clock:
            deadline, user, idx = heapq.heappop(heap)
            if self.pending.get((user, idx)) == deadline:
                self._resolve(user, idx)
                if self.config.hide_ignored:
                    # an ignored impression is a negative and, like any interaction, is not
                    # shown to that user again (which also makes slates explore)
                    self._negative(user, self.catalogue.ids[idx], idx)
                else:  # only the factor model's negative: not an interaction, not seen
                    self.model.learn(user, self.catalogue.ids[idx], idx, 0.0)

    # ------------------------------------------------------------------ snapshots
    def state(self, copy: bool = True, cooc: bool = True) -> tuple[dict[str, np.ndarray], dict]:
        """Everything needed to resume learning exactly: numpy arrays + JSON-able metadata.

        With ``copy=False`` the arrays are views of the live state (no copy, no per-id Python
        work; the co-occurrence entries are ``cooccurrence.RowPrefixes`` that
        ``engine.core.snapshot_codec.pack`` gathers into the blob): the caller must finish with them
        before the model learns again (the learner packs them into a snapshot blob while
        holding its write lock). ``cooc=False`` leaves the co-occurrence arrays out
        (``rollback_point`` adds its own).
        """
        cat = self.catalogue
        arrays: dict[str, np.ndarray] = {}
        trend_arrays, trend_meta = self.trend.state()
        arrays.update(trend_arrays)
        bank_arrays, bank_meta = self.bank.state()
        arrays.update(bank_arrays)
        arrays["added_at"] = self.added_at[: self._added_n]
        arrays["impressions"] = self.impressions[: self._added_n]
        ranker_arrays, ranker_meta = self.ranker.state()
        arrays.update(ranker_arrays)
        ctx_arrays, ctx_meta = self.context_pop.state()
        arrays.update(ctx_arrays)
        tag_arrays, tag_meta = self.tags.state(self.model.user_index)
        arrays.update(tag_arrays)
        cooc_arrays = self.cooc.state(deferred=not copy) if cooc else {}
        cooc_arrays.update(self.transitions.state(deferred=not copy, prefix="trans"))
        model_arrays, model_meta = self.model.state(cat.ids)
        arrays.update({f"mf_{k}": v for k, v in model_arrays.items()})
        n = self._log_n
        arrays["log_user"] = self._log_user[:n]
        arrays["log_item"] = self._log_item[:n]
        arrays["log_pos"] = self._log_pos[:n]
        arrays["recent"] = self.recent
        arrays["items_text"], arrays["items_len"] = cat.packed.arrays()
        arrays["users_text"], arrays["users_len"] = self.model.user_packed.arrays()
        arrays["users_dead"] = dead_rows(self)
        arrays.update(self.activity.state(self.model.user_index))
        if copy:
            arrays = {k: v.copy() for k, v in arrays.items()}
        arrays.update(cooc_arrays)  # fresh arrays, or deferred gathers of the live table
        meta = {
            "config": self.config.model_dump(),
            "item_meta": {str(k): v for k, v in cat.meta.items()},
            "hidden": sorted(cat.hidden_idx.tolist()),
            "deleted": sorted(cat.deleted),
            "trend": trend_meta,
            "popularity": bank_meta,
            "ranker": ranker_meta,
            "context": ctx_meta,
            "tags": tag_meta,
            "model": model_meta,
            "recent_count": self.recent_count,
            "pending": [[u, i, d] for (u, i), d in self.pending.items()],
            "clock": self.clock,
            "positives_learned": self.positives_learned,
            "evicted_users": self.evicted_users,
            "erased_users": self.erased_users,
            "refused_items": self.refused_items,
            "events_learned": self.events_learned,
            "last_event_id": self.last_event_id,
        }
        return arrays, meta

    def rollback_point(self, cooc_buffer: CoOccurrence | None = None) -> tuple[tuple[dict, dict], CoOccurrence]:
        """An in-memory copy of the state to roll back to or validate against (the
        forgetting guard's last-good and reference models): ``((arrays, meta), buffer)``,
        accepted by ``from_state``.

        Unlike ``state()``, its memory does not grow with what the model learns: the
        co-occurrence table is synced into ``cooc_buffer`` (a buffer returned by an earlier
        call; only rows changed since are copied, ``CoOccurrence.copy_into``) and held in
        table form, and the append-only arrays (interaction log, packed ids, whose written
        rows never change; ``APPEND_ONLY``) are prefix views of the live ones, not copies.
        The other arrays (per-item and per-user parameters, fixed size per row) are copied.
        The caller owns ``buffer`` and must not sync it again while this state is still
        needed.
        """
        return run(self.rollback_point_steps(cooc_buffer))

    def rollback_point_steps(self, cooc_buffer: CoOccurrence | None = None
                             ) -> Steps[tuple[tuple[dict, dict], CoOccurrence]]:
        """``rollback_point`` as cooperative steps (``engine.core.steps``): the table sync and
        every array copy in blocks of a few MB."""
        buffer = yield from self.cooc.copy_into_steps(cooc_buffer)
        arrays, meta = self.state(copy=False, cooc=False)
        yield
        # (compaction replaces the append-only arrays rather than writing into them, so the views stay valid)
        out = {}
        for k, v in arrays.items():
            if k in APPEND_ONLY:
                out[k] = v
            elif isinstance(v, np.ndarray):
                out[k] = yield from steps.copy(v)
            else:  # a deferred gather (cooccurrence.RowPrefixes)
                out[k] = v.copy()
                yield
        n = buffer.n
        out.update(cooc_table_keys=buffer.keys[:n], cooc_table_vals=buffer.vals[:n],
                   cooc_size=buffer.size[:n], cooc_counts=buffer.counts[:n])
        return (out, meta), buffer

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict, config: EngineConfig | None = None,
                   attributes: bool = True) -> "Recommender":
        """Rebuild a recommender from ``state()`` output (inverse of ``state``). Without
        ``config`` the snapshot's own is used (``config_of``). ``attributes=False`` leaves the
        catalogue's filter index to be built on first use (a copy that never serves
        filtered requests, e.g. the guard's validation models, never builds it)."""
        return run(cls.from_state_steps(arrays, meta, config, attributes))

    @classmethod
    def from_state_steps(cls, arrays: dict[str, np.ndarray], meta: dict, config: EngineConfig | None = None,
                         attributes: bool = True) -> Steps["Recommender"]:
        """``from_state`` as cooperative steps (``engine.core.steps``): it yields every few
        thousand rows of its per-row loops and between array copies, and returns the
        recommender. The guard rebuilds its last good model this way during a validation
        that the event loop interleaves with requests."""
        rec = cls(config or config_of(meta))
        cat = rec.catalogue
        cat.defer_index()
        items = yield from _unpack_ids(arrays["items_text"], arrays["items_len"])
        cat.load_ids(items, arrays["items_text"], arrays["items_len"])
        yield
        for n, (k, v) in enumerate(meta["item_meta"].items(), 1):
            cat.set_meta(int(k), v)
            if n % ROWS_PER_STEP == 0:
                yield
        for i in meta["hidden"]:
            cat.upsert(cat.ids[i], hidden=True)
        for i in meta.get("deleted", ()):  # snapshots before deletions have none
            cat.delete(i)
        rec.trend.load(arrays, meta["trend"])
        yield
        if "popularity" in meta:  # snapshots before the learned ranker have no bank
            rec.bank.load(arrays, meta["popularity"])
            rec.ranker = Ranker.from_state(arrays, meta["ranker"])
            yield
        yield from rec.cooc.load_steps(arrays)
        if "trans_counts" in arrays:
            yield from rec.transitions.load_steps(arrays, prefix="trans")
        users = yield from _unpack_ids(arrays["users_text"], arrays["users_len"])
        dead = arrays.get("users_dead")
        yield from rec.model.load_steps({k[3:]: v for k, v in arrays.items() if k.startswith("mf_")}, meta["model"],
                                        cat.ids, users, dead, (arrays["users_text"], arrays["users_len"]))
        if dead is not None:
            rec.dead_users = dead.copy()
        rec._grow()
        yield
        if "added_at" in arrays:
            rec.added_at[: len(arrays["added_at"])] = arrays["added_at"]
            if "impressions" in arrays:
                rec.impressions[: len(arrays["impressions"])] = arrays["impressions"]
            rec.context_pop.load(arrays, meta["context"])
            yield
            yield from rec.tags.load_steps(arrays, meta["tags"], rec.model.user_ids)
        users = rec.model.user_ids
        gone = rec.dead_users
        seen, positives = rec.seen, rec.positives
        log_user, log_item, log_pos = arrays["log_user"], arrays["log_item"], arrays["log_pos"]
        for start in range(0, len(log_user), ROWS_PER_STEP):
            end = start + ROWS_PER_STEP
            for u_row, idx, pos in zip(log_user[start:end].tolist(), log_item[start:end].tolist(),
                                       log_pos[start:end].tolist()):
                if u_row < len(gone) and gone[u_row]:
                    continue
                user = users[u_row]
                seen.setdefault(user, {})[idx] = None
                if pos:
                    positives.setdefault(user, []).append(idx)
            yield
        for n, history in enumerate(positives.values(), 1):
            del history[: -rec.cooc.window]
            if n % ROWS_PER_STEP == 0:
                yield
        rec._log_user, rec._log_item, rec._log_pos = log_user.copy(), log_item.copy(), log_pos.copy()
        rec._log_n = len(rec._log_user)
        rec.positives_learned = meta.get("positives_learned", int(rec._log_pos.sum()))
        rec.evicted_users = meta.get("evicted_users", 0)
        rec.erased_users = meta.get("erased_users", 0)
        rec.refused_items = meta.get("refused_items", 0)
        if "activity_rows" in arrays:
            yield from rec.activity.load_steps(arrays, users)
        rec.recent = arrays["recent"].copy()
        rec.recent_count = meta["recent_count"]
        for n, (u, i, d) in enumerate(meta["pending"], 1):
            rec.pending[(u, i)] = d
            rec._shown.setdefault(u, {})[i] = None
            heapq.heappush(rec._expiry, (d, u, i))
            if n % ROWS_PER_STEP == 0:
                yield
        rec.clock = meta["clock"]
        rec.events_learned = meta["events_learned"]
        rec.last_event_id = meta["last_event_id"]
        if attributes:
            cat.build_index()  # now: restores that serve run in a thread, off the serving loop
        return rec

    def stats(self) -> dict:
        """Sizes of the learned state (for ``GET /model`` and no-growth tests)."""
        return {
            "items": len(self.catalogue),
            "users": len(self.seen),
            "model_users": self.model.n_users,
            "model_items": self.model.n_items,
            "pending_impressions": len(self.pending),
            "interactions": self._log_n,
            "cooc_entries": self.cooc.entries(),
        }


def _unpack_ids(text: np.ndarray, lengths: np.ndarray) -> Steps[list[str]]:
    """``arrays.unpack_ids`` as steps: the id list, sliced a block of rows at a time."""
    joined = text.tobytes().decode()
    ends = np.cumsum(lengths).tolist()
    out: list[str] = []
    for start in range(0, len(ends), ROWS_PER_STEP):
        block = ends[start: start + ROWS_PER_STEP]
        begin = ends[start - 1] if start else 0
        out.extend(joined[a:b] for a, b in zip([begin] + block[:-1], block))
        yield
    return out


def config_of(meta: dict) -> EngineConfig:
    """The ``EngineConfig`` a snapshot's metadata was learned with. Snapshots written before
    the snapshot policy and key prefix left ``EngineConfig`` still carry those fields: they
    are ignored."""
    known = EngineConfig.model_fields
    return EngineConfig(**{k: v for k, v in meta["config"].items() if k in known})
