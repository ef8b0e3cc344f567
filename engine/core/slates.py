"""Drawing a slate from the ranked candidates under an exploration policy, with the
propensities that make the log an off-policy dataset, and the probabilities another policy
(a challenger, a candidate setting) would have given the same slate.

``draw`` ranks the user's candidates (``learned_ranking.scored_pool``; the whole catalogue
for the blend ranker), keeps the best ``explore_pool`` of them, then fills the slots with ``engine.core.exploration.draw_slate``
seeded by the recommendation id, so a decision reproduces from its log line. Items shown
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


def pool_and_scores(rec, user: str, excluded: np.ndarray, context: dict | None,
                    new_bonus: float = 0.0, support: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rows a slate for ``user`` is drawn from and the ranker's scores of them: the
    ranker's best ``explore_pool`` candidates (sorted by row), ranked with ``new_bonus``
    added to new items (``new_mask``) so that a policy's cold-start bonus reaches items
    the ranker alone would leave out of the pool; the scores returned are the ranker's
    own (the policy adds its bonus when it draws).

    ``support`` (int rows of ``rec``'s catalogue, or None) joins the pool wherever not in
    ``excluded``: another policy's pool (a challenger's), so that every slate that policy
    can draw has a positive probability under an exploring policy drawing from this pool.
    That is the common-support condition of IPS-type estimators (Horvitz & Thompson 1952;
    Li et al. 2018, "Offline evaluation of ranking policies with click models"): without
    it the part of a challenger's value on items outside the champion's pool is missing
    from every off-policy estimate. The greedy slate is unchanged (the best ``k`` of the
    pool are among its best ``explore_pool``); an exploring draw spreads over the larger
    pool (at most ``explore_pool`` plus the other pool's size)."""
    if support is not None and len(support):
        support = np.setdiff1d(np.asarray(support, dtype=np.int64), excluded)
    else:
        support = None
    if rec.learned:
        pool, scores = learned_ranking.scored_pool(rec, user, excluded, context, with_item=support)
    else:
        scores = rec.scores(user)
        keep = np.ones(len(scores), dtype=bool)
        keep[excluded] = False
        pool = np.flatnonzero(keep)
        scores = scores[pool]
    m = rec.config.explore_pool
    if len(pool) > m:
        ranked = scores + new_bonus * new_mask(rec, pool) if new_bonus else scores
        best = np.argpartition(-ranked, m - 1)[:m]
        if support is not None:
            best = np.union1d(best, np.flatnonzero(np.isin(pool, support)))
        best = np.sort(best)
        pool, scores = pool[best], scores[best]
    return pool, scores


def new_mask(rec, pool: np.ndarray) -> np.ndarray:
    """Which rows of ``pool`` are new (shown fewer than ``explore_new_impressions`` times)."""
    return rec.impressions[pool] < rec.config.explore_new_impressions


def draw(rec, user: str, k: int, excluded: np.ndarray, context: dict | None, policy: ExplorationPolicy,
         seed: int, rules: CompiledRules | None = None, support: np.ndarray | None = None) -> Drawn:
    """Draw ``k`` rows for ``user`` under ``policy`` (seeded by ``seed``); under a request's
    business ``rules`` (filters, diversity cap, promotions) through
    ``engine.core.ruled_slates.draw`` (which ignores ``support``). ``support``: rows that
    join the pool (``pool_and_scores``); only an exploring policy draws them."""
    if rules is not None:
        return ruled_slates.draw(rec, user, k, excluded, context, policy, seed, rules)
    if policy.kind == "none" and not policy.new_item_bonus:
        support = None  # the greedy slate does not depend on it: no need to score it
    pool, scores = pool_and_scores(rec, user, excluded, context, policy.new_item_bonus, support)
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
    when the caller has it already (the serving path computes it once for the support)."""
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
