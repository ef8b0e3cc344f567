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
        eligible), sorted by descending score. Cost: O(n) ``argpartition`` + O(k log k).
    """
    n = scores.shape[0]
    if exclude is not None and exclude.size:
        scores[exclude] = -np.inf
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if k < n:
        cand = np.argpartition(scores, n - k)[n - k:]
    else:
        cand = np.arange(n)
    order = cand[np.argsort(-scores[cand], kind="stable")]
    top = scores[order]
    keep = np.isfinite(top)
    return order[keep], top[keep]
