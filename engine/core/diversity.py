"""The diversity cap: at most ``max_per_tag`` items per tag in one slate.

An item counts once towards each of its capped tags (every tag, or only the ``tags`` the
request names); items without a capped tag are never held back. While a slate is filled
(``engine.core.ruled_slates``), ``TagCap`` counts the capped tags of the items placed so far
and keeps ``blocked``, a bool mask over the catalogue rows of the items that carry a tag that
reached the cap: they can no longer be placed, so the exploration pool and its propensities
only ever cover items that can actually be drawn. Once a tag is full it stays full, so the
set of placeable items only shrinks slot after slot.

Filling is greedy (the best placeable item at each slot): with single-tag items it places as
many items as any choice could; with multi-tag items a different choice could sometimes fit
more (the exact problem is a matroid intersection), which greedy does not search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.core.attributes import ItemAttributes
from engine.core.filters import tag_ids


@dataclass(frozen=True)
class Diversity:
    """At most ``max_per_tag`` (>= 1) items per tag; ``tags``: only these tags are capped
    (None: every tag)."""

    max_per_tag: int
    tags: tuple[str, ...] | None = None

    def compile(self, attrs: ItemAttributes, loc: tuple = ("diversity",)) -> "CapSpec":
        """The cap resolved against the catalogue's tag ids.

        Raises:
            UnknownName: a tag of ``tags`` no item was ever PUT with.
            ValueError: ``max_per_tag`` < 1.
        """
        if self.max_per_tag < 1:
            raise ValueError(f"max_per_tag must be >= 1, not {self.max_per_tag}")
        capped = None if self.tags is None else frozenset(tag_ids(attrs, self.tags, (*loc, "tags")))
        return CapSpec(self.max_per_tag, capped)


@dataclass(frozen=True)
class CapSpec:
    """A compiled cap: ``max_per_tag`` and the capped tag ids (None: all)."""

    max_per_tag: int
    capped: frozenset[int] | None

    def start(self, attrs: ItemAttributes, n: int) -> "TagCap":
        """A fresh counter for one slate over ``n`` catalogue rows."""
        return TagCap(attrs, n, self.max_per_tag, self.capped)


class TagCap:
    """The cap's state while one slate is filled.

    Attributes:
        counts: capped tag id -> items placed with it.
        blocked: bool (n,) catalogue rows carrying a tag that reached the cap.
    """

    def __init__(self, attrs: ItemAttributes, n: int, max_per_tag: int, capped: frozenset[int] | None) -> None:
        self.attrs = attrs
        self.max_per_tag = max_per_tag
        self.capped = capped
        self.counts: dict[int, int] = {}
        self.blocked = np.zeros(n, dtype=bool)

    def admits(self, row: int) -> bool:
        """Whether ``row`` can still be placed."""
        return not self.blocked[row]

    def place(self, row: int) -> None:
        """Count ``row``'s capped tags; a tag reaching the cap blocks every row carrying it."""
        for t in self.attrs.tags_of(row):
            if self.capped is not None and t not in self.capped:
                continue
            c = self.counts.get(t, 0) + 1
            self.counts[t] = c
            if c >= self.max_per_tag:
                rows = self.attrs.rows_of(t)
                self.blocked[rows[rows < len(self.blocked)]] = True
