"""A slate drawn from a per-slot mixture of the champion's and the challenger's policies, so
the challenger's off-policy estimate has support and bounded weights.

With a challenger in shadow (``engine.core.champion``), each slot of a served slate is drawn
from

    mu_j(i) = (1 - share) * pi_champion(i | slots above) + share * pi_challenger(i | slots above)

where each policy's distribution is its own exploration policy over its own pool (the
champion's best ``explore_pool`` candidates, the challenger's likewise) without the items
already placed. Every item the challenger could put in slot ``j`` then has a logging
probability of at least ``share`` times the challenger's, so its per-slot importance weight
``pi_challenger / mu`` is at most ``1 / share`` (20 at the default 0.05): the mixture, or
"balanced", logging policy of Agarwal, Basu, Schnabel & Joachims (2017, *Effective
evaluation using logged bandit feedback from multiple loggers*, KDD), applied per slot. An
epsilon-greedy champion alone gives an item the challenger ranks first but the champion
ranks 40th a logging probability of about ``epsilon / 50`` (a weight of ~500), and none at
all to an item outside the champion's pool, whose share of the challenger's value no
estimate then sees.

The champion's greedy choice keeps at least ``1 - share`` of each slot, and the champion's
own on-policy click rate is measured on these mixed slates (so with a better challenger it
reads a little higher, with a worse one a little lower, than the champion alone would).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.core.exploration import ExplorationPolicy, SlateDraw, adjusted_scores, seeded_uniform


@dataclass(frozen=True)
class ShadowPool:
    """The challenger's side of a mixed draw for one request.

    Attributes:
        ids: item ids of the challenger's pool (its ``engine.core.slates.pool_and_scores``).
        scores: (len(ids),) the challenger's scores of them.
        policy: the challenger's exploration policy.
        new: (len(ids),) bool, the challenger's new items (for its new-item bonus), or None.
        share: probability that a slot is drawn from the challenger's policy, in [0, 1).
    """

    ids: list[str]
    scores: np.ndarray
    policy: ExplorationPolicy
    new: np.ndarray | None
    share: float


def draw_mixture(a_scores: np.ndarray, a_pool: np.ndarray, a_policy: ExplorationPolicy,
                 b_scores: np.ndarray, b_pool: np.ndarray, b_policy: ExplorationPolicy, share: float,
                 k: int, seed: int, a_new: np.ndarray | None = None, b_new: np.ndarray | None = None) -> SlateDraw:
    """Draw ``min(k, a_pool.sum())`` slots from the mixture (module docstring), reproducibly.

    Each slot first picks the policy (the challenger's when ``seeded_uniform(seed, j, 2) <
    share`` and its pool is not used up), then that policy's item (``_Side.pick``), and logs the
    mixture's probability of that item given the slots above: scalar work per slot over
    pools of a few dozen items, not (n,) arrays per slot.

    Args:
        a_scores, b_scores: (n,) finite scores of one index space (the union of both pools)
            under the champion (``a``) and the challenger (``b``); entries outside a
            policy's pool are ignored.
        a_pool, b_pool: (n,) bool, each policy's pool.
        a_policy, b_policy: each policy's exploration.
        share: the challenger's probability per slot, in [0, 1).
        k: slots wanted (>= 0).
        seed: a non-negative integer (``stable_hash(recommendation_id)``): the same inputs
            give the same slate.
        a_new, b_new: optional (n,) bool, items that get each policy's new-item bonus.

    Returns:
        ``SlateDraw``: positions (indices into the index space, best slot first), the
        propensity of each drawn item in its slot given the slots above (``mu_j``), their
        product, and ``at_best`` (the slot holds the champion's greedy choice).

    Raises:
        ValueError: ``k < 0``, a negative seed, ``share`` outside [0, 1), bad scores.
    """
    if k < 0 or seed < 0:
        raise ValueError(f"k and seed must be >= 0, not {k}, {seed}")
    if not 0.0 <= share < 1.0:
        raise ValueError(f"share must be in [0, 1), not {share}")
    a_pool, b_pool = np.asarray(a_pool, dtype=bool), np.asarray(b_pool, dtype=bool)
    a = _Side(adjusted_scores(a_scores, a_policy, a_new), a_pool, a_policy)
    b = _Side(adjusted_scores(np.where(b_pool, b_scores, 0.0), b_policy, b_new), b_pool, b_policy)
    chosen, props, at_best = [], [], []
    for j in range(min(k, len(a.free))):
        mixing = share if b.free else 0.0
        side = b if mixing and seeded_uniform(seed, j, 2) < mixing else a
        i = side.pick(seed, j)
        p = (1.0 - mixing) * a.probability(i) + (mixing * b.probability(i) if mixing else 0.0)
        chosen.append(i)
        props.append(p)
        at_best.append(i == a.best())
        a.remove(i)
        b.remove(i)
    return SlateDraw(np.array(chosen, dtype=np.int64), np.array(props), math.prod(props),
                     np.array(at_best, dtype=bool))


class _Side:
    """One policy's state while a mixed slate is drawn: its free items (ascending index),
    its ranking, and for softmax its scores (the weights ``exp((s - best free s) / T)`` are
    taken against the best *free* item at every slot, as ``slot_distribution`` does, so a
    low temperature cannot underflow every weight once the top items are placed)."""

    def __init__(self, s: np.ndarray, pool: np.ndarray, policy: ExplorationPolicy) -> None:
        idx = np.flatnonzero(pool)
        self.policy = policy
        self.free = idx.tolist()  # ascending, as np.flatnonzero
        self.is_free = dict.fromkeys(self.free, True)
        self.order = idx[np.argsort(-s[idx], kind="stable")].tolist()  # best first, lowest index on ties
        self.head = 0
        self.eps = policy.epsilon if policy.kind == "epsilon" else 0.0
        self.score = dict(zip(self.free, s[idx].tolist())) if policy.kind == "softmax" else {}
        self._weights: tuple[int, dict] | None = None  # (free count, weights) of the current slot

    def weights(self) -> dict[int, float]:
        """Softmax weights of the free items, relative to the best of them (max weight 1)."""
        if self._weights is None or self._weights[0] != len(self.free):
            top = self.score[self.best()]
            t = self.policy.temperature
            self._weights = (len(self.free), {i: math.exp((self.score[i] - top) / t) for i in self.free})
        return self._weights[1]

    def best(self) -> int:
        """The best free item (the greedy choice)."""
        while not self.is_free.get(self.order[self.head], False):
            self.head += 1
        return self.order[self.head]

    def pick(self, seed: int, j: int) -> int:
        """Slot ``j``'s item under this policy: softmax by inverse CDF on ``seeded_uniform(seed,
        j, 3)``; else the best free item, or with probability epsilon (``seeded_uniform(seed,
        j, 3) < epsilon``) the ``int(seeded_uniform(seed, j, 4) * free)``-th free one."""
        u = seeded_uniform(seed, j, 3)
        if self.policy.kind == "softmax":
            w = self.weights()
            target, acc = u * sum(w.values()), 0.0
            for i in self.free:
                acc += w[i]
                if acc > target:
                    return i
            return max(self.free, key=w.__getitem__)  # rounding past the end: the last item with mass
        if u < self.eps:
            n = len(self.free)
            return self.free[min(int(seeded_uniform(seed, j, 4) * n), n - 1)]
        return self.best()

    def probability(self, i: int) -> float:
        """This policy's probability of item ``i`` at the current slot (0 outside its free items)."""
        if not self.is_free.get(i, False):
            return 0.0
        if self.policy.kind == "softmax":
            w = self.weights()
            return w[i] / sum(w.values())
        return self.eps / len(self.free) + ((1.0 - self.eps) if i == self.best() else 0.0)

    def remove(self, i: int) -> None:
        """Item ``i`` is placed: no longer free (a no-op outside this pool)."""
        if self.is_free.get(i, False):
            self.is_free[i] = False
            self.free.remove(i)
