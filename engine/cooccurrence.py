"""Item-to-item co-occurrence of positives ("people who liked X also liked Y")."""

from __future__ import annotations

import numpy as np

from engine.arrays import ensure_capacity


class CoOccurrence:
    """Symmetric co-occurrence counts between items liked by the same user.

    When a user likes item i, the pair (h, i) is counted for each of the user's last
    ``window`` positives h. A user with history H scores item j by
    ``sum_{h in H} c(h, j) / sqrt(n_h * n_j)`` (cosine-normalised co-counts, the item-based
    CF of Sarwar et al., WWW 2001 / Linden et al., IEEE Internet Computing 2003).

    Each item keeps at most ``max_neighbours`` neighbours. When its row is full, a new
    neighbour replaces the one with the smallest count and inherits that count + 1: the
    Space-Saving heavy-hitter algorithm (Metwally, Agrawal & El Abbadi, ICDT 2005), which
    keeps every neighbour whose true co-count exceeds total / capacity. Rows live in two
    shared numpy pools (``keys`` int64, ``vals`` float64) at ``offset[i]`` with room for
    ``capacity[i]`` entries (doubling; a moved row leaves a hole, so the pools are at most
    ~2x the live entries). Scoring reads row slices and does one ``np.bincount``; a
    snapshot is a memcpy of the pools.

    Args:
        window: how many previous positives of the user each new positive pairs with.
        max_neighbours: neighbours kept per item.
    """

    def __init__(self, window: int = 20, max_neighbours: int = 256) -> None:
        self.window = window
        self.max_neighbours = max_neighbours
        self.keys = np.zeros(0, dtype=np.int64)
        self.vals = np.zeros(0)
        self.used = 0
        self.offset = np.zeros(0, dtype=np.int64)
        self.capacity = np.zeros(0, dtype=np.int64)
        self.size = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0)
        self.slots: list[dict[int, int]] = []

    def grow(self, n: int) -> None:
        """Make room for ``n`` items."""
        if n <= len(self.slots):
            return
        for name in ("offset", "capacity", "size", "counts"):
            setattr(self, name, ensure_capacity(getattr(self, name), n))
        self.slots.extend({} for _ in range(n - len(self.slots)))

    def add(self, history: list[int], idx: int, weight: float = 1.0) -> None:
        """Record a positive on ``idx`` by a user whose earlier positives are ``history``
        (``weight`` < 1 damps an untrusted event's counts)."""
        self.grow(idx + 1)
        self.counts[idx] += weight
        for h in history[-self.window:]:
            if h != idx:
                self._bump(idx, h, weight)
                self._bump(h, idx, weight)

    def _bump(self, row: int, item: int, weight: float) -> None:
        s = self.slots[row].get(item)
        if s is not None:
            self.vals[self.offset[row] + s] += weight
            return
        size = int(self.size[row])
        cap = int(self.capacity[row])
        if size == cap and cap >= self.max_neighbours:  # Space-Saving replacement
            off = int(self.offset[row])
            s = int(np.argmin(self.vals[off: off + size]))
            del self.slots[row][int(self.keys[off + s])]
            self.vals[off + s] += weight
            self.keys[off + s] = item
            self.slots[row][item] = s
            return
        if size == cap:
            self._relocate(row, min(max(4, 2 * cap), self.max_neighbours))
        off = int(self.offset[row])
        self.keys[off + size] = item
        self.vals[off + size] = weight
        self.slots[row][item] = size
        self.size[row] = size + 1

    def _relocate(self, row: int, new_cap: int) -> None:
        start = self.used
        self.keys = ensure_capacity(self.keys, start + new_cap)
        self.vals = ensure_capacity(self.vals, start + new_cap)
        off, size = int(self.offset[row]), int(self.size[row])
        self.keys[start: start + size] = self.keys[off: off + size]
        self.vals[start: start + size] = self.vals[off: off + size]
        self.offset[row] = start
        self.capacity[row] = new_cap
        self.used = start + new_cap

    def scores(self, history: list[int], n: int) -> np.ndarray:
        """Co-occurrence score of every item for a user with ``history``: shape (n,)."""
        keys, weights = [], []
        counts = self.counts
        for h in history:
            size = int(self.size[h])
            if size:
                off = int(self.offset[h])
                k = self.keys[off: off + size]
                keys.append(k)
                weights.append(self.vals[off: off + size] / np.sqrt(counts[h] * counts[k]))
        if not keys:
            return np.zeros(n)
        return np.bincount(np.concatenate(keys), np.concatenate(weights), minlength=n)[:n]

    def get(self, a: int, b: int) -> float:
        """Stored co-count of (a, b) (0 when b is not among a's kept neighbours)."""
        s = self.slots[a].get(b)
        return 0.0 if s is None else float(self.vals[self.offset[a] + s])

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for a snapshot: views of the pools and row tables (no per-row work)."""
        n = len(self.slots)
        return {
            "cooc_keys": self.keys[: self.used],
            "cooc_vals": self.vals[: self.used],
            "cooc_offset": self.offset[:n],
            "cooc_capacity": self.capacity[:n],
            "cooc_size": self.size[:n],
            "cooc_counts": self.counts[:n],
        }

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from ``state()`` output (same layout, so learning continues exactly)."""
        n = len(arrays["cooc_counts"])
        self.__init__(self.window, self.max_neighbours)
        self.grow(n)
        self.keys = arrays["cooc_keys"].copy()
        self.vals = arrays["cooc_vals"].copy()
        self.used = len(self.keys)
        for name in ("offset", "capacity", "size", "counts"):
            getattr(self, name)[:n] = arrays[f"cooc_{name}"]
        keys = self.keys
        for row in np.flatnonzero(self.size[:n]).tolist():
            off, size = int(self.offset[row]), int(self.size[row])
            self.slots[row] = dict(zip(keys[off: off + size].tolist(), range(size)))
