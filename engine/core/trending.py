"""What is trending now (``GET /trending``): items by decayed popularity at the model's
clock, optionally within a tag.

The decayed count is the model's own: for the ``blend`` ranker its trend
(``DecayedPopularity``, half-life ``trend_half_life_h``); for the ``learned`` ranker the
popularity bank's time-clock column whose half-life is nearest ``trend_half_life_h`` (log
scale; with the defaults the 24 h column; a bank without time columns: its first column).
Units: decayed positives (weighted by event type and trust) at the model's event clock.
Only items with a positive count are listed; hidden and deleted items never. Cost: one
O(n_items) pass and a top-k (``engine.core.ranking.top_k``). Creates no state.
"""

from __future__ import annotations

import math

import numpy as np

from engine.core.ranking import top_k


def decayed_counts(rec) -> np.ndarray:
    """Every item's decayed positive count now (float64 (n_items,), a fresh array)."""
    n = len(rec.catalogue)
    if not rec.learned:
        return rec.trend.decayed(rec.clock)[:n].copy() if rec.trend.n else np.zeros(n)
    bank = rec.bank
    if not bank.started or not bank.columns:
        return np.zeros(n)
    c = trend_column(bank.half_lives_s, rec.config.trend_half_life_h * 3600.0)
    clock = bank.clocks(rec.clock)[c]
    out = np.zeros(n)
    m = min(n, bank.n)
    out[:m] = bank.counts[:m, c] * math.exp(-bank.rates[c] * (clock - bank.ref[c]))
    return out


def trend_column(half_lives_s: tuple[float, ...], wanted_s: float) -> int:
    """The bank column that stands for "trending": the time column nearest ``wanted_s``
    (log scale), else column 0."""
    if not half_lives_s:
        return 0
    return int(np.argmin([abs(math.log(h / wanted_s)) for h in half_lives_s]))


def trending(rec, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most popular items now (rows, decayed counts), best first, within the bool
    mask ``allowed`` (n_items,) when given; only counts > 0."""
    counts = decayed_counts(rec)
    if not len(counts):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    counts[counts <= 0] = -np.inf
    if allowed is not None:
        counts[~allowed] = -np.inf
    return top_k(counts, k, rec.catalogue.hidden_idx)
