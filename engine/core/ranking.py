"""Vectorised top-k selection over the whole catalogue."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the ``k`` best items, best first.

    Args:
        scores: float64 array (n,) of item scores; **modified in place** (excluded rows are
            set to -inf), so pass a scratch array.
        k: slate size (>= 1).
        exclude: int array of row indices that must not be returned (seen, hidden,
            per-request exclusions); duplicates are fine.

    Returns:
        (idx, score): int64 (m,) and float64 (m,), m <= k (fewer when fewer items are
        eligible), sorted by descending score. Cost: one O(n) comparison pass plus a
        partition of a few hundred candidates (see ``_candidates``) + O(k log k).
    """
    n = scores.shape[0]
    if exclude is not None and exclude.size:
        scores[exclude] = -np.inf
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if k < n:
        cand = _candidates(scores, k)
        if len(cand) > k:
            cand = cand[np.argpartition(scores[cand], len(cand) - k)[len(cand) - k:]]
    else:
        cand = np.arange(n)
    order = cand[np.argsort(-scores[cand], kind="stable")]
    top = scores[order]
    keep = np.isfinite(top)
    return order[keep], top[keep]


_CHUNK = 1 << 16  # rows scanned at a time for the rows tied at the threshold


def stride(n: int, k: int) -> int:
    """Subsample stride of the threshold pre-filter for the top ``k`` of ``n`` scores:
    about ``sqrt(n / k) / 2`` (a power of two in [4, 64]), which balances the partition of
    the ``n / stride`` sample against the ~``k * stride`` rows it keeps (measured at 100k
    scores: 64 for k = 10, 16 for k = 100, each ~2x faster than the other)."""
    target = max(1.0, (n / max(k, 1)) ** 0.5 / 2.0)
    return int(min(64, max(4, 2 ** round(np.log2(target)))))


def _candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows that certainly include the top ``k`` of ``scores`` (exact, not approximate).

    The k-th largest value t of every ``stride``-th score is a lower bound of the k-th
    largest score overall (those k subsample values are themselves scores), so every row of
    the true top k has a score >= t. Filtering on t keeps ~k x ``stride`` rows on untied
    data, and a partition of those replaces a partition of the whole catalogue (~3x faster
    than ``argpartition`` over 100k scores, measured: 0.05 against 0.16 ms). It returns the
    rows above t when there are at least k, else those and the lowest rows tied at t: then
    exactly k rows (ties at t go to the lower row), so a catalogue mostly tied at one score
    costs no partition of the ties. With few finite scores the filter keeps more rows, never
    fewer than needed.
    """
    step = stride(len(scores), k)
    sample = scores[::step]
    if len(sample) <= k:
        return np.arange(len(scores))
    t = np.partition(sample, len(sample) - k)[len(sample) - k]
    if not np.isfinite(t):
        return np.flatnonzero(scores > -np.inf) if t == -np.inf else np.arange(len(scores))
    above = np.flatnonzero(scores > t)
    if len(above) >= k:  # the top k are all above t
        return above
    # fewer than k above t: all of those and the lowest rows tied at t (found chunk by chunk:
    # e.g. every item the factor model never learned sits at 0; partitioning a million tied
    # scores cost 24 ms against ~1 ms untied, and picked arbitrary rows among them)
    need, parts = k - len(above), [above]
    for start in range(0, len(scores), _CHUNK):
        hit = np.flatnonzero(scores[start: start + _CHUNK] == t)[:need] + start
        parts.append(hit)
        need -= len(hit)
        if not need:
            break
    return np.sort(np.concatenate(parts))
