"""Per-context popularity: which items do well in this context (device, page, time of day)?

A request's ``context`` (``{"device": "mobile", "daypart": "morning"}``) is hashed, one
``key=value`` pair at a time, into ``buckets`` buckets; every positive that carried a
context counts for its item in each of its buckets. The ranker's feature ``ctx_lift`` is
how much more (log ratio) of the item's positives fall in the request's buckets than its
share overall, averaged over the request's pairs:

.. math::

    lift(i, c) = \\frac{1}{|c|} \\sum_{b \\in c} \\log \\frac{n_b(i) + 1/2}{N_b + 1/2}
                 - \\log \\frac{n(i) + 1/2}{N + 1/2}

with additive smoothing of half a positive, so an item never seen in a context is not
ruled out. Counts are all-time (the popularity bank carries the trends). Memory: ``buckets``
float32 counts per item (128 B per item at 32 buckets); collisions of pairs in one bucket
only blur the signal.
"""

from __future__ import annotations

import numpy as np

from engine.core.arrays import ensure_capacity
from engine.core.model import stable_hash

MAX_PAIRS = 8  # context pairs of one request that count


def bucket_ids(context: dict | None, buckets: int) -> list[int]:
    """The buckets of a context's ``key=value`` pairs (at most ``MAX_PAIRS``, sorted by key)."""
    if not context:
        return []
    pairs = sorted(context.items())[:MAX_PAIRS]
    return sorted({stable_hash(f"{k}={v}") % buckets for k, v in pairs})


class ContextPopularity:
    """All-time positive counts per (item, context bucket).

    Args:
        buckets: hash buckets for context pairs.
    """

    def __init__(self, buckets: int = 32) -> None:
        self.buckets = buckets
        self.counts = np.zeros((0, buckets), dtype=np.float32)
        self.items = np.zeros(0)  # positives with any context, per item
        self.total = np.zeros(buckets)
        self.total_all = 0.0
        self.n = 0

    def grow(self, n: int) -> None:
        if n > self.n:
            self.counts = ensure_capacity(self.counts, n)
            self.items = ensure_capacity(self.items, n)
            self.n = n

    def add(self, idx: int, context: dict | None, weight: float = 1.0) -> None:
        """Count a positive on ``idx`` in its context's buckets (nothing without context)."""
        ids = bucket_ids(context, self.buckets)
        if not ids:
            return
        self.grow(idx + 1)
        self.counts[idx, ids] += weight
        self.total[ids] += weight
        self.items[idx] += weight
        self.total_all += weight

    def lift(self, items: np.ndarray, context: dict | None) -> np.ndarray:
        """``ctx_lift`` of ``items`` in ``context`` (0 without context): (len(items),)."""
        ids = bucket_ids(context, self.buckets)
        if not ids or self.total_all == 0:
            return np.zeros(len(items))
        inside = np.log(self.counts[items][:, ids] + 0.5) - np.log(self.total[ids] + 0.5)
        overall = np.log(self.items[items] + 0.5) - np.log(self.total_all + 0.5)
        return inside.mean(axis=1) - overall

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        return ({"ctx_counts": self.counts[: self.n], "ctx_items": self.items[: self.n], "ctx_total": self.total},
                {"buckets": self.buckets, "total_all": self.total_all})

    def load(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        self.__init__(meta["buckets"])
        self.grow(len(arrays["ctx_items"]))
        self.counts[: len(arrays["ctx_counts"])] = arrays["ctx_counts"]
        self.items[: len(arrays["ctx_items"])] = arrays["ctx_items"]
        self.total = arrays["ctx_total"].copy()
        self.total_all = meta["total_all"]
