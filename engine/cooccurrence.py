"""Item-to-item co-occurrence of positives ("people who liked X also liked Y")."""

from __future__ import annotations

import numpy as np

from engine.arrays import ensure_capacity


class NeighbourRow:
    """The (at most ``capacity``) strongest co-occurring items of one item.

    Stored as parallel numpy arrays ``keys`` (item rows) / ``vals`` (co-counts) so scoring
    reads them without conversion. When the row is full, a new neighbour replaces the one
    with the smallest count and inherits that count + 1: the Space-Saving heavy-hitter
    algorithm (Metwally, Agrawal & El Abbadi, ICDT 2005), which keeps every item whose true
    co-count exceeds total/capacity and bounds memory and scoring cost per item.
    """

    __slots__ = ("keys", "vals", "size", "slot")

    def __init__(self) -> None:
        self.keys = np.zeros(4, dtype=np.int64)
        self.vals = np.zeros(4)
        self.size = 0
        self.slot: dict[int, int] = {}

    def add(self, item: int, capacity: int) -> None:
        s = self.slot.get(item)
        if s is not None:
            self.vals[s] += 1.0
            return
        if self.size < capacity:
            self.keys = ensure_capacity(self.keys, self.size + 1)
            self.vals = ensure_capacity(self.vals, self.size + 1)
            s = self.size
            self.size += 1
            self.vals[s] = 1.0
        else:
            s = int(np.argmin(self.vals[: self.size]))
            del self.slot[int(self.keys[s])]
            self.vals[s] += 1.0
        self.keys[s] = item
        self.slot[item] = s


class CoOccurrence:
    """Symmetric co-occurrence counts between items liked by the same user.

    When a user likes item i, the pair (h, i) is counted for each of the user's last
    ``window`` positives h. A user with history H scores item j by
    ``sum_{h in H} c(h, j) / sqrt(n_h * n_j)`` (cosine-normalised co-counts, the item-based
    CF of Sarwar et al., WWW 2001 / Linden et al., IEEE Internet Computing 2003). Each item
    keeps at most ``max_neighbours`` neighbours (``NeighbourRow``), so scoring touches at
    most ``len(H) * max_neighbours`` entries with one ``np.bincount``: no Python loop over
    the catalogue or over neighbours.

    Args:
        window: how many previous positives of the user each new positive pairs with.
        max_neighbours: neighbours kept per item.
    """

    def __init__(self, window: int = 20, max_neighbours: int = 256) -> None:
        self.window = window
        self.max_neighbours = max_neighbours
        self.rows: list[NeighbourRow] = []
        self.counts = np.zeros(0)

    def grow(self, n: int) -> None:
        """Make room for ``n`` items."""
        while len(self.rows) < n:
            self.rows.append(NeighbourRow())
        self.counts = ensure_capacity(self.counts, n)

    def add(self, history: list[int], idx: int) -> None:
        """Record a positive on ``idx`` by a user whose earlier positives are ``history``."""
        self.grow(idx + 1)
        self.counts[idx] += 1.0
        cap = self.max_neighbours
        row = self.rows[idx]
        for h in history[-self.window:]:
            if h != idx:
                row.add(h, cap)
                self.rows[h].add(idx, cap)

    def scores(self, history: list[int], n: int) -> np.ndarray:
        """Co-occurrence score of every item for a user with ``history``: shape (n,)."""
        keys, weights = [], []
        counts = self.counts
        for h in history:
            row = self.rows[h]
            if row.size:
                k = row.keys[: row.size]
                keys.append(k)
                weights.append(row.vals[: row.size] / np.sqrt(counts[h] * counts[k]))
        if not keys:
            return np.zeros(n)
        return np.bincount(np.concatenate(keys), np.concatenate(weights), minlength=n)[:n]

    def get(self, a: int, b: int) -> float:
        """Stored co-count of (a, b) (0 when b is not among a's kept neighbours)."""
        row = self.rows[a]
        s = row.slot.get(b)
        return 0.0 if s is None else float(row.vals[s])

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for a snapshot: counts, per-item sizes and concatenated keys/values."""
        n = len(self.rows)
        return {
            "cooc_counts": self.counts[:n].copy(),
            "cooc_sizes": np.array([r.size for r in self.rows], dtype=np.int64),
            "cooc_keys": np.concatenate([r.keys[: r.size] for r in self.rows] or [np.zeros(0, np.int64)]),
            "cooc_vals": np.concatenate([r.vals[: r.size] for r in self.rows] or [np.zeros(0)]),
        }

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from ``state()`` output (slot order is preserved, so learning continues
        exactly as it would have)."""
        n = len(arrays["cooc_counts"])
        self.rows = []
        self.counts = np.zeros(0)
        self.grow(n)
        self.counts[:n] = arrays["cooc_counts"]
        ends = np.cumsum(arrays["cooc_sizes"])
        starts = ends - arrays["cooc_sizes"]
        keys, vals = arrays["cooc_keys"], arrays["cooc_vals"]
        for row, a, b in zip(self.rows, starts.tolist(), ends.tolist()):
            if b > a:
                row.keys = keys[a:b].copy()
                row.vals = vals[a:b].copy()
                row.size = b - a
                row.slot = {k: s for s, k in enumerate(row.keys.tolist())}
