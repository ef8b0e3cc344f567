"""Ranking metrics for one held-out item (prequential evaluation)."""

from __future__ import annotations

import math


def hit_and_ndcg(ranked: list[str], target: str, k: int = 10) -> tuple[float, float]:
    """HR@k and NDCG@k of a single relevant ``target`` in ``ranked`` (best first).

    HR@k = 1 if the target is in the top k; NDCG@k = 1 / log2(rank + 1) with 1-based rank
    (the ideal DCG of one relevant item is 1). Returns (hit, ndcg), each in [0, 1].
    """
    top = ranked[:k]
    if target not in top:
        return 0.0, 0.0
    return 1.0, 1.0 / math.log2(top.index(target) + 2)
