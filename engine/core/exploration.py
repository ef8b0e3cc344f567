"""Exploration policies for a slate drawn from a scored candidate pool, with the
propensities off-policy evaluation needs (``engine.core.ope``).

A policy fills the ``k`` slots of a slate one at a time, best slot first, from the items
not placed yet (the *remaining* pool). At each slot it draws from a distribution over the
remaining items; the **propensity** of a slot is the probability of the item it holds under
that distribution, i.e. *given the items in the slots before it* (a conditional, not a
marginal probability). The slate's propensity is their product, the probability of the
whole ordered slate.

Kinds (``ExplorationPolicy.kind``):

``none``
    greedy: the best remaining item (ties: the lowest pool index). Propensities are 1.
``epsilon``
    per slot, with probability ``epsilon`` an item drawn uniformly from the remaining pool
    (the best remaining one included), otherwise the best remaining item: the best gets
    ``1 - epsilon + epsilon / r``, every other remaining item ``epsilon / r`` (``r`` items
    remain).
``softmax``
    Plackett-Luce (Plackett 1975, Luce 1959) sampling without replacement over
    ``scores / temperature``: ``P(i | remaining) = exp(s_i / T) / sum_remaining exp(s_j / T)``.
    Drawn with the Gumbel-top-k trick (Yellott 1977; Kool, van Hoof & Welling, ICML 2019):
    the ``k`` largest of ``s / T + Gumbel noise`` are a Plackett-Luce sample, in order.

Every kind first adds ``new_item_bonus`` to the scores of the items flagged ``new`` (cold
start: new items get drawn, and their probabilities stay exact).

A draw is a pure function of ``(scores, k, policy, seed, new)``: the serving path seeds it
with ``stable_hash(recommendation_id)`` so a logged decision reproduces exactly (an
epsilon-greedy slot's coin and pick are ``seeded_uniform(seed, slot, 0 | 1)``, SplitMix64
in plain Python: constructing a NumPy generator per request cost 57-78 µs of a cold
serving path against 8 µs in a tight loop; softmax draws its Gumbel noise from
``np.random.default_rng(seed)``), and the
target probabilities of another policy are computed from the same scores by
``slot_probabilities`` / ``slot_expectations``.

Cost: ``O(k * n)`` time and memory for the probabilities (one row of ``n`` per slot): meant
for a candidate pool of a few hundred items, not a whole 100k catalogue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.core.arrays import splitmix64

MIN_TEMPERATURE = 1e-6
"""Smallest softmax temperature (score units): scores are O(1), so scores / T stays finite."""

KINDS = ("none", "epsilon", "softmax")


@dataclass(frozen=True)
class ExplorationPolicy:
    """How a slate explores (see the module docstring for the distributions).

    Attributes:
        kind: ``"none"`` (greedy), ``"epsilon"`` or ``"softmax"`` (Plackett-Luce).
        epsilon: per-slot exploration probability in [0, 1] (``epsilon`` only).
        temperature: >= ``MIN_TEMPERATURE`` (1e-6), score units; lower is greedier
            (``softmax`` only; below 1e-6 scores / temperature could overflow).
        new_item_bonus: score units added to items flagged new before drawing (every kind).

    Raises:
        ValueError: an unknown kind, ``epsilon`` outside [0, 1], a temperature < 1e-6 or a
            non-finite bonus.
    """

    kind: Literal["none", "epsilon", "softmax"] = "none"
    epsilon: float = 0.0
    temperature: float = 1.0
    new_item_bonus: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], not {self.epsilon}")
        if not (self.temperature >= MIN_TEMPERATURE and np.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a finite number >= {MIN_TEMPERATURE:g}, not {self.temperature}")
        if not np.isfinite(self.new_item_bonus):
            raise ValueError("new_item_bonus must be finite")


GREEDY = ExplorationPolicy()


@dataclass(frozen=True)
class SlateDraw:
    """One drawn slate.

    Attributes:
        positions: (m,) int64 indices into the pool, best slot first; ``m = min(k, n)``.
        propensities: (m,) float64, probability of each slot's item given the slots before it.
        slate_propensity: their product (probability of the ordered slate).
        at_best: (m,) bool, whether each slot holds the best remaining item by the scores the
            slate was drawn with (the greedy choice given the slots before it), or None when
            the draw did not compute it (softmax).
    """

    positions: np.ndarray
    propensities: np.ndarray
    slate_propensity: float
    at_best: np.ndarray | None = None


def adjusted_scores(scores: np.ndarray, policy: ExplorationPolicy, new: np.ndarray | None = None) -> np.ndarray:
    """``scores`` (n,) as float64 plus ``policy.new_item_bonus`` where ``new`` (n,) bool is set.

    Raises:
        ValueError: ``scores`` is not 1-D or has a NaN or infinite entry; ``new`` has another shape.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D (n,), got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite (drop ineligible items from the pool instead)")
    if new is not None:
        flags = np.asarray(new, dtype=bool)
        if flags.shape != s.shape:
            raise ValueError(f"new must have the shape of scores {s.shape}, got {flags.shape}")
        if policy.new_item_bonus and flags.any():
            s = s + policy.new_item_bonus * flags
    return s


def slot_distribution(scores: np.ndarray, logged_positions: np.ndarray, policy: ExplorationPolicy,
                      new: np.ndarray | None = None) -> np.ndarray:
    """The policy's distribution over the pool at each slot, given the logged items before it.

    Args:
        scores: (n,) finite scores of the pool (higher is better).
        logged_positions: (m,) pool indices of the logged slate, best slot first. ``-1``
            marks a logged item that is not in this pool (the policy could not show it: its
            probability is 0 and it removes nothing from the pool).
        policy: the policy whose distribution is wanted.
        new: optional (n,) bool, items that get ``policy.new_item_bonus``.

    Returns:
        (m, n) float64: row ``j`` is the probability of each pool item at slot ``j`` given
        the logged items at slots ``< j``; it sums to 1 over the items not in that prefix
        (0 on them), or is all 0 once the pool is exhausted.

    Raises:
        ValueError: bad scores (``adjusted_scores``), positions not 1-D, out of range or repeated.
    """
    s = adjusted_scores(scores, policy, new)
    n = len(s)
    if np.ndim(logged_positions) != 1:
        raise ValueError("logged_positions must be 1-D (m,)")
    pos = np.asarray(logged_positions, dtype=np.int64)
    if np.any((pos < -1) | (pos >= n)):
        raise ValueError(f"logged_positions must be pool indices in [0, {n}) or -1")
    inside = pos[pos >= 0]
    if len(np.unique(inside)) != len(inside):
        raise ValueError("logged_positions repeat an item")
    m = len(pos)
    taken = np.zeros((m, n), dtype=bool)  # taken[j] = items in the logged prefix before slot j
    for j in range(1, m):
        taken[j] = taken[j - 1]
        if pos[j - 1] >= 0:
            taken[j, pos[j - 1]] = True
    remaining = ~taken
    r = remaining.sum(axis=1)
    probs = np.zeros((m, n))
    live = r > 0
    if policy.kind == "softmax":
        # the best remaining score subtracted before dividing: every logit is <= 0 (no overflow)
        top = np.max(np.where(remaining, s, -np.inf), axis=1, initial=-np.inf)
        top = np.where(live, top, 0.0)
        logits = np.where(remaining, (s - top[:, None]) / policy.temperature, -np.inf)
        e = np.exp(logits)
        probs[live] = e[live] / e[live].sum(axis=1, keepdims=True)
        return probs
    eps = policy.epsilon if policy.kind == "epsilon" else 0.0
    best = np.argmax(np.where(remaining, s, -np.inf), axis=1)  # first maximum: lowest index on ties
    probs[live] = np.where(remaining[live], eps / r[live, None], 0.0)
    rows = np.flatnonzero(live)
    probs[rows, best[rows]] += 1.0 - eps
    return probs


def slot_probabilities(scores: np.ndarray, logged_positions: np.ndarray, policy: ExplorationPolicy,
                       new: np.ndarray | None = None) -> np.ndarray:
    """(m,) probability that ``policy`` puts the logged item in each logged slot, given the
    logged items before it: the target probabilities of off-policy evaluation
    (``engine.core.ope.LoggedSlates.target``). A greedy policy gives 0 or 1. An index of
    ``-1`` (logged item not in this pool) gets 0. Arguments and errors as ``slot_distribution``.
    """
    probs = slot_distribution(scores, logged_positions, policy, new)
    pos = np.asarray(logged_positions, dtype=np.int64).reshape(-1)
    out = np.zeros(len(pos))
    ok = pos >= 0
    out[ok] = probs[np.flatnonzero(ok), pos[ok]]
    return out


def slot_expectations(scores: np.ndarray, logged_positions: np.ndarray, policy: ExplorationPolicy,
                      rhat: np.ndarray, new: np.ndarray | None = None) -> np.ndarray:
    """(m,) expected reward-model value of ``policy``'s choice at each logged slot, given the
    logged items before it: ``sum_i P_j(i) * rhat[i]`` (the direct-method term of the doubly
    robust estimator, ``engine.core.ope.LoggedSlates.target_rhat``).

    Args:
        rhat: the reward model's prediction (e.g. click probability) for every pool item,
            (n,) the same at every slot or (n, m) one column per slot (position effects).
        Others: as ``slot_distribution``.

    Raises:
        ValueError: as ``slot_distribution``, or ``rhat`` has neither shape (n,) nor (n, m).
    """
    probs = slot_distribution(scores, logged_positions, policy, new)
    m, n = probs.shape
    q = np.asarray(rhat, dtype=np.float64)
    if q.shape == (n,):
        return probs @ q
    if q.shape == (n, m):
        return np.einsum("jn,nj->j", probs, q)
    raise ValueError(f"rhat must have shape ({n},) or ({n}, {m}), got {q.shape}")


def draw_slate(scores: np.ndarray, k: int, policy: ExplorationPolicy, seed: int,
               new: np.ndarray | None = None) -> SlateDraw:
    """Draw a slate of ``min(k, n)`` items from the pool with ``policy``, reproducibly.

    Args:
        scores: (n,) finite scores of the pool (higher is better).
        k: slots wanted (>= 0).
        policy: how to explore.
        seed: a non-negative integer (any size, e.g. ``stable_hash(recommendation_id)``):
            the same seed and inputs give the same slate and propensities.
        new: optional (n,) bool, items that get ``policy.new_item_bonus``.

    Returns:
        ``SlateDraw``; ``propensities`` equal ``slot_probabilities(scores, positions, policy, new)``.

    Raises:
        ValueError: ``k < 0``, a negative seed or bad scores (``adjusted_scores``).
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, not {k}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    s = adjusted_scores(scores, policy, new)
    m = min(k, len(s))
    if policy.kind == "softmax":
        rng = np.random.default_rng(seed)
        keys = s / policy.temperature + rng.gumbel(size=len(s))
        positions = np.argsort(-keys, kind="stable")[:m]
    elif policy.kind == "epsilon" and policy.epsilon > 0:
        return _draw_epsilon(s, m, policy.epsilon, seed)
    else:
        positions = np.argsort(-s, kind="stable")[:m]
    positions = positions.astype(np.int64)
    props = slot_probabilities(s, positions, ExplorationPolicy(policy.kind, policy.epsilon, policy.temperature))
    return SlateDraw(positions, props, float(np.prod(props)))


_TWO_POW_MINUS_53 = 2.0 ** -53


def seeded_uniform(seed: int, slot: int, stream: int) -> float:
    """A uniform draw in [0, 1) keyed by ``(seed, slot, stream)``: the top 53 bits of
    ``engine.core.arrays.splitmix64`` (SplitMix64, Steele, Lea & Flood, OOPSLA 2014), so
    every slot's draws are a pure function of the recommendation id's seed, in any order,
    without building a generator (the epsilon-greedy serving path; ``_draw_epsilon``).

    >>> seeded_uniform(7, 0, 0) == seeded_uniform(7, 0, 0) != seeded_uniform(7, 1, 0)
    True
    """
    return (splitmix64(seed, slot, stream) >> 11) * _TWO_POW_MINUS_53


def _draw_epsilon(s: np.ndarray, m: int, eps: float, seed: int) -> SlateDraw:
    """``draw_slate`` for epsilon-greedy over adjusted scores ``s`` (n,): at slot ``j`` an
    exploring pick (when ``seeded_uniform(seed, j, 0) < eps``) is uniform over the ``n - j``
    remaining items (the ``int(seeded_uniform(seed, j, 1) * (n - j))``-th in ascending
    pool index), else the best remaining one, so the drawn item's propensity is
    ``eps / (n - j) + (1 - eps)`` when it is the best remaining item and ``eps / (n - j)``
    otherwise: the closed form of ``slot_probabilities`` (the same floating-point
    operations, the same values), computed during the draw instead of from (m, n) matrices."""
    n = len(s)
    order = np.argsort(-s, kind="stable").tolist()  # best first, lowest index on ties
    left = [True] * n  # a Python list: the loop reads single entries (a pool is ~50 items)
    chosen, props, at_best = [], [], []
    head = 0  # order[head] is the best remaining item
    for j in range(m):
        while not left[order[head]]:
            head += 1
        best = order[head]
        if seeded_uniform(seed, j, 0) < eps:
            remaining = [r for r, free in enumerate(left) if free]  # ascending, as np.flatnonzero
            i = remaining[min(int(seeded_uniform(seed, j, 1) * len(remaining)), len(remaining) - 1)]
        else:
            i = best
        left[i] = False
        chosen.append(i)
        p = eps / (n - j)
        props.append(p + (1.0 - eps) if i == best else p)
        at_best.append(i == best)
    return SlateDraw(np.array(chosen, dtype=np.int64), np.array(props), math.prod(props),
                     np.array(at_best, dtype=bool))


def logged_marginals(scores: np.ndarray, logged_positions: np.ndarray, policy: ExplorationPolicy,
                     new: np.ndarray | None = None, samples: int = 4000, seed: int = 0) -> np.ndarray:
    """(m,) *marginal* probability that ``policy`` puts each logged item in the slot it was
    logged in (not conditional on the slots above): the propensities of the
    position-based ("independent") slate estimator IIPS (Li, Kim, Kveton, Muthukrishnan,
    Vinay & Wen 2018, *Offline evaluation of ranking policies with click models*, KDD;
    ``engine.core.ope``'s ``slot`` variant fed with marginals), unbiased when a click
    depends only on the item and its slot, with weights far less extreme than prefix or
    whole-slate products.

    Exact for ``none`` (1 where the slot holds the item of that rank, else 0) and
    ``epsilon``: a dynamic programme per logged item over "how many of the items ranked
    above it are placed" (the greedy pick is the best remaining item; an exploring pick is
    uniform over the remaining ones, so only that count matters), ``O(m^3)`` for ``m``
    slots. ``softmax`` (Plackett-Luce) has no closed form: ``samples`` Gumbel-top-k draws
    seeded by ``seed`` (unbiased, fine for a *target*; as logging propensities an estimate
    in the denominator is not). An index of ``-1`` (not in this pool) gets 0.

    Raises:
        ValueError: as ``slot_distribution``; ``samples < 1``.
    """
    s = adjusted_scores(scores, policy, new)
    n = len(s)
    pos = np.asarray(logged_positions, dtype=np.int64).reshape(-1)
    if np.any((pos < -1) | (pos >= n)):
        raise ValueError(f"logged_positions must be pool indices in [0, {n}) or -1")
    m = len(pos)
    out = np.zeros(m)
    ok = pos >= 0
    if not ok.any():
        return out
    if policy.kind == "softmax":
        if samples < 1:
            raise ValueError("samples must be >= 1")
        rng = np.random.default_rng(seed)
        keys = s[None, :] / policy.temperature + rng.gumbel(size=(samples, n))
        top = np.argsort(-keys, axis=1, kind="stable")[:, :m]
        slots = np.flatnonzero(ok)
        out[slots] = (top[:, slots] == pos[slots][None, :]).mean(axis=0)
        return out
    eps = policy.epsilon if policy.kind == "epsilon" else 0.0
    order = np.argsort(-s, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)  # items ranked above each item
    slots = np.flatnonzero(ok)
    r = rank[pos[slots]][:, None]
    if eps == 0.0:
        out[slots] = (r[:, 0] == slots).astype(np.float64)
        return out
    b = np.arange(m + 1)[None, :]
    valid = b <= r
    state = np.zeros((len(slots), m + 1))  # [item, b]: P(item remains, b of the r items above it placed)
    state[:, 0] = 1.0
    for j in range(int(slots.max()) + 1):
        remaining = n - j
        here = slots == j
        if here.any():
            out[j] = (state[here] * ((1.0 - eps) * (b == r[here]) + eps / remaining)).sum()
        up = np.where(valid, (1.0 - eps) * (b < r) + eps * (r - b) / remaining, 0.0)
        stay = np.where(valid, np.clip(eps * (remaining - (r - b) - 1) / remaining, 0.0, None), 0.0)
        nxt = state * stay
        nxt[:, 1:] += (state * up)[:, :-1]
        state = nxt
    return out
