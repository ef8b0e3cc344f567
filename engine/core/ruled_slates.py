"""Filling a slate under a request's business rules (filters, diversity cap, promotions),
with exploration and exact propensities, and the probabilities another policy would give
the same slate under the same rules.

The slate is filled in two passes over the rows the rules allow (``CompiledRules.allowed``:
admitted by the filters, not hidden, seen or excluded):

1. **Promotions**, in request order: each gets its ``slots`` best allowed items of its set
   (greedy, deterministic: propensity 1.0, never explored); they count towards the cap.
2. **Organic slots** (``k`` minus the promoted ones), slot by slot under the serving policy
   (``engine.core.exploration``'s kinds, same distributions): at each slot the policy draws
   from the *available* pool, i.e. the best ``explore_pool`` allowed items by the ranker
   (``MaskedRanking``) minus those placed and those the cap blocks. When nothing in the pool is available any more, the pool is refilled with the
   next best allowed items the cap does not block, so a slate has ``k`` items whenever the
   allowed items hold ``k`` the cap admits together (greedy; see ``engine.core.diversity``).
   A slot's propensity is the probability of its item under the policy's distribution over
   that slot's available pool: exactly what could be drawn there, given the slots before it
   (the pool and the refills are deterministic given those slots).

Promoted items are then placed among the organic ones by score (each before the first
organic item that scores lower), so greedy slates are sorted by score. Both passes are
deterministic given the organic draws, so the product of the propensities is the slate's
probability.

``target`` replays a logged slate through the same procedure for another model and policy:
the logged promoted items are taken out of the pool first (their target probability is 1.0:
the business rule, not the policy, put them there), then each organic slot gets the
probability the policy gives the logged item given the logged items before it (0 when it is
not available there). A slate replayed on the model that served it gets its own propensities
back, to rounding (~1e-10: the factor feature is a float32 product whose last bits depend on
the batch of rows scored together).

Cost: one ``MaskedRanking`` pass (the unconstrained path's candidates and features) plus
O(slots x pool) numpy work.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.core.exploration import GREEDY, ExplorationPolicy
from engine.core.masked_ranking import MaskedRanking
from engine.core.rules import CompiledRules
from engine.core.diversity import TagCap
from engine.core.drawn import Drawn

Chooser = Callable[[int, np.ndarray, np.ndarray], tuple[int, int]]
"""``(slot, available rows, probabilities) -> (index into the available rows, row)``; the
index is ``-1`` when the row placed is not available (``target``: a logged row the policy
could not have drawn there; ``row`` -1: nothing to place)."""


def greedy_policy(policy: ExplorationPolicy) -> bool:
    """Whether ``policy`` always takes the best available item."""
    return (policy.kind == "none" or (policy.kind == "epsilon" and policy.epsilon == 0)) and not policy.new_item_bonus


def distribution(scores: np.ndarray, policy: ExplorationPolicy, new: np.ndarray | None = None) -> np.ndarray:
    """The policy's probabilities over the available items with ``scores`` (r,) (``new``:
    bool (r,), items that get ``new_item_bonus``): greedy one-hot on the first best, epsilon
    ``1 - eps + eps / r`` on it and ``eps / r`` elsewhere, softmax ``exp(s / T)``
    normalised (``engine.core.exploration``)."""
    s = scores if new is None or not policy.new_item_bonus else scores + policy.new_item_bonus * new
    r = len(s)
    best = int(np.argmax(s))
    if policy.kind == "softmax":
        e = np.exp((s - s[best]) / policy.temperature)
        return e / e.sum()
    eps = policy.epsilon if policy.kind == "epsilon" else 0.0
    p = np.full(r, eps / r)
    p[best] += 1.0 - eps
    return p


class _Fill:
    """One slate's state: the rows still allowed, the cap, and what was placed (rows,
    scores, propensities, explored flags, in placement order)."""

    def __init__(self, rec, ranking: MaskedRanking, allowed: np.ndarray, cap: TagCap | None) -> None:
        self.rec = rec
        self.ranking = ranking
        self.allowed = allowed
        self.cap = cap
        self.rows: list[int] = []
        self.scores: list[float] = []
        self.props: list[float] = []
        self.explored: list[bool] = []

    def place(self, row: int) -> None:
        """``row`` is in the slate: no longer allowed, counted by the cap."""
        self.allowed[row] = False
        if self.cap is not None:
            self.cap.place(row)

    def _open(self, mask: np.ndarray | None) -> np.ndarray:
        """Allowed rows (within ``mask``) the cap does not block."""
        out = self.allowed if mask is None else self.allowed & mask
        return out & ~self.cap.blocked if self.cap is not None else out

    def slots(self, n_slots: int, policy: ExplorationPolicy, pool_size: int, choose: Chooser | None = None,
              mask: np.ndarray | None = None) -> int:
        """Fill up to ``n_slots`` slots from the best ``pool_size`` open rows (within
        ``mask``), refilled when none is available; ``choose`` picks (None: greedy).
        Returns how many slots were filled."""
        rows, scores = self.ranking.best(self._open(mask), pool_size)
        greedy = greedy_policy(policy)
        if greedy and choose is None:
            return self._greedy(n_slots, rows, scores, pool_size, mask)
        live = np.ones(len(rows), dtype=bool)
        for j in range(n_slots):
            live &= self.allowed[rows]
            if self.cap is not None:
                live &= ~self.cap.blocked[rows]
            if not live.any():
                rows, scores = self.ranking.best(self._open(mask), pool_size)
                if not len(rows):
                    return j
                live = np.ones(len(rows), dtype=bool)
            avail = np.flatnonzero(live)
            s = scores[avail]
            best = int(np.argmax(s))
            if greedy:
                probs = None
            else:
                new = self.rec.impressions[rows[avail]] < self.rec.config.explore_new_impressions
                probs = distribution(s, policy, new)
            if choose is None:
                pick, row = best, int(rows[avail[best]])
            else:
                if probs is None:
                    probs = np.zeros(len(avail))
                    probs[best] = 1.0
                pick, row = choose(j, rows[avail], probs)
            if pick < 0:
                if row >= 0:
                    self._record(row, float("nan"), 0.0, True)
                continue
            self._record(row, float(s[pick]), 1.0 if probs is None else float(probs[pick]), pick != best)
        return n_slots

    def _greedy(self, n_slots: int, rows: np.ndarray, scores: np.ndarray, pool_size: int,
                mask: np.ndarray | None) -> int:
        """``slots`` for a greedy policy without a chooser: the first open row of the pool
        (best first) at every slot, the same choice as the general loop's argmax over the
        available rows (a row once closed stays closed), in one pass over the pool instead
        of a few numpy operations per slot."""
        filled = 0
        allowed, blocked = self.allowed, None if self.cap is None else self.cap.blocked
        while filled < n_slots and len(rows):
            before = filled
            for row, score in zip(rows.tolist(), scores.tolist()):
                if allowed[row] and (blocked is None or not blocked[row]):
                    self._record(row, score, 1.0, False)
                    filled += 1
                    if filled == n_slots:
                        return filled
            if filled == before:  # a refill holds open rows only: cannot happen, never loop
                break
            rows, scores = self.ranking.best(self._open(mask), pool_size)
        return filled

    def _record(self, row: int, score: float, prop: float, explored: bool) -> None:
        self.place(row)
        self.rows.append(row)
        self.scores.append(score)
        self.props.append(prop)
        self.explored.append(explored)


def _pool_size(rec, policy: ExplorationPolicy, n_slots: int) -> int:
    """Rows the organic pass draws from at once, the exploration pool (``explore_pool``;
    a slate with more slots refills it as it empties), whatever the policy, so a drawn slate
    and its replay (``target``) see the same pools."""
    return rec.config.explore_pool


def _promote(fill: _Fill, rules: CompiledRules, k: int) -> int:
    """Fill the promotions' slots (at most ``k`` in all), greedily; returns how many."""
    total = 0
    for mask, slots in rules.promotions:
        take = min(slots, k - total)
        if take <= 0:
            break
        total += fill.slots(take, GREEDY, take, None, mask)
    return total


def _merge(scores: list[float], n_promoted: int) -> tuple[list[int], list[bool]]:
    """Slot order of the placed items (the first ``n_promoted`` are promoted): organic
    items in draw order, each promoted item, in their sorted order, before the first
    organic item scoring lower. Returns (placement indices in slot order, promoted flags)."""
    promoted = sorted(range(n_promoted), key=lambda i: -scores[i])
    order, flags, p = [], [], 0
    for o in range(n_promoted, len(scores)):
        while p < len(promoted) and scores[promoted[p]] > scores[o]:
            order.append(promoted[p])
            flags.append(True)
            p += 1
        order.append(o)
        flags.append(False)
    for i in promoted[p:]:
        order.append(i)
        flags.append(True)
    return order, flags


def draw(rec, user: str, k: int, excluded: np.ndarray, context: dict | None, policy: ExplorationPolicy,
         seed: int, rules: CompiledRules):
    """Draw ``k`` rows for ``user`` in ``context`` under ``rules`` and ``policy`` (seeded
    by ``seed``; excluded: int rows never placed).

    Returns:
        ``engine.core.drawn.Drawn`` in slot order, with ``promoted`` flags; fewer than
        ``k`` slots only when the rules admit fewer items.
    """
    fill = _Fill(rec, MaskedRanking(rec, user, context), rules.allowed(excluded), rules.start_cap())
    n_promoted = _promote(fill, rules, k)
    rng = None  # the generator, built at the first exploring draw (a cold construction costs ~60 µs)

    def sample(j, rows, probs):
        nonlocal rng
        if rng is None:
            rng = np.random.default_rng(seed)
        i = min(int(np.searchsorted(np.cumsum(probs), rng.random(), side="right")), len(probs) - 1)
        return i, int(rows[i])

    n_organic = k - n_promoted
    if n_organic > 0:
        fill.slots(n_organic, policy, _pool_size(rec, policy, n_organic), None if greedy_policy(policy) else sample)
    order, flags = _merge(fill.scores, n_promoted)
    return Drawn(np.array([fill.rows[i] for i in order], dtype=np.int64),
                 np.array([fill.scores[i] for i in order]), np.array([fill.props[i] for i in order]),
                 np.array([fill.explored[i] for i in order], dtype=bool), np.array(flags, dtype=bool))


def target(rec, user: str, rows: np.ndarray, promoted: np.ndarray, excluded: np.ndarray, context: dict | None,
           policy: ExplorationPolicy, rules: CompiledRules) -> np.ndarray:
    """For a slate served under ``rules`` (catalogue ``rows`` in slot order, -1 for an item
    ``rec`` does not know; ``promoted``: bool flags per slot): each slot's probability
    under ``rec`` and ``policy`` given the logged slots before it; 1.0 for promoted slots
    (the rule, not the policy, placed them), 0 for an organic item the policy could not
    have drawn there.

    Returns:
        float64 (len(rows),).
    """
    fill = _Fill(rec, MaskedRanking(rec, user, context), rules.allowed(excluded), rules.start_cap())
    out = np.zeros(len(rows))
    slots = []
    for j, (row, is_promoted) in enumerate(zip(rows.tolist(), promoted.tolist())):
        if is_promoted:
            out[j] = 1.0
            if row >= 0:
                fill.place(row)
        else:
            slots.append((j, row))
    if not slots:
        return out

    def logged(i, avail_rows, probs):
        j, row = slots[i]
        hit = np.flatnonzero(avail_rows == row)
        if not len(hit):
            return -1, row
        out[j] = probs[hit[0]]
        return int(hit[0]), row

    fill.slots(len(slots), policy, _pool_size(rec, policy, len(slots)), logged)
    return out
