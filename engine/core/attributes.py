"""The catalogue's filterable item attributes: every tag of every item as per-tag row sets,
and every numeric (or date) field as a per-field numpy column, kept up to date as items are
PUT, so a request's filters become boolean masks over the catalogue rows without a Python
loop over the items.

Tags
    a vocabulary ``tag -> id`` of every tag ever PUT (a tag stays known when the last item
    carrying it is deleted or retagged: it then matches nothing), per tag the set of rows
    carrying it, and per row its tag ids. ``rows_of(tag_id)`` answers a sorted int64 array,
    cached until one of the tag's rows changes. Unlike ``engine.core.tags.TagProfiles``
    (the ranker's taste feature, at most 8 tags per item), every tag of an item counts here.
Fields
    ``field -> float64 (n,)`` column, ``NaN`` where an item has no value. Dates are stored as
    unix seconds (the API converts ISO-8601), so a date range is a numeric range.

Memory: per tagged row a tuple of tag ids plus one set entry per (tag, row); 8 bytes per row
per field ever seen. The index is derived from the catalogue's metadata (``Catalogue.meta``):
snapshots do not store it, ``Catalogue.set_meta`` rebuilds it row by row on restore.
"""

from __future__ import annotations

import math

import numpy as np

from engine.core.arrays import ensure_capacity

MEMO_ENTRIES = 16  # masks kept by ``ItemAttributes.memo`` (each n_items bytes)


class ItemAttributes:
    """Per-tag row sets and per-field value columns of the catalogue rows.

    Rows are catalogue rows (``Catalogue.index``); ``n`` grows with the catalogue (rows of
    items never PUT with metadata have no tags and ``NaN`` fields).
    """

    def __init__(self) -> None:
        self.tag_ids: dict[str, int] = {}
        self.tag_names: list[str] = []
        self._tag_rows: list[set[int]] = []
        self._tag_cache: dict[int, np.ndarray] = {}
        self.row_tags: dict[int, tuple[int, ...]] = {}
        self.fields: dict[str, np.ndarray] = {}
        self._row_fields: dict[int, tuple[str, ...]] = {}
        self.n = 0
        self.version = 0  # bumped by every ``set``: what ``memo`` keys its entries on
        self._memo: dict = {}
        self._memo_version = 0

    def grow(self, n: int) -> None:
        """Make room for ``n`` rows (new rows: no tags, ``NaN`` fields)."""
        if n > self.n:
            for name, col in self.fields.items():
                self.fields[name] = ensure_capacity(col, n, fill=math.nan)
            self.n = n

    # ------------------------------------------------------------------ writes
    def set(self, row: int, tags: list[str] | tuple = (), fields: dict[str, float] | None = None) -> None:
        """Replace row ``row``'s tags (duplicates ignored) and fields (``name -> finite
        float``; a field the row had and ``fields`` lacks becomes ``NaN``).

        Raises:
            ValueError: a field value that is not a finite number (the API refuses these).
        """
        self.grow(row + 1)
        self.version += 1
        for t in self.row_tags.pop(row, ()):
            self._tag_rows[t].discard(row)
            self._tag_cache.pop(t, None)
        ids = []
        for tag in dict.fromkeys(tags or ()):
            t = self.tag_ids.get(tag)
            if t is None:
                t = self.tag_ids[tag] = len(self.tag_names)
                self.tag_names.append(tag)
                self._tag_rows.append(set())
            self._tag_rows[t].add(row)
            self._tag_cache.pop(t, None)
            ids.append(t)
        if ids:
            self.row_tags[row] = tuple(ids)
        for name in self._row_fields.pop(row, ()):
            self.fields[name][row] = math.nan
        fields = fields or {}
        for name, value in fields.items():
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"fields.{name}: {value!r} is not a finite number")
            col = self.fields.get(name)
            if col is None:
                col = self.fields[name] = np.full(max(self.n, 64), math.nan)
            col[row] = value
        if fields:
            self._row_fields[row] = tuple(fields)

    def clear(self, row: int) -> None:
        """Drop every tag and field of ``row`` (a deleted item)."""
        self.set(row)

    # ------------------------------------------------------------------ reads
    def memo(self, key, build):
        """``build()`` for ``key`` (hashable), kept until the next ``set`` (at most
        ``MEMO_ENTRIES`` entries, the oldest dropped first): a request's filter mask is
        built once for as long as no item's metadata changes (``engine.core.filters``). The
        value is shared: callers must not modify it. An unhashable key is built every time."""
        if self._memo_version != self.version:
            self._memo.clear()
            self._memo_version = self.version
        try:
            hit = self._memo.get(key)
        except TypeError:
            return build()
        if hit is None:
            hit = build()
            if len(self._memo) >= MEMO_ENTRIES:
                del self._memo[next(iter(self._memo))]
            self._memo[key] = hit
        return hit

    def tag_id(self, tag: str) -> int | None:
        """Id of ``tag``, or None when no item was ever PUT with it."""
        return self.tag_ids.get(tag)

    def rows_of(self, tag_id: int) -> np.ndarray:
        """Sorted int64 rows carrying tag ``tag_id`` (a cached array: do not modify)."""
        rows = self._tag_cache.get(tag_id)
        if rows is None:
            s = self._tag_rows[tag_id]
            rows = self._tag_cache[tag_id] = np.sort(np.fromiter(s, dtype=np.int64, count=len(s)))
        return rows

    def tags_of(self, row: int) -> tuple[int, ...]:
        """Tag ids of ``row`` (empty when untagged)."""
        return self.row_tags.get(row, ())

    def column(self, name: str) -> np.ndarray | None:
        """Values of field ``name`` for rows ``0..n-1`` (float64 view, ``NaN`` = no value),
        or None when no item was ever PUT with it."""
        col = self.fields.get(name)
        return None if col is None else col[: self.n]
