"""Item-to-item co-occurrence of positives ("people who liked X also liked Y")."""

from __future__ import annotations

import numpy as np

from engine.arrays import ensure_capacity

_MIN_CAPACITY = 4
_SMALL = 4  # histories up to this many items take the scalar update path


class CoOccurrence:
    """Symmetric co-occurrence counts between items liked by the same user.

    When a user likes item i, the pair (h, i) is counted for each of the user's last
    ``window`` positives h. A user with history H scores item j by
    ``sum_{h in H} c(h, j) / sqrt(n_h * n_j)`` (cosine-normalised co-counts, the item-based
    CF of Sarwar et al., WWW 2001 / Linden et al., IEEE Internet Computing 2003).

    Each item keeps at most ``max_neighbours`` (K) neighbours. When its row is full, a new
    neighbour replaces the one with the smallest count and inherits that count + its
    weight: the Space-Saving heavy-hitter algorithm (Metwally, Agrawal & El Abbadi,
    ICDT 2005), which keeps every neighbour whose true co-count exceeds total / K. Within
    one event, neighbours already kept are bumped before new ones take slots; below K
    neighbours the counts are exact.

    Layout: rows live in two shared numpy pools, ``keys`` (int32 neighbour index) and
    ``vals`` (float32 count), at ``offset[i]`` with room for ``capacity[i]`` entries
    (4, 8, ... K, doubling). A row that outgrows its room moves to a larger block and its old
    block goes on a free list for that capacity, which later rows of that size reuse. Memory
    is 8 bytes per pool slot plus 24 bytes per item, no Python object per pair or per row;
    after rows have grown the pools hold ~2 slots per live pair (2.1 measured by
    ``load/bench_memory.py``: freed blocks wait for rows of their size). It grows only as
    the model learns new pairs, and a row never exceeds K entries. Lookups, updates and
    scoring are vectorised over a user's history; a snapshot is a memcpy of the pools,
    tables and free lists, and a restored index continues bit for bit.

    Args:
        window: how many previous positives of the user each new positive pairs with.
        max_neighbours: K, neighbours kept per item (a power of two >= 4).
    """

    def __init__(self, window: int = 20, max_neighbours: int = 256) -> None:
        self.window = window
        self.max_neighbours = max_neighbours
        self.keys = np.zeros(0, dtype=np.int32)
        self.vals = np.zeros(0, dtype=np.float32)
        self.used = 0
        self.offset = np.zeros(0, dtype=np.int64)
        self.capacity = np.zeros(0, dtype=np.int32)
        self.size = np.zeros(0, dtype=np.int32)
        self.counts = np.zeros(0)
        self.n = 0
        # free blocks per capacity class: a stack of offsets each (numpy, so snapshots copy it)
        self._free = {c: np.zeros(0, dtype=np.int64) for c in self._classes()}
        self._free_n = dict.fromkeys(self._free, 0)

    def _classes(self) -> list[int]:
        caps, c = [], _MIN_CAPACITY
        while c < self.max_neighbours:
            caps.append(c)
            c *= 2
        return caps + [self.max_neighbours]

    def grow(self, n: int) -> None:
        """Make room for ``n`` items."""
        if n <= self.n:
            return
        for name in ("offset", "capacity", "size", "counts"):
            setattr(self, name, ensure_capacity(getattr(self, name), n))
        self.n = n

    # ------------------------------------------------------------------ updates
    def add(self, history: list[int], idx: int, weight: float = 1.0) -> None:
        """Record a positive on ``idx`` by a user whose earlier positives are ``history``
        (``weight`` < 1 damps an untrusted event's counts). An item that appears m times in
        the window counts m times."""
        self.grow(idx + 1)
        self.counts[idx] += weight
        recent = history[-self.window:]
        if idx in recent:
            recent = [h for h in recent if h != idx]
        if not recent:
            return
        w: float | np.ndarray = float(weight)
        if len(set(recent)) == len(recent):
            items = np.array(recent, dtype=np.int64)
        else:
            items, mult = np.unique(np.array(recent, dtype=np.int64), return_counts=True)
            w = (mult * weight).astype(np.float32)
        # Counts are symmetric, and a row only ever loses a neighbour by a Space-Saving
        # replacement, which needs a full row. So while row idx is not full, a history item
        # missing from row idx has never been paired with idx, and its own row cannot hold
        # idx: only the rows of items found in row idx need searching.
        full = int(self.size[idx]) == self.max_neighbours
        found = self._add_to_row(idx, items, w)
        self._add_to_rows(items, idx, w, None if full else found)

    def _add_to_row(self, row: int, items: np.ndarray, w: float | np.ndarray) -> np.ndarray:
        """Count (row, items[j]) += w (or w[j]); ``items`` distinct. Returns which items
        were already neighbours (bool mask)."""
        scalar = isinstance(w, float)
        n = int(self.size[row])
        found = np.zeros(len(items), dtype=bool)
        if n:
            off = int(self.offset[row])
            slot, j = (self.keys[off: off + n, None] == items).nonzero()
            if len(j):
                self.vals[off + slot] += w if scalar else w[j]
                found[j] = True
                if len(j) == len(items):
                    return found
                miss = ~found
                items = items[miss]
                if not scalar:
                    w = w[miss]
        take = min(self.max_neighbours - n, len(items))
        if take:
            if n + take > int(self.capacity[row]):
                self._relocate(row, n + take)
            off = int(self.offset[row])
            self.keys[off + n: off + n + take] = items[:take]
            self.vals[off + n: off + n + take] = w if scalar else w[:take]
            self.size[row] = n + take
        if take < len(items):  # Space-Saving: each newcomer replaces the smallest count
            off = int(self.offset[row])
            keys, vals = self.keys[off: off + n + take], self.vals[off: off + n + take]
            for j in range(take, len(items)):
                s = int(vals.argmin())
                keys[s] = items[j]
                vals[s] += w if scalar else w[j]
        return found

    def _add_to_rows(self, rows: np.ndarray, item: int, w: float | np.ndarray,
                     candidates: np.ndarray | None = None) -> None:
        """Count (rows[j], item) += w (or w[j]); ``rows`` distinct. ``candidates`` (bool
        mask, optional) marks the only rows that may already hold ``item``."""
        scalar = isinstance(w, float)
        if len(rows) <= _SMALL:  # scalar code beats ~10 fixed-cost numpy calls here
            for j, row in enumerate(rows.tolist()):
                wj = w if scalar else float(w[j])
                n, off = int(self.size[row]), int(self.offset[row])
                if candidates is None or candidates[j]:
                    s = (self.keys[off: off + n] == item).nonzero()[0]
                    if len(s):
                        self.vals[off + int(s[0])] += wj
                        continue
                if n == self.max_neighbours:  # Space-Saving replacement
                    s = off + int(self.vals[off: off + n].argmin())
                    self.keys[s] = item
                    self.vals[s] += wj
                    continue
                if n == int(self.capacity[row]):
                    self._relocate(row, n + 1)
                    off = int(self.offset[row])
                self.keys[off + n] = item
                self.vals[off + n] = wj
                self.size[row] = n + 1
            return
        search = rows if candidates is None else rows[candidates]
        if len(search):
            sizes = self.size[search]
            pos = _ragged(self.offset[search], sizes)
            hit = (self.keys[pos] == item).nonzero()[0]
        else:
            hit = ()
        if len(hit):
            owner = _owner(candidates, sizes, hit)
            self.vals[pos[hit]] += w if scalar else w[owner]
            if len(hit) == len(rows):
                return
            miss = np.ones(len(rows), dtype=bool)
            miss[owner] = False
            rows = rows[miss]
            if not scalar:
                w = w[miss]
        sizes = self.size[rows]
        room = sizes < self.capacity[rows]
        if not room.all():
            full = sizes == self.max_neighbours
            if full.any():  # Space-Saving: replace the smallest count of each full row
                at = self.offset[rows[full]][:, None] + np.arange(self.max_neighbours)
                at = at[np.arange(len(at)), self.vals[at].argmin(axis=1)]
                self.keys[at] = item
                self.vals[at] += w if scalar else w[full]
            for j in np.flatnonzero(~room & ~full).tolist():  # rows that must move first
                row = int(rows[j])
                self._relocate(row, int(sizes[j]) + 1)
            room = ~full
            rows, sizes = rows[room], sizes[room]
            if not scalar:
                w = w[room]
        at = self.offset[rows] + sizes
        self.keys[at] = item
        self.vals[at] = w
        self.size[rows] = sizes + 1

    def _relocate(self, row: int, need: int) -> None:
        """Move ``row`` to a free block of the smallest class holding ``need`` entries."""
        cap = int(self.capacity[row])
        new_cap = max(_MIN_CAPACITY, cap)
        while new_cap < need:
            new_cap *= 2
        new_cap = min(new_cap, self.max_neighbours)
        k = self._free_n[new_cap]
        if k:
            start = int(self._free[new_cap][k - 1])
            self._free_n[new_cap] = k - 1
        else:
            start = self.used
            self.keys = ensure_capacity(self.keys, start + new_cap)
            self.vals = ensure_capacity(self.vals, start + new_cap)
            self.used = start + new_cap
        off, size = int(self.offset[row]), int(self.size[row])
        self.keys[start: start + size] = self.keys[off: off + size]
        self.vals[start: start + size] = self.vals[off: off + size]
        if cap:
            k = self._free_n[cap]
            self._free[cap] = ensure_capacity(self._free[cap], k + 1)
            self._free[cap][k] = off
            self._free_n[cap] = k + 1
        self.offset[row] = start
        self.capacity[row] = new_cap

    # ------------------------------------------------------------------ reads
    def scores(self, history: list[int], n: int) -> np.ndarray:
        """Co-occurrence score of every item for a user with ``history`` (an item listed
        twice counts twice): shape (n,), float64."""
        out = np.zeros(n)
        self.add_scores(history, out)
        return out

    def add_scores(self, history: list[int], out: np.ndarray, weight: float = 1.0) -> None:
        """``out += weight * scores(history)``, touching only the neighbours' rows (a sparse
        scatter-add instead of three passes over a dense catalogue-sized vector)."""
        h = np.asarray(history, dtype=np.int64)
        sizes = self.size[h]
        pos = _ragged(self.offset[h], sizes)
        if not len(pos):
            return
        k = self.keys[pos]
        counts = self.counts
        weights = self.vals[pos] / np.sqrt(np.repeat(counts[h], sizes) * counts[k])
        if weight != 1.0:
            weights *= weight
        np.add.at(out, k, weights)

    def get(self, a: int, b: int) -> float:
        """Stored co-count of (a, b) (0 when b is not among a's kept neighbours)."""
        off = int(self.offset[a])
        hit = np.flatnonzero(self.keys[off: off + int(self.size[a])] == b)
        return float(self.vals[off + hit[0]]) if len(hit) else 0.0

    def entries(self) -> int:
        """Number of stored (item, neighbour) pairs."""
        return int(self.size[: self.n].sum())

    # ------------------------------------------------------------------ snapshots
    def state(self) -> dict[str, np.ndarray]:
        """Arrays for a snapshot: views of the pools, row tables and free lists (no per-row
        work)."""
        n = self.n
        arrays = {
            "cooc_keys": self.keys[: self.used],
            "cooc_vals": self.vals[: self.used],
            "cooc_offset": self.offset[:n],
            "cooc_capacity": self.capacity[:n],
            "cooc_size": self.size[:n],
            "cooc_counts": self.counts[:n],
        }
        for cap, free in self._free.items():
            arrays[f"cooc_free_{cap}"] = free[: self._free_n[cap]]
        return arrays

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from ``state()`` output (same layout, so learning continues exactly).

        Snapshots written before the free lists existed (int64 / float64 pools) load too:
        their holes are simply not reused.
        """
        n = len(arrays["cooc_counts"])
        self.__init__(self.window, self.max_neighbours)
        self.grow(n)
        self.keys = arrays["cooc_keys"].astype(np.int32)
        self.vals = arrays["cooc_vals"].astype(np.float32)
        self.used = len(self.keys)
        for name in ("offset", "capacity", "size", "counts"):
            getattr(self, name)[:n] = arrays[f"cooc_{name}"]
        for cap in self._free:
            free = arrays.get(f"cooc_free_{cap}")
            if free is not None:
                self._free[cap] = free.astype(np.int64)
                self._free_n[cap] = len(free)


def _owner(candidates: np.ndarray | None, sizes: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Indices (into the full row list) of the searched rows that own pool hits ``hit``."""
    owner = np.repeat(np.arange(len(sizes)), sizes)[hit]
    return owner if candidates is None else np.flatnonzero(candidates)[owner]


def _ragged(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Pool positions of the concatenated blocks ``[starts[j], starts[j] + sizes[j])``."""
    total = int(sizes.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(sizes)
    return np.arange(total) + np.repeat(starts - (ends - sizes), sizes)
