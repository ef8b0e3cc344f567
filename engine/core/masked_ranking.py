"""The serving ranker's best items within a mask of the catalogue, for one request, fetched
as a slate under business rules needs them.

``MaskedRanking.best(allowed, m)`` answers the ``m`` best rows of a bool mask ``allowed``
(n_items,) by the serving ranker, best first, as a function of the mask alone (the same mask
gives the same rows, whatever was asked before: a logged slate replays exactly,
``engine.core.ruled_slates.target``):

``learned``
    the candidates of ``allowed`` (``engine.core.candidates.candidates`` with ``allowed``:
    trending heads, co-occurrence and new items among the allowed rows, plus the best
    ``max(per_source, m)`` allowed rows by the factor model; every allowed row of a catalogue
    of at most ``full_scan_items``), scored by the ranker (``engine.core.learned_ranking``'s
    features and scores). So filtered-out candidates are replaced by eligible items however
    few and unpopular they are: ``best`` returns ``min(m, allowed rows)`` rows or more
    candidates to choose from.
``blend``
    the blend's scores of the whole catalogue, top ``m`` of the allowed rows
    (``engine.core.ranking.top_k``).

Per request, the user's blend scores (or factor scores) are computed once and reused by
every call, and so are the ranker's scores of the rows already scored (they do not depend on
the mask). Scores are the unconstrained path's (learned: ranker score + the deterministic
tie-breaker). Creates no model state.
"""

from __future__ import annotations

import numpy as np

from engine.core.candidates import COOC_SOURCE_HISTORY, candidates
from engine.core.features import features, serving_neighbours
from engine.core.ranking import top_k
from engine.core.trend import jitter as tie_breaker

_EMPTY = np.zeros(0, dtype=np.int64)


class MaskedRanking:
    """Best rows within a mask for one (user, context), by ``rec``'s serving ranker.

    Args:
        rec: the ``Recommender`` (read only).
        user, context: the request's.
    """

    def __init__(self, rec, user: str, context: dict | None = None) -> None:
        self.rec = rec
        self.user = user
        self.context = context
        self.n = len(rec.catalogue)
        self._blend: np.ndarray | None = None
        self._factor: np.ndarray | None = None
        self._hits: tuple | None = None  # the user's co-occurrence neighbours (``_cooc_hits``)
        self._hits_read = False
        self._rows = _EMPTY  # rows scored so far (sorted) and their scores
        self._scores = np.zeros(0)

    def best(self, allowed: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``m`` best rows of ``allowed`` (bool (n,)) and their scores, best first
        (ties: lower row first); fewer when fewer rows are allowed."""
        if m <= 0 or self.n == 0:
            return _EMPTY, np.zeros(0)
        rec = self.rec
        if not rec.learned:
            if self._blend is None:
                self._blend = rec.scores(self.user)
            return top_k(np.where(allowed, self._blend, -np.inf), m)
        c = rec.config
        pool = candidates(rec, self.user, _EMPTY, c.candidates_per_source, c.full_scan_items,
                          factors=rec.ranker.uses("factors"), allowed=allowed, at_least=m,
                          factor_scores=self._factor_scores, cooc_hits=self._cooc_hits())
        if not len(pool):
            return _EMPTY, np.zeros(0)
        scores = self._scored(pool)
        order = np.argsort(-scores, kind="stable")[:m]  # pool is sorted by row: ties keep the lower row first
        return pool[order], scores[order]

    def _factor_scores(self) -> np.ndarray:
        """The user's factor scores of every row, computed once per request."""
        if self._factor is None:
            self._factor = self.rec.model.scores(self.user, self.n)
        return self._factor

    def _cooc_hits(self) -> tuple | None:
        """The user's co-occurrence neighbours (``features.serving_neighbours``), read once per
        request."""
        if not self._hits_read:
            self._hits = serving_neighbours(self.rec, self.user, self.rec.ranker.serving_groups(), COOC_SOURCE_HISTORY)
            self._hits_read = True
        return self._hits

    def _scored(self, pool: np.ndarray) -> np.ndarray:
        """The ranker's scores of ``pool`` (sorted rows), scoring only rows not seen yet."""
        cached, cached_scores = self._rows, self._scores
        at = np.searchsorted(cached, pool)
        hit = at < len(cached)
        hit[hit] = cached[at[hit]] == pool[hit]
        out = np.empty(len(pool))
        out[hit] = cached_scores[at[hit]]
        new = pool[~hit]
        if len(new):
            rec = self.rec
            F = features(rec, self.user, new, self.context, cooc_hits=self._cooc_hits(),
                         groups=rec.ranker.serving_groups())
            fresh = rec.ranker.score(F) + tie_breaker(new)
            out[~hit] = fresh
            rows, scores = np.concatenate([cached, new]), np.concatenate([cached_scores, fresh])
            order = np.argsort(rows, kind="stable")
            self._rows, self._scores = rows[order], scores[order]
        return out
