"""Exponentially decayed popularity ("what is trending now") in event time."""

from __future__ import annotations

import math

import numpy as np

from engine.core.arrays import ensure_capacity

_REBASE_EXPONENT = 300.0  # rebase before exp() can overflow float64 (limit ~709)


class DecayedPopularity:
    """Per-item decayed click counts, with a cached log score for O(n)-free updates.

    The trend of item i at time t is ``sum_j w_j * 2 ** (-(t - t_j) / half_life)`` over its
    positives j. Counts are stored relative to a reference time ``t_ref`` so an update
    touches one entry; ``log_score`` holds ``log(count + eps)`` for every item and differs
    from the log of the true decayed count at any time only by a shift that is the same
    for all items, so it can be added to other per-item scores without changing the order
    of items. A tiny per-item jitter (< 1e-6) breaks ties among cold items, which would
    otherwise slow ``np.argpartition`` 10-30x.

    Args:
        half_life_s: half-life in seconds of event time (> 0).
        eps: floor added inside the log, in decayed clicks at ``t_ref``.
    """

    def __init__(self, half_life_s: float, eps: float = 1e-3) -> None:
        if half_life_s <= 0:
            raise ValueError("half_life_s must be > 0")
        self.rate = math.log(2.0) / half_life_s
        self.eps = eps
        self.t_ref: float | None = None
        self.counts = np.zeros(0)
        self.log_score = np.zeros(0)
        self.n = 0

    def grow(self, n: int) -> None:
        """Make room for ``n`` items; new items have zero count."""
        if n <= self.n:
            return
        self.counts = ensure_capacity(self.counts, n)
        self.log_score = ensure_capacity(self.log_score, n)
        new = np.arange(self.n, n)
        self.log_score[self.n:n] = math.log(self.eps) + jitter(new)
        self.n = n

    def add(self, idx: int, t: float, weight: float = 1.0) -> None:
        """Count ``weight`` clicks on item ``idx`` at event time ``t`` (unix s)."""
        self.grow(idx + 1)
        if self.t_ref is None:
            self.t_ref = t
        exponent = self.rate * (t - self.t_ref)
        if exponent > _REBASE_EXPONENT:
            self._rebase(t)
            exponent = 0.0
        self.counts[idx] += weight * math.exp(exponent)
        self.log_score[idx] = math.log(self.counts[idx] + self.eps) + jitter(idx)

    def decayed(self, t: float) -> np.ndarray:
        """True decayed counts of every item at time ``t``: shape (n,), float64."""
        if self.t_ref is None:
            return self.counts[: self.n].copy()
        return self.counts[: self.n] * math.exp(-self.rate * (t - self.t_ref))

    def _rebase(self, t: float) -> None:
        self.counts[: self.n] *= math.exp(-self.rate * (t - self.t_ref))
        self.t_ref = t
        self.log_score[: self.n] = np.log(self.counts[: self.n] + self.eps) + jitter(np.arange(self.n))

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays (views of the live ones) and JSON metadata for a snapshot."""
        return {"counts": self.counts[: self.n]}, {"t_ref": self.t_ref}

    def load(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Restore from ``state()`` output."""
        counts = arrays["counts"]
        self.n = 0
        self.counts = np.zeros(0)
        self.log_score = np.zeros(0)
        self.grow(len(counts))
        self.counts[: len(counts)] = counts
        self.t_ref = meta["t_ref"]
        self.log_score[: self.n] = np.log(self.counts[: self.n] + self.eps) + jitter(np.arange(self.n))


def jitter(idx):
    """Deterministic tie-breaker in [0, 1e-6) from the item's row index (Knuth hash); a
    float for an ``int`` (computed in Python integers, the same value), else an array."""
    if isinstance(idx, int):
        return ((idx * 2654435761) % 1_000_003) * 1e-12
    return ((np.asarray(idx, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(1_000_003)) * 1e-12
