"""Growable contiguous numpy buffers for the serving mirrors (amortised O(1) append),
packed id lists (the snapshot format of catalogue and user ids), and a stateless hash for
reproducible random choices."""

from __future__ import annotations

import numpy as np


def ensure_capacity(arr: np.ndarray, n: int, fill: float = 0.0) -> np.ndarray:
    """Return ``arr`` or a copy whose first axis holds at least ``n`` rows.

    Capacity doubles, so appending one row at a time costs amortised O(1). New rows are
    ``fill``. Callers must keep the returned array (the old one may be stale).
    """
    cap = arr.shape[0]
    if n <= cap:
        return arr
    new_cap = max(n, 2 * cap, 64)
    shape = (new_cap,) + arr.shape[1:]
    # zeros come from calloc: pages of the unused tail stay unmapped (not resident) until
    # written, so doubling a buffer does not double its RSS at once
    out = np.zeros(shape, dtype=arr.dtype) if fill == 0 else np.full(shape, fill, dtype=arr.dtype)
    out[:cap] = arr
    return out


class PackedIds:
    """An append-only list of id strings kept packed as it grows: UTF-8 bytes (uint8) and
    per-id character lengths (int64), the snapshot format (``unpack_ids`` reads it back).

    Ids are only ever appended (catalogue rows and user rows are never reused), so a
    snapshot takes ``arrays()`` - two prefix views, no per-id Python work - instead of
    re-packing 100k+ strings while holding the GIL.
    """

    def __init__(self) -> None:
        self._text = np.zeros(0, dtype=np.uint8)
        self._lengths = np.zeros(0, dtype=np.int64)
        self._n = 0
        self._bytes = 0

    @classmethod
    def from_arrays(cls, text: np.ndarray, lengths: np.ndarray) -> "PackedIds":
        """The packed ids ``arrays()`` returned (copied): the same as appending each id."""
        out = cls()
        out._text = np.array(text, dtype=np.uint8)
        out._lengths = np.array(lengths, dtype=np.int64)
        out._n = len(out._lengths)
        out._bytes = len(out._text)
        return out

    def append(self, id_: str) -> None:
        """Add one id (amortised O(len(id)))."""
        raw = id_.encode()
        end = self._bytes + len(raw)
        self._text = ensure_capacity(self._text, end)
        self._text[self._bytes: end] = np.frombuffer(raw, dtype=np.uint8)
        self._lengths = ensure_capacity(self._lengths, self._n + 1)
        self._lengths[self._n] = len(id_)
        self._n += 1
        self._bytes = end

    def scrub(self, row: int) -> str:
        """Overwrite id ``row`` in place with as many NUL characters as it had UTF-8 bytes
        (so no other id moves; its length becomes that byte count) and return the
        placeholder. For erasure (``engine.core.users.erase``): the row stays, marked dead,
        but neither the live buffers nor any snapshot taken after this holds the id. Cost:
        one vectorised pass over the packed bytes.

        Raises:
            IndexError: no such row.
        """
        if not 0 <= row < self._n:
            raise IndexError(row)
        text = self._text[: self._bytes]
        starts = np.flatnonzero((text & 0xC0) != 0x80)  # byte offset of every character
        first = int(self._lengths[:row].sum())
        last = first + int(self._lengths[row])
        start = int(starts[first]) if first < len(starts) else self._bytes
        end = int(starts[last]) if last < len(starts) else self._bytes
        text[start:end] = 0
        self._lengths[row] = end - start
        return "\x00" * (end - start)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(text (bytes,), lengths (n,)) as views of the live buffers: copy them (or finish
        with them) before the next ``append``."""
        return self._text[: self._bytes], self._lengths[: self._n]


def without(rows: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """The entries of ``rows`` (sorted int array) not in ``drop`` (int array, any order,
    repeats fine), order kept: ``rows[~np.isin(rows, drop)]`` by one sort of ``drop`` and a
    binary search (a third of ``np.isin``'s time at a few hundred rows).

    >>> without(np.array([1, 3, 5, 7]), np.array([7, 1, 1]))
    array([3, 5])
    """
    if not drop.size or not rows.size:
        return rows
    d = np.sort(drop)
    loc = np.searchsorted(d, rows)
    np.minimum(loc, len(d) - 1, out=loc)
    return rows[d[loc] != rows]


def sum_by_key(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ``keys`` (int (m,), sorted) and the sum of ``weights`` (m,) per key, each
    sum in input order (equal to ``np.unique(keys, return_inverse=True)`` + ``np.bincount``,
    bit for bit, at ~3/4 of its cost).

    >>> sum_by_key(np.array([4, 2, 4]), np.array([1.0, 2.0, 3.0]))
    (array([2, 4]), array([2., 4.]))
    """
    if not len(keys):
        return keys, np.zeros(0)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    first = np.concatenate(([True], k[1:] != k[:-1]))
    group = np.cumsum(first) - 1  # sequential sums per key, in input order (as bincount adds)
    return k[first], np.bincount(group, weights=weights[order])


def unpack_ids(text: np.ndarray, lengths: np.ndarray) -> list[str]:
    """The id list packed by ``PackedIds`` (UTF-8 bytes, per-id character lengths)."""
    joined = text.tobytes().decode()
    ends = np.cumsum(lengths).tolist()
    starts = [0] + ends[:-1]
    return [joined[a:b] for a, b in zip(starts, ends)]


def splitmix64(seed: int, a: int, b: int) -> int:
    """SplitMix64 (Steele, Lea & Flood, OOPSLA 2014) of (seed, a, b): a cheap, stateless,
    reproducible pseudo-random 64-bit integer: random choices keyed by it (negative sampling
    by stream position, in-process slate ids by serving count) repeat exactly on a replay."""
    z = (seed * 0x9E3779B97F4A7C15 + a * 0xBF58476D1CE4E5B9 + b * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)
