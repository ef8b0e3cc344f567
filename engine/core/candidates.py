"""Candidate generation: the few hundred items the learned ranker scores for a request.

Vectorised sources, each a cheap read of state the model keeps anyway:

* *trending*: the heads of the popularity bank's columns (``PopularityBank.head_items``);
* *co-occurring*: the ``per_source`` strongest co-occurrence neighbours of the user's last
  10 positives;
* *factors*: the ``per_source`` best BiasedMF scores over the whole catalogue (one float32
  matrix-vector product and a threshold top-k, ``engine.core.ranking.top_k``);
* *new*: the ``per_source`` items most recently added to the catalogue, so an item is
  recommendable before its first click.

Their union, minus the excluded rows, is what the ranker orders; so the cost of ranking no
longer grows with the catalogue beyond the factor scan. A catalogue of at most ``full_scan``
items is scored whole (exact, and what small deployments and tests see).
"""

from __future__ import annotations

import numpy as np

from engine.core.ranking import top_k


def candidates(rec, user: str, excluded: np.ndarray, per_source: int = 100, full_scan: int = 2000,
               factors: bool = True, allowed: np.ndarray | None = None, at_least: int = 0,
               factor_scores: np.ndarray | None = None) -> np.ndarray:
    """Sorted unique catalogue rows to rank for ``user``, none of them in ``excluded``
    (int array, duplicates fine).

    Args:
        rec: the ``Recommender`` (read only).
        user: user id (unknown users get trending, new and the best-biased items).
        excluded: rows that must not be returned (seen, hidden, per-request).
        per_source: items per personal source (co-occurrence, factors, new).
        full_scan: catalogues up to this size are returned whole.
        factors: include the factor-model source (a scan of the whole catalogue; the
            ranker's training lists leave it out).
        allowed: optional bool mask (n_items,) of the only rows that may be returned (a
            request's filters, ``engine.core.masked_ranking``): every source is restricted
            to it and the factor source takes the best ``max(per_source, at_least)`` allowed
            rows, so the pool holds at least ``min(at_least, allowed rows)`` rows however
            unpopular they are (a catalogue of at most ``full_scan`` items: every allowed row).
        at_least: see ``allowed``.
        factor_scores: the user's factor scores of every row (``FactorModel.scores``), when
            the caller already has them (saves the scan).
    """
    n = len(rec.catalogue)
    if n <= full_scan:
        pool = np.arange(n) if allowed is None else np.flatnonzero(allowed[:n])
    else:
        parts = [rec.bank.head_items(), np.arange(max(0, n - per_source), n)]
        history = rec.positives.get(user)
        if history:
            _, neighbour, weight = rec.cooc.neighbours(np.asarray(history[-10:], dtype=np.int64))
            if allowed is not None and len(neighbour):
                keep = allowed[neighbour]
                neighbour, weight = neighbour[keep], weight[keep]
            if len(neighbour):
                items, inverse = np.unique(neighbour, return_inverse=True)
                strength = np.bincount(inverse, weights=weight)
                if len(items) > per_source:
                    items = items[np.argpartition(strength, len(items) - per_source)[len(items) - per_source:]]
                parts.append(items)
        if factors:
            s = rec.model.scores(user, n) if factor_scores is None else factor_scores[:n].copy()
            if allowed is None:
                parts.append(top_k(s, per_source, excluded)[0])
            else:
                s[~allowed[:n]] = -np.inf
                parts.append(top_k(s, max(per_source, at_least), excluded)[0])
        pool = np.unique(np.concatenate(parts))
        if allowed is not None:
            pool = pool[allowed[pool]]
    if excluded.size:
        pool = pool[~np.isin(pool, excluded)]
    return pool
