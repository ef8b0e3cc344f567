"""Request filters: which catalogue items a slate may hold, by their tags and by numeric or
date fields of their metadata, as one boolean mask over the catalogue rows.

A filter is pure data (``TagFilter``, ``FieldRange``, ``Filters``); ``Filters.mask`` turns it
into a bool (n_items,) mask from the catalogue's attribute index
(``engine.core.attributes.ItemAttributes``: per-tag row arrays, per-field float64 columns).
Cost: O(n_items) to allocate the mask plus O(rows carrying the named tags) and one vectorised
comparison per field range; no Python loop over items.

Semantics:

* ``include_tags``: only items with ``any`` (at least one) / ``all`` of the tags;
* ``exclude_tags``: no item with ``any`` / ``all`` of the tags;
* ``fields``: every range must hold, ``min <= value <= max`` (inclusive, either bound
  optional; no bound: the item must have the field). An item without the field fails the
  range. Dates are unix seconds (the API converts ISO-8601).

A tag or field no item was ever PUT with raises ``UnknownName`` (the API answers 422 naming
it): a typo must not silently empty a slate. A known tag that no longer matches any item
(its items were deleted or retagged) is not an error; it matches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from engine.core.attributes import ItemAttributes


class UnknownName(ValueError):
    """A request names a tag or field the catalogue does not know.

    Attributes:
        loc: where in the request, as path segments (``("filters", "include_tags", "tags",
            0)``); the API prefixes ``"body"`` or ``"query"``.
        name: the unknown tag or field.
    """

    def __init__(self, loc: tuple, kind: str, name: str) -> None:
        super().__init__(f"unknown {kind} {name!r}: no item was ever PUT with it")
        self.loc = tuple(loc)
        self.name = name


@dataclass(frozen=True)
class TagFilter:
    """Items carrying ``any`` (at least one) or ``all`` of ``tags``."""

    tags: tuple[str, ...]
    match: Literal["any", "all"] = "any"


@dataclass(frozen=True)
class FieldRange:
    """Items whose field ``field`` is within ``[min, max]`` (floats, unix seconds for
    dates; a missing bound is open)."""

    field: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Filters:
    """A request's filters (all of them must hold)."""

    include_tags: TagFilter | None = None
    exclude_tags: TagFilter | None = None
    fields: tuple[FieldRange, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return bool((self.include_tags and self.include_tags.tags) or (self.exclude_tags and self.exclude_tags.tags)
                    or self.fields)

    def mask(self, attrs: ItemAttributes, n: int, loc: tuple = ("filters",)) -> np.ndarray:
        """Bool (n,) mask of the catalogue rows ``0..n-1`` the filters admit.

        Raises:
            UnknownName: a tag or field no item was ever PUT with (``loc`` + its position).

        The mask is shared (read only) and kept until an item's metadata next changes
        (``ItemAttributes.memo``): repeated requests with the same filters build it once.
        """
        return attrs.memo(("filters", self, n), lambda: self._build(attrs, n, loc))

    def _build(self, attrs: ItemAttributes, n: int, loc: tuple) -> np.ndarray:
        """``mask`` without the memo (a fresh, read-only array)."""
        keep = np.ones(n, dtype=bool)
        inc, exc = self.include_tags, self.exclude_tags
        if inc is not None and inc.tags:
            keep &= tag_mask(attrs, inc.tags, inc.match, n, (*loc, "include_tags", "tags"))
        if exc is not None and exc.tags:
            keep &= ~tag_mask(attrs, exc.tags, exc.match, n, (*loc, "exclude_tags", "tags"))
        for j, r in enumerate(self.fields):
            keep &= range_mask(attrs, r, n, (*loc, "fields", j, "field"))
        keep.flags.writeable = False
        return keep


def tag_ids(attrs: ItemAttributes, tags: tuple[str, ...] | list[str], loc: tuple) -> list[int]:
    """Ids of ``tags``.

    Raises:
        UnknownName: the first unknown tag (``loc`` + its index in ``tags``).
    """
    ids = []
    for j, tag in enumerate(tags):
        t = attrs.tag_id(tag)
        if t is None:
            raise UnknownName((*loc, j), "tag", tag)
        ids.append(t)
    return ids


def tag_mask(attrs: ItemAttributes, tags: tuple[str, ...] | list[str], match: str, n: int, loc: tuple) -> np.ndarray:
    """Bool (n,) mask of the rows carrying ``any`` / ``all`` of ``tags``.

    Raises:
        UnknownName: an unknown tag.
        ValueError: ``match`` is neither ``any`` nor ``all``.
    """
    ids = tag_ids(attrs, tags, loc)
    out = np.zeros(n, dtype=bool)
    if match == "any":
        for t in ids:
            out[attrs.rows_of(t)] = True
    elif match == "all":
        sets = sorted((attrs.rows_of(t) for t in dict.fromkeys(ids)), key=len)
        rows = sets[0]
        for other in sets[1:]:
            rows = np.intersect1d(rows, other, assume_unique=True)
        out[rows] = True
    else:
        raise ValueError(f"match must be 'any' or 'all', not {match!r}")
    return out


def range_mask(attrs: ItemAttributes, r: FieldRange, n: int, loc: tuple) -> np.ndarray:
    """Bool (n,) mask of the rows whose field ``r.field`` lies in ``[r.min, r.max]``
    (missing values fail).

    Raises:
        UnknownName: no item was ever PUT with the field.
    """
    col = attrs.column(r.field)
    if col is None:
        raise UnknownName(loc, "field", r.field)
    col = col[:n]
    if r.min is None and r.max is None:
        return ~np.isnan(col)
    with np.errstate(invalid="ignore"):
        if r.max is None:
            return col >= r.min
        if r.min is None:
            return col <= r.max
        return (col >= r.min) & (col <= r.max)
