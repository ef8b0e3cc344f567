"""Item-to-item co-occurrence of positives ("people who liked X also liked Y")."""

from __future__ import annotations

import numpy as np

from engine.arrays import ensure_capacity


class CoOccurrence:
    """Symmetric co-occurrence counts between items liked by the same user.

    When a user likes item i, the pair (h, i) is counted for each of the user's last
    ``window`` positives h. A user with history H scores item j by
    ``sum_{h in H} c(h, j) / sqrt(n_h * n_j)`` (cosine-normalised co-counts, the classic
    item-based CF of Sarwar et al., WWW 2001 / Linden et al., IEEE Internet Computing 2003).
    Scoring is vectorised per history item (``np.fromiter`` over the neighbour dict, then a
    scatter-add), never a Python loop over the catalogue.

    Args:
        window: how many previous positives of the user each new positive pairs with.
    """

    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.neighbours: list[dict[int, float]] = []
        self.counts = np.zeros(0)

    def grow(self, n: int) -> None:
        """Make room for ``n`` items."""
        while len(self.neighbours) < n:
            self.neighbours.append({})
        self.counts = ensure_capacity(self.counts, n)

    def add(self, history: list[int], idx: int) -> None:
        """Record a positive on ``idx`` by a user whose earlier positives are ``history``."""
        self.grow(idx + 1)
        self.counts[idx] += 1.0
        row = self.neighbours[idx]
        for h in history[-self.window:]:
            if h == idx:
                continue
            row[h] = row.get(h, 0.0) + 1.0
            other = self.neighbours[h]
            other[idx] = other.get(idx, 0.0) + 1.0

    def scores(self, history: list[int], n: int) -> np.ndarray:
        """Co-occurrence score of every item for a user with ``history``: shape (n,)."""
        out = np.zeros(n)
        counts = self.counts
        for h in history:
            row = self.neighbours[h]
            if not row:
                continue
            keys = np.fromiter(row.keys(), dtype=np.int64, count=len(row))
            vals = np.fromiter(row.values(), dtype=np.float64, count=len(row))
            np.add.at(out, keys, vals / np.sqrt(counts[h] * counts[keys]))
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for a snapshot: counts and the pair list (src, dst, count)."""
        n = len(self.neighbours)
        sizes = np.fromiter((len(r) for r in self.neighbours), dtype=np.int64, count=n)
        src = np.repeat(np.arange(n, dtype=np.int64), sizes)
        dst = np.fromiter((k for r in self.neighbours for k in r), dtype=np.int64, count=int(sizes.sum()))
        val = np.fromiter((v for r in self.neighbours for v in r.values()), dtype=np.float64, count=int(sizes.sum()))
        return {"cooc_counts": self.counts[:n].copy(), "cooc_src": src, "cooc_dst": dst, "cooc_val": val}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from ``state()`` output (neighbour order is preserved)."""
        n = len(arrays["cooc_counts"])
        self.neighbours = [{} for _ in range(n)]
        self.counts = np.zeros(0)
        self.grow(n)
        self.counts[:n] = arrays["cooc_counts"]
        for s, d, v in zip(arrays["cooc_src"].tolist(), arrays["cooc_dst"].tolist(), arrays["cooc_val"].tolist()):
            self.neighbours[s][d] = v
