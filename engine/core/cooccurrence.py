"""Item-to-item co-occurrence of positives ("people who liked X also liked Y")."""

from __future__ import annotations

import itertools

import numpy as np

from engine.core import steps
from engine.core.arrays import ensure_capacity
from engine.core.steps import Steps, run

_SMALL = 4  # histories up to this many items take the scalar update path
_TOKENS = itertools.count(1)  # identifies a live table for incremental copies


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

    Layout: a fixed table of K slots per catalogue row, ``keys`` (rows, K) int32 neighbour
    index and ``vals`` (rows, K) float32 count, with ``size`` (rows,) entries in use. Memory
    is bounded by construction and never grows while the model learns: 8 * K bytes per
    item (2 KB at K = 256), resident from the item's first neighbour on, plus 24 bytes per
    item. Sketches are sized up front for the same reason (Space-Saving is a fixed-memory
    summary). Lookups, updates and scoring are vectorised over a user's history. Snapshots
    hold only the live entries (``state``: row-major, like the layouts written before the
    table existed, which still load), and a restored index continues bit for bit.

    For in-memory rollback points (the forgetting guard), ``copy_into`` keeps a second
    table in sync by copying only the rows changed since it was last synced.

    Args:
        window: how many previous positives of the user each new positive pairs with.
        max_neighbours: K, neighbours kept per item.
    """

    def __init__(self, window: int = 20, max_neighbours: int = 256) -> None:
        self.window = window
        self.max_neighbours = max_neighbours
        self.keys = np.zeros((0, max_neighbours), dtype=np.int32)
        self.vals = np.zeros((0, max_neighbours), dtype=np.float32)
        self.size = np.zeros(0, dtype=np.int32)
        self.counts = np.zeros(0)
        self.n = 0
        self._token = next(_TOKENS)
        self._tick = 0  # number of updates so far
        self._changed = np.zeros(0, dtype=np.int64)  # per row: the tick of its last change
        self._synced = (0, -1)  # (token, tick) of the table this one was last copied from

    def grow(self, n: int) -> None:
        """Make room for ``n`` items (new rows are empty)."""
        if n <= self.n:
            return
        for name in ("keys", "vals", "size", "counts", "_changed"):
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
        self._tick += 1
        self._changed[idx] = self._tick
        self._changed[items] = self._tick
        # Counts are symmetric, and a row only ever loses a neighbour by a Space-Saving
        # replacement, which needs a full row. So while row idx is not full, a history item
        # missing from row idx has never been paired with idx, and its own row cannot hold
        # idx: only the rows of items found in row idx need searching.
        full = int(self.size[idx]) == self.max_neighbours
        found = self._add_to_row(idx, items, w)
        self._add_to_rows(items, idx, w, None if full else found)

    def add_directed(self, sources: list[int], idx: int, weight: float = 1.0) -> None:
        """Count the transitions ``s -> idx`` for each distinct ``s`` in ``sources`` (row
        ``s`` gains neighbour ``idx``; not the reverse), for a table of directed
        transitions between consecutive positives."""
        self.grow(idx + 1)
        items = np.unique(np.array([s for s in sources if s != idx], dtype=np.int64))
        if not len(items):
            return
        self.counts[items] += weight
        self._tick += 1
        self._changed[items] = self._tick
        self._add_to_rows(items, idx, float(weight))

    def _add_to_row(self, row: int, items: np.ndarray, w: float | np.ndarray) -> np.ndarray:
        """Count (row, items[j]) += w (or w[j]); ``items`` distinct. Returns which items
        were already neighbours (bool mask)."""
        scalar = isinstance(w, float)
        n = int(self.size[row])
        keys, vals = self.keys[row], self.vals[row]
        found = np.zeros(len(items), dtype=bool)
        if n:
            slot, j = (keys[:n, None] == items).nonzero()
            if len(j):
                vals[slot] += w if scalar else w[j]
                found[j] = True
                if len(j) == len(items):
                    return found
                miss = ~found
                items = items[miss]
                if not scalar:
                    w = w[miss]
        take = min(self.max_neighbours - n, len(items))
        if take:
            keys[n: n + take] = items[:take]
            vals[n: n + take] = w if scalar else w[:take]
            self.size[row] = n + take
        if take < len(items):  # Space-Saving: each newcomer replaces the smallest count
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
        K = self.max_neighbours
        if len(rows) <= _SMALL:  # scalar code beats ~10 fixed-cost numpy calls here
            for j, row in enumerate(rows.tolist()):
                wj = w if scalar else float(w[j])
                n = int(self.size[row])
                keys, vals = self.keys[row], self.vals[row]
                if candidates is None or candidates[j]:
                    s = (keys[:n] == item).nonzero()[0]
                    if len(s):
                        vals[s[0]] += wj
                        continue
                if n == K:  # Space-Saving replacement
                    s = int(vals.argmin())
                    keys[s] = item
                    vals[s] += wj
                    continue
                keys[n] = item
                vals[n] = wj
                self.size[row] = n + 1
            return
        flat_keys, flat_vals = self.keys.reshape(-1), self.vals.reshape(-1)
        search = rows if candidates is None else rows[candidates]
        if len(search):
            sizes = self.size[search]
            pos = _ragged(search * K, sizes)
            hit = (flat_keys[pos] == item).nonzero()[0]
        else:
            hit = ()
        if len(hit):
            owner = _owner(candidates, sizes, hit)
            flat_vals[pos[hit]] += w if scalar else w[owner]
            if len(hit) == len(rows):
                return
            miss = np.ones(len(rows), dtype=bool)
            miss[owner] = False
            rows = rows[miss]
            if not scalar:
                w = w[miss]
        sizes = self.size[rows]
        full = sizes == K
        if full.any():  # Space-Saving: replace the smallest count of each full row
            at = rows[full]
            slot = self.vals[at].argmin(axis=1)
            self.keys[at, slot] = item
            self.vals[at, slot] += w if scalar else w[full]
            room = ~full
            rows, sizes = rows[room], sizes[room]
            if not scalar:
                w = w[room]
        self.keys[rows, sizes] = item
        self.vals[rows, sizes] = w
        self.size[rows] = sizes + 1

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
        _, k, weights = self.neighbours(history)
        if not len(k):
            return
        if weight != 1.0:
            weights *= weight
        np.add.at(out, k, weights)

    def neighbours(self, history, directed: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every kept neighbour of every item of ``history`` (a list or int array), flat:
        ``(owner, neighbour, weight)``, where ``owner`` is the position in ``history``,
        ``neighbour`` the item row and ``weight`` the cosine-normalised co-count
        ``c(h, j) / sqrt(n_h * n_j)`` (float64), or for a table of directed transitions
        (``directed``) the transition share ``c(h -> j) / n_h``."""
        h = np.asarray(history, dtype=np.int64)
        sizes = self.size[h]
        pos = _ragged(h * self.max_neighbours, sizes)
        if not len(pos):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        k = self.keys.reshape(-1)[pos].astype(np.int64)
        counts = self.counts
        if directed:
            weights = self.vals.reshape(-1)[pos] / np.repeat(counts[h], sizes)
        else:
            weights = self.vals.reshape(-1)[pos] / np.sqrt(np.repeat(counts[h], sizes) * counts[k])
        return np.repeat(np.arange(len(h)), sizes), k, weights

    def get(self, a: int, b: int) -> float:
        """Stored co-count of (a, b) (0 when b is not among a's kept neighbours)."""
        hit = np.flatnonzero(self.keys[a, : int(self.size[a])] == b)
        return float(self.vals[a, hit[0]]) if len(hit) else 0.0

    def entries(self) -> int:
        """Number of stored (item, neighbour) pairs."""
        return int(self.size[: self.n].sum())

    # ------------------------------------------------------------------ copies
    def copy_into(self, other: "CoOccurrence | None" = None) -> "CoOccurrence":
        """An exact copy of this index, reusing ``other``'s table when it was last synced
        from this one: then only the rows changed since are copied (a rollback point for
        the guard every few thousand events costs the rows those events touched, not the
        whole 8 * K bytes per item). Returns the copy (``other`` itself when reused)."""
        return run(self.copy_into_steps(other))

    def copy_into_steps(self, other: "CoOccurrence | None" = None) -> Steps["CoOccurrence"]:
        """``copy_into`` as cooperative steps (``engine.core.steps``). An ``other`` last
        synced from another table (or never) is overwritten whole, in blocks, in its own
        buffers when they are large enough (no second table allocated)."""
        n = self.n
        if other is None or other.max_neighbours != self.max_neighbours:
            other = CoOccurrence(self.window, self.max_neighbours)
        if other._synced[0] != self._token:
            other.n = min(other.n, n)  # (a table rolled back may have fewer rows than the buffer)
            other.grow(n)
            yield from steps.assign(other.keys, self.keys[:n])
            yield from steps.assign(other.vals, self.vals[:n])
            other.keys[n:] = 0  # rows past the end stay empty, as in a fresh table
            other.vals[n:] = 0
        else:
            other.grow(n)
            rows = np.flatnonzero(self._changed[:n] > other._synced[1])
            block = max(1, steps.BYTES_PER_STEP // (8 * self.max_neighbours))
            for start in range(0, len(rows), block):
                part = rows[start: start + block]
                other.keys[part] = self.keys[part]
                other.vals[part] = self.vals[part]
                if start + block < len(rows):
                    yield
        other.size[:n] = self.size[:n]
        other.counts[:n] = self.counts[:n]
        other._synced = (self._token, self._tick)
        return other

    def changed_since(self, buffer: "CoOccurrence") -> np.ndarray | None:
        """Rows of this table that may differ from ``buffer``'s, when ``buffer`` was last
        synced from this table (``copy_into``): those changed since (int64, sorted); None
        when it was not (any row may differ)."""
        if buffer._synced[0] != self._token:
            return None
        return np.flatnonzero(self._changed[: self.n] > buffer._synced[1])

    # ------------------------------------------------------------------ snapshots
    def state(self, deferred: bool = False, prefix: str = "cooc") -> dict:
        """Arrays for a snapshot: the live entries row by row (``cooc_keys`` int32,
        ``cooc_vals`` float32, row ``i`` at ``cooc_offset[i]`` for ``cooc_size[i]``
        entries) and the per-item counts, as fresh arrays. With ``deferred``, the two entry
        arrays are ``RowPrefixes`` that ``engine.core.snapshot_codec.pack`` gathers straight into its
        output (in the packing thread, GIL released); they read the live table, so the
        index must not learn until the pack is done."""
        n = self.n
        size = self.size[:n].copy()
        offset = np.zeros(n, dtype=np.int64)
        np.cumsum(size[:-1], out=offset[1:])
        positions: dict = {}
        keys, vals = RowPrefixes(self.keys[:n], size, positions), RowPrefixes(self.vals[:n], size, positions)
        return {
            f"{prefix}_keys": keys if deferred else keys.copy(),
            f"{prefix}_vals": vals if deferred else vals.copy(),
            f"{prefix}_offset": offset,
            f"{prefix}_size": size,
            f"{prefix}_counts": self.counts[:n].copy(),
        }

    def load(self, arrays: dict[str, np.ndarray], prefix: str = "cooc") -> None:
        """Restore from ``state()`` output, so learning continues exactly.

        Also reads ``Recommender.rollback_point``'s table form (``cooc_table_keys`` /
        ``cooc_table_vals``, (rows, K)) and the layouts of earlier snapshots (shared pools
        with per-row blocks, int64 / float64 or int32 / float32, with or without free
        lists): only ``offset`` and ``size`` locate a row's entries.

        Raises:
            ValueError: a row holds more than ``max_neighbours`` entries.
        """
        run(self.load_steps(arrays, prefix))

    def load_steps(self, arrays: dict[str, np.ndarray], prefix: str = "cooc") -> Steps[None]:
        """``load`` as cooperative steps (``engine.core.steps``): the table is filled a block
        of rows at a time (a 100k x 256 table is 200 MB)."""
        counts = arrays[f"{prefix}_counts"]
        n = len(counts)
        self.__init__(self.window, self.max_neighbours)
        self.grow(n)
        if f"{prefix}_table_keys" in arrays:  # Recommender.rollback_point: the table itself
            yield from steps.assign(self.keys, arrays[f"{prefix}_table_keys"])
            yield from steps.assign(self.vals, arrays[f"{prefix}_table_vals"])
            self.size[:n] = arrays[f"{prefix}_size"]
            self.counts[:n] = counts
            return
        size = arrays[f"{prefix}_size"].astype(np.int64)
        if len(size) and int(size.max()) > self.max_neighbours:
            raise ValueError(f"co-occurrence row of {int(size.max())} entries > max_neighbours={self.max_neighbours}")
        offset = arrays[f"{prefix}_offset"].astype(np.int64)
        flat_keys, flat_vals = self.keys.reshape(-1), self.vals.reshape(-1)
        block = max(1, steps.BYTES_PER_STEP // (8 * self.max_neighbours))
        for start in range(0, n, block):
            end = min(n, start + block)
            pos = _ragged(offset[start:end], size[start:end])
            dest = _ragged(np.arange(start, end, dtype=np.int64) * self.max_neighbours, size[start:end])
            flat_keys[dest] = arrays[f"{prefix}_keys"][pos]
            flat_vals[dest] = arrays[f"{prefix}_vals"][pos]
            yield
        self.size[:n] = size
        self.counts[:n] = counts


class RowPrefixes:
    """A deferred 1-D array: the first ``size[i]`` entries of every row ``i`` of ``table``
    (rows, K), concatenated row by row (shape (sum(size),), ``table``'s dtype).
    ``engine.core.snapshot_codec.pack`` calls ``write_into`` on its output buffer; ``copy()``
    materialises it. The gather is a few whole-table numpy calls (the flat positions of
    the live entries, then ``np.take`` into the output; ~50 ms alone and ~160 ms beside a
    busy event loop for 6.5 M entries of a 100k x 256 table here): a packing thread that
    re-took the GIL per chunk of rows waited ~1 s for a busy event loop. Its temporaries
    are either small (one int64 per row) or, at this scale, larger than glibc's 32 MB mmap
    ceiling, so they go back to the kernel when freed (a 25 MB boolean mask came from the
    heap and kept ~30-40 MB of RSS swinging between checkpoints in the soak).
    ``positions`` (a dict) may be shared by the ``RowPrefixes`` of one table's keys and
    values, so the positions are computed once.
    """

    def __init__(self, table: np.ndarray, size: np.ndarray, positions: dict | None = None) -> None:
        self.table = table
        self.size = size
        self.positions = {} if positions is None else positions
        self.dtype = table.dtype
        self.shape = (int(size.sum()),)
        self.nbytes = self.shape[0] * self.dtype.itemsize

    def write_into(self, out: np.ndarray) -> None:
        """Fill ``out`` (shape ``self.shape``, any byte order of ``self.dtype``)."""
        pos = self.positions.get("flat")
        if pos is None:
            size = self.size.astype(np.int64)
            pos = self.positions["flat"] = _ragged(np.arange(len(size), dtype=np.int64) * self.table.shape[1], size)
        if out.dtype == self.dtype:
            np.take(self.table.reshape(-1), pos, out=out)
        else:  # another byte order
            out[:] = self.table.reshape(-1)[pos]

    def copy(self) -> np.ndarray:
        out = np.empty(self.shape, dtype=self.dtype)
        self.write_into(out)
        return out


def _owner(candidates: np.ndarray | None, sizes: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Indices (into the full row list) of the searched rows that own hits ``hit``."""
    owner = np.repeat(np.arange(len(sizes)), sizes)[hit]
    return owner if candidates is None else np.flatnonzero(candidates)[owner]


def _ragged(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Flat positions of the concatenated blocks ``[starts[j], starts[j] + sizes[j])``."""
    total = int(sizes.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(sizes)
    return np.arange(total) + np.repeat(starts - (ends - sizes), sizes)
