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

from engine.core.arrays import sum_by_key, without
from engine.core.features import recent_neighbours
from engine.core.ranking import top_k

COOC_SOURCE_HISTORY = 10  # the user's last positives whose co-occurrence neighbours are candidates


def candidates(rec, user: str, excluded: np.ndarray, per_source: int = 100, full_scan: int = 2000,
               factors: bool = True, allowed: np.ndarray | None = None, at_least: int = 0,
               factor_scores=None, cooc_hits: tuple | None = None, factor_rows: int | None = None,
               sample_key: int = 0) -> np.ndarray:
    """Sorted unique catalogue rows to rank for ``user``, none of them in ``excluded``
    (int array, duplicates fine).

    Args:
        rec: the ``Recommender`` (read only).
        user: user id (unknown users get trending, new and the best-biased items).
        excluded: rows that must not be returned (seen, hidden, per-request).
        per_source: items per personal source (co-occurrence, factors, new).
        full_scan: catalogues up to this size are returned whole.
        factors: include the factor-model source (a scan of the whole catalogue). Serving
            leaves it out when the serving ranker does not read the factor score
            (``Ranker.uses``): its items would be ranked by the other features only, which the
            other sources already cover. With ``allowed``, the factor source is still read
            when the other sources hold fewer than ``at_least`` allowed rows, so the
            guarantee below holds either way.
        allowed: optional bool mask (n_items,) of the only rows that may be returned (a
            request's filters, ``engine.core.masked_ranking``): every source is restricted
            to it and the factor source takes the best ``max(per_source, at_least)`` allowed
            rows, so the pool holds at least ``min(at_least, allowed rows)`` rows however
            unpopular they are (a catalogue of at most ``full_scan`` items: every allowed row).
        at_least: see ``allowed``.
        factor_scores: the user's factor scores of every row (``FactorModel.scores``), or a
            function returning them, when the caller has (or caches) them.
        cooc_hits: ``engine.core.features.recent_neighbours(rec, user)`` when the caller has
            it (read here otherwise); the source takes the neighbours of the last
            ``COOC_SOURCE_HISTORY`` positives.
        factor_rows: without ``allowed``, the factor source scores at most this many rows: a
            larger catalogue is scored on a systematic sample (every ``ceil(n /
            factor_rows)``-th row from an offset chosen by ``sample_key``), so its best
            ``per_source`` are among the best-scored items of the catalogue at a cost that
            stops growing with it (the learner's training lists, ``train_factor_rows``).
            None: the whole catalogue (serving).
        sample_key: a non-negative integer choosing the sample's offset (the stream position's
            hash, so a replay samples the same rows).
    """
    n = len(rec.catalogue)
    if n <= full_scan:
        pool = np.arange(n) if allowed is None else np.flatnonzero(allowed[:n])
    else:
        parts = [rec.bank.head_items(), np.arange(max(0, n - per_source), n)]
        history = rec.positives.get(user)
        if history:
            owner, neighbour, weight = recent_neighbours(rec, user) if cooc_hits is None else cooc_hits
            cut = int(np.searchsorted(owner, COOC_SOURCE_HISTORY))  # most recent first: a prefix
            neighbour, weight = neighbour[:cut], weight[:cut]
            if allowed is not None and len(neighbour):
                keep = allowed[neighbour]
                neighbour, weight = neighbour[keep], weight[keep]
            if len(neighbour):
                items, strength = sum_by_key(neighbour, weight)
                if len(items) > per_source:
                    items = items[np.argpartition(strength, len(items) - per_source)[len(items) - per_source:]]
                parts.append(items)
        pool = np.unique(np.concatenate(parts))
        if allowed is not None:
            pool = pool[allowed[pool]]
        pool = without(pool, excluded)
        if factors or (allowed is not None and len(pool) < at_least):
            if allowed is None and factor_rows is not None and n > factor_rows:
                best = sampled_factor_best(rec, user, n, per_source, excluded, factor_rows, sample_key)
                return np.union1d(pool, best)
            scores = factor_scores() if callable(factor_scores) else factor_scores  # the whole catalogue's
            if allowed is None:
                s = rec.model.scores(user, n) if scores is None else scores[:n].copy()
                best = top_k(s, per_source, excluded)[0]
            else:
                s = rec.model.scores(user, n) if scores is None else scores[:n]
                s = np.where(allowed[:n], s, -np.inf)  # one pass: a copy with the disallowed rows at -inf
                best = top_k(s, max(per_source, at_least), excluded)[0]
            pool = np.union1d(pool, best)
        return pool
    return without(pool, excluded)


def sampled_factor_best(rec, user: str, n: int, k: int, excluded: np.ndarray, rows: int, key: int) -> np.ndarray:
    """The ``k`` best rows by the factor model among a systematic sample of about ``rows`` of
    the catalogue's ``n`` rows (every ``ceil(n / rows)``-th row from offset ``key`` modulo the
    step), none in ``excluded``: int64 (<= k,), best first. Cost O(rows * factors)."""
    step = -(-n // rows)
    sample = np.arange(key % step, n, step)
    s = rec.model.item_scores(user, sample)
    drop = excluded[(excluded - sample[0]) % step == 0] if excluded.size else excluded
    idx = top_k(s, k, (drop - sample[0]) // step if drop.size else None)[0]
    return sample[idx]
