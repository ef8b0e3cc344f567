"""Drawing a slate from the ranked candidates under an exploration policy, with the
propensities that make the log an off-policy dataset, and the probabilities another policy
(a challenger, a candidate setting) would have given the same slate.

``draw`` ranks the user's candidates (``learned_ranking.scored_pool``; the whole catalogue
for the blend ranker), keeps the best ``explore_pool`` of them, then fills the slots with ``engine.core.exploration.draw_slate``
seeded by the recommendation id, so a decision reproduces from its log line (and, with a
challenger, from the challenger's pool for the request: ``policies.share`` of every slot is
drawn from its policy, ``engine.core.mixture``). Items shown
fewer than ``explore_new_impressions`` times count as new for the policy's new-item bonus.
``target`` computes, for a logged slate, each slot's probability under another model and
policy given the logged slots above it (``exploration.slot_probabilities``), and the
expectation of a reward model there (for doubly robust estimates); ``probabilities`` adds
the marginal probability of each logged item in its slot (for the position-based IIPS
estimator; ``exploration.logged_marginals``).
"""

from __future__ import annotations


import numpy as np

from engine.core import learned_ranking, ruled_slates
from engine.core.exploration import (GREEDY, ExplorationPolicy, draw_slate, logged_marginals, slot_expectations,
                                     slot_probabilities)
from engine.core.drawn import Drawn  # noqa: F401  (re-exported: callers import it from here)
from engine.core.mixture import ShadowPool, draw_mixture
from engine.core.rules import CompiledRules


def policy_of(config, override: dict | None = None) -> ExplorationPolicy:
    """The serving policy: the ``explore*`` settings of an ``EngineConfig``, overridden by a
    request's ``{"kind", "epsilon", "temperature", "new_item_bonus"}``.

    Raises:
        ValueError: an invalid kind or value (the API answers 422).
    """
    spec = {"kind": config.explore, "epsilon": config.explore_epsilon, "temperature": config.explore_temperature,
            "new_item_bonus": config.explore_new_bonus}
    spec.update({k: v for k, v in (override or {}).items() if v is not None})
    return ExplorationPolicy(**spec)


def _scored(rec, user: str, excluded: np.ndarray, context: dict | None,
            extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All the rows a slate for ``user`` could hold (the learned ranker's candidates plus
    ``extra``; the whole eligible catalogue for the blend) and the ranker's scores."""
    if rec.learned:
        return learned_ranking.scored_pool(rec, user, excluded, context, with_item=extra)
    scores = rec.scores(user)
    keep = np.ones(len(scores), dtype=bool)
    keep[excluded] = False
    pool = np.flatnonzero(keep)
    return pool, scores[pool]


def _best(rec, pool: np.ndarray, scores: np.ndarray, new_bonus: float) -> np.ndarray:
    """Sorted positions of the best ``explore_pool`` of ``pool`` by score + ``new_bonus``."""
    m = rec.config.explore_pool
    if len(pool) <= m:
        return np.arange(len(pool))
    ranked = scores + new_bonus * new_mask(rec, pool) if new_bonus else scores
    return np.sort(np.argpartition(-ranked, m - 1)[:m])


def pool_and_scores(rec, user: str, excluded: np.ndarray, context: dict | None,
                    new_bonus: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The rows a slate for ``user`` is drawn from and the ranker's scores of them: the
    ranker's best ``explore_pool`` candidates (sorted by row), ranked with ``new_bonus``
    added to new items (``new_mask``) so that a policy's cold-start bonus reaches items
    the ranker alone would leave out of the pool; the scores returned are the ranker's
    own (the policy adds its bonus when it draws)."""
    pool, scores = _scored(rec, user, excluded, context)
    best = _best(rec, pool, scores, new_bonus)
    return pool[best], scores[best]


def mixed_pool(rec, user: str, excluded: np.ndarray, context: dict | None, new_bonus: float,
               support: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pool_and_scores`` joined by the rows of ``support`` (another policy's pool, in
    ``rec``'s catalogue) that are not ``excluded``, all scored by ``rec``'s ranker: (rows
    sorted, scores, own) where ``own`` (bool) marks the best ``explore_pool`` of them by
    ``rec``'s ranking: ``pool_and_scores``' rows, unless a row of ``support`` that is not
    among ``rec``'s candidates scores among its best (the propensities stay exact either way)."""
    support = np.setdiff1d(np.asarray(support, dtype=np.int64), excluded)
    pool, scores = _scored(rec, user, excluded, context, support if len(support) else None)
    own = np.zeros(len(pool), dtype=bool)
    own[_best(rec, pool, scores, new_bonus)] = True
    keep = own | np.isin(pool, support)
    return pool[keep], scores[keep], own[keep]


def new_mask(rec, pool: np.ndarray) -> np.ndarray:
    """Which rows of ``pool`` are new (shown fewer than ``explore_new_impressions`` times)."""
    return rec.impressions[pool] < rec.config.explore_new_impressions


def draw(rec, user: str, k: int, excluded: np.ndarray, context: dict | None, policy: ExplorationPolicy,
         seed: int, rules: CompiledRules | None = None, shadow: ShadowPool | None = None) -> Drawn:
    """Draw ``k`` rows for ``user`` under ``policy`` (seeded by ``seed``); under a request's
    business ``rules`` (filters, diversity cap, promotions) through
    ``engine.core.ruled_slates.draw`` (``shadow`` is then ignored). With a challenger's
    ``shadow`` pool (``engine.core.mixture.ShadowPool``, ``share`` > 0) every slot is drawn
    from the per-slot mixture of ``policy`` over this pool and the challenger's policy over
    its pool (``engine.core.mixture``), and each propensity is the mixture's."""
    if rules is not None:
        return ruled_slates.draw(rec, user, k, excluded, context, policy, seed, rules)
    if shadow is not None and shadow.share > 0:
        return _draw_mixed(rec, user, k, excluded, context, policy, seed, shadow)
    pool, scores = pool_and_scores(rec, user, excluded, context, policy.new_item_bonus)
    if not len(pool):
        empty = np.zeros(0)
        return Drawn(pool.astype(np.int64), empty, empty, empty.astype(bool))
    new = new_mask(rec, pool) if policy.new_item_bonus else None
    if policy.kind == "none" and not policy.new_item_bonus:
        order = np.argsort(-scores, kind="stable")[:k]
        return Drawn(pool[order], scores[order], np.ones(len(order)), np.zeros(len(order), dtype=bool))
    d = draw_slate(scores, k, policy, seed, new)
    if d.at_best is not None and not policy.new_item_bonus:  # drawn from the ranker's own scores
        explored = ~d.at_best
    else:  # explored: the slot does not hold the ranker's greedy choice given the slots above it
        explored = slot_probabilities(scores, d.positions, GREEDY) < 0.5
    return Drawn(pool[d.positions], scores[d.positions], d.propensities, explored)


def _draw_mixed(rec, user: str, k: int, excluded: np.ndarray, context: dict | None, policy: ExplorationPolicy,
                seed: int, shadow: ShadowPool) -> Drawn:
    """``draw`` with a challenger's pool: the mixture over the union of both pools."""
    found = [rec.catalogue.get(i) for i in shadow.ids]
    known = np.array([r is not None for r in found], dtype=bool)
    rows = np.array([r for r in found if r is not None], dtype=np.int64)
    pool, scores, own = mixed_pool(rec, user, excluded, context, policy.new_item_bonus, rows)
    if not len(pool):
        empty = np.zeros(0)
        return Drawn(pool.astype(np.int64), empty, empty, empty.astype(bool))
    where = np.searchsorted(pool, rows)  # pool is sorted; rows excluded here are not in it
    inside = (where < len(pool)) & (pool[np.minimum(where, len(pool) - 1)] == rows)
    b_scores, b_pool = np.zeros(len(pool)), np.zeros(len(pool), dtype=bool)
    b_scores[where[inside]] = np.asarray(shadow.scores, dtype=np.float64)[known][inside]
    b_pool[where[inside]] = True
    b_new = None
    if shadow.new is not None:
        b_new = np.zeros(len(pool), dtype=bool)
        b_new[where[inside]] = np.asarray(shadow.new, dtype=bool)[known][inside]
    a_new = new_mask(rec, pool) if policy.new_item_bonus else None
    d = draw_mixture(scores, own, policy, b_scores, b_pool, shadow.policy, shadow.share, k, seed, a_new, b_new)
    return Drawn(pool[d.positions], scores[d.positions], d.propensities, ~d.at_best)


def target(rec, user: str, rows: np.ndarray, excluded: np.ndarray, context: dict | None,
           policy: ExplorationPolicy, rhat: np.ndarray | None = None, rules: CompiledRules | None = None,
           promoted: np.ndarray | None = None, scored: tuple[np.ndarray, np.ndarray] | None = None
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """For a logged slate (catalogue ``rows``, best slot first) served to ``user``: each
    slot's probability under ``rec`` and ``policy`` given the logged slots above it, and,
    with a reward model ``rhat`` (per slot, position-based), the policy's expected reward
    model value per slot. A logged item outside ``rec``'s candidates has probability 0.
    A slate served under business ``rules`` (``promoted``: its per-slot flags) is replayed
    under the same rules (``engine.core.ruled_slates.target``; no reward-model term).
    ``scored``: ``pool_and_scores(rec, user, excluded, context, policy.new_item_bonus)``
    when the caller has it already (the serving path computes it once per request)."""
    if rules is not None:
        flags = np.zeros(len(rows), dtype=bool) if promoted is None else np.asarray(promoted, dtype=bool)
        return ruled_slates.target(rec, user, rows, flags, excluded, context, policy, rules), None
    pool, scores = scored if scored is not None else pool_and_scores(rec, user, excluded, context,
                                                                     policy.new_item_bonus)
    index = {r: i for i, r in enumerate(pool.tolist())}
    positions = np.array([index.get(r, -1) for r in rows.tolist()], dtype=np.int64)
    if not len(pool):
        return np.zeros(len(rows)), None if rhat is None else np.zeros(len(rows))
    new = new_mask(rec, pool) if policy.new_item_bonus else None
    p = slot_probabilities(scores, positions, policy, new)
    if rhat is None:
        return p, None
    per_item = np.broadcast_to(rhat[None, :], (len(pool), len(rhat)))
    return p, slot_expectations(scores, positions, policy, per_item, new)


def probabilities(rec, user: str, rows: np.ndarray, excluded: np.ndarray, context: dict | None,
                  policy: ExplorationPolicy) -> tuple[np.ndarray, np.ndarray]:
    """For a logged slate (catalogue ``rows``, best slot first): each slot's probability
    under ``rec`` and ``policy`` given the logged slots above it (as ``target``) and its
    marginal probability, not given them (``exploration.logged_marginals``), from one
    scoring of the pool; (m,) each, 0 for a logged item outside ``rec``'s candidates."""
    pool, scores = pool_and_scores(rec, user, excluded, context, policy.new_item_bonus)
    if not len(pool):
        return np.zeros(len(rows)), np.zeros(len(rows))
    index = {r: i for i, r in enumerate(pool.tolist())}
    positions = np.array([index.get(r, -1) for r in rows.tolist()], dtype=np.int64)
    new = new_mask(rec, pool) if policy.new_item_bonus else None
    return (slot_probabilities(scores, positions, policy, new),
            logged_marginals(scores, positions, policy, new, seed=len(pool)))
