"""The learned ranking path: candidates -> features -> the River ranker, for a slate, and the
list the ranker learns from when a user acts.

Serving (``rank``): ``engine.core.candidates`` picks the rows, ``features`` describes them,
``Ranker.score`` (the serving candidate ranker) orders them, ``top_k`` takes the best ``k``.

Learning (``learn``): for a positive on item ``i`` by user ``u``, *before* the event is
applied (so the features are the ones a slate served at that moment would have used): the
list is the candidates a slate for ``u`` would have been drawn from (what ``u`` was shown,
and did not click, is among them when it is still eligible) plus ``i``, and every candidate
ranker is judged on it, then takes one listwise step towards ranking ``i`` first
(``Ranker.learn_list``). The rows the scaler
learns from are drawn by stream position, so a replay learns exactly the same.
"""

from __future__ import annotations

import numpy as np

from engine.core.arrays import splitmix64
from engine.core.candidates import COOC_SOURCE_HISTORY, candidates
from engine.core.features import features, recent_neighbours, serving_neighbours
from engine.core.ranking import top_k
from engine.core.trend import jitter as tie_breaker  # deterministic per item, < 1e-6

SCALER_ROWS = 3  # list rows besides the positive that the scaler learns from, per step


def scored_pool(rec, user: str, excluded: np.ndarray, context: dict | None = None,
                with_item: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The candidates for ``user`` in ``context`` (sorted rows, none in ``excluded``) and
    the serving ranker's scores of them (plus a deterministic tie-breaker < 1e-6).
    ``with_item`` (a row, or an int array of rows) is added to the candidates (the guard
    asks where a given item would rank; a mixed draw scores the challenger's pool too)."""
    c = rec.config
    groups = rec.ranker.serving_groups()
    hits = serving_neighbours(rec, user, groups, COOC_SOURCE_HISTORY)
    pool = candidates(rec, user, excluded, c.candidates_per_source, c.full_scan_items,
                      factors=rec.ranker.uses("factors"), cooc_hits=hits)
    if with_item is not None:
        extra = np.atleast_1d(np.asarray(with_item, dtype=np.int64))
        extra = extra[~np.isin(extra, pool)]
        if len(extra):
            pool = np.union1d(pool, extra)
    if not len(pool):
        return pool, np.zeros(0)
    F = features(rec, user, pool, context, cooc_hits=hits, groups=groups)
    return pool, rec.ranker.score(F) + tie_breaker(pool)


def rank(rec, user: str, excluded: np.ndarray, k: int, context: dict | None = None,
         with_item: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` (rows, scores) for ``user`` in ``context``, best first, none in
    ``excluded`` (``scored_pool`` then ``top_k``)."""
    pool, scores = scored_pool(rec, user, excluded, context, with_item)
    if not len(pool):
        return pool.astype(np.int64), scores
    idx, top = top_k(scores, k)
    return pool[idx], top


def should_learn(rec) -> bool:
    """Whether the positive at this stream position is one the ranker learns from
    (``ranker_sample`` of them, chosen by a hash of the position)."""
    c = rec.config
    return c.ranker_sample >= 1.0 or splitmix64(c.seed, rec.events_learned, 7) < c.ranker_sample * 2.0**64


def training_list(rec, user: str, positive: int, cooc_hits: tuple | None = None) -> np.ndarray:
    """Rows of the list a positive on ``positive`` is learned against, the positive first.

    A click on an item the user was shown (a pending impression) is learned against the
    other items shown and not clicked: which of what we showed did the user pick. That list
    does not depend on what the ranker chose to show (the choice is the same for all its
    rows), so learning from it does not feed the ranker's own preferences back to itself.
    Any other positive (organic: search, browsing, a replayed log) is learned against the
    candidates a slate would have been drawn from (``candidate_list``)."""
    shown = [j for j in rec.shown_to(user) if j != positive]
    if shown and positive in rec.shown_to(user):
        return np.array([positive, *shown], dtype=np.int64)
    return candidate_list(rec, user, positive, cooc_hits)


def candidate_list(rec, user: str, positive: int, cooc_hits: tuple | None = None) -> np.ndarray:
    """Rows of the list a positive on ``positive`` is learned against: the positive first,
    then up to ``ranker_list - 1`` of the candidates a slate for ``user`` would have been
    drawn from (all of them when fewer; else a uniform sample drawn by stream position: a
    sampled softmax, whose uniform proposal needs no correction; the factor-model source
    included: training lists without it lost ~0.6 points of HR@10 on MovieTweetings; on a
    catalogue of more than ``train_factor_rows`` items it scores a sample of that many rows,
    drawn by stream position, so a step's cost is bounded), and the items the user was
    shown and did not click."""
    c = rec.config
    pool = candidates(rec, user, rec.excluded(user), c.candidates_per_source, c.full_scan_items,
                      cooc_hits=cooc_hits, factor_rows=c.train_factor_rows,
                      sample_key=splitmix64(c.seed, rec.events_learned, 11))
    pool = pool[pool != positive]
    room = c.ranker_list - 1
    if len(pool) > room:
        rng = np.random.default_rng(splitmix64(c.seed, rec.events_learned, 9))
        pool = pool[np.sort(rng.choice(len(pool), room, replace=False))]
    in_pool = set(pool.tolist())
    shown = [j for j in rec.shown_to(user) if j != positive and j not in in_pool]
    return np.concatenate([[positive], pool, shown]).astype(np.int64)


def learn(rec, user: str, positive: int, context: dict | None = None, weight: float = 1.0) -> None:
    """One listwise step for a positive (seen in ``context``), its gradient scaled by
    ``weight`` (the guard's trust damping: a sybil's click teaches the ranker a quarter of
    a trusted one); call it before applying the positive."""
    hits = recent_neighbours(rec, user)
    rows = training_list(rec, user, positive, hits)
    if len(rows) < 2:
        return
    F = features(rec, user, rows, context, cooc_hits=hits)
    others = [1 + splitmix64(rec.config.seed, rec.events_learned, 100 + n) % (len(rows) - 1)
              for n in range(SCALER_ROWS)]
    rec.ranker.learn_list(F, 0, np.array([0, *others]), weight)
