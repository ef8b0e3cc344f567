"""Promotions (Amazon Personalize's term): a set of items, named by ids or by tags, that is
guaranteed a number of slots in a slate.

A promotion's slots are filled first, with the best items of its set by the serving ranker
that the request's filters and diversity cap admit (``engine.core.ruled_slates``); the other
slots are the ranker's (or the exploration policy's) choice among the remaining items. If the
set has fewer admissible items than slots, it gets as many as it has and the other slots go
to the ranker. Promoted items are marked in the answer (``promoted``), are placed among the
other items by score (so they keep their sorted order relative to each other, as in
Personalize, but without Personalize's random placement: a deterministic position keeps the
slate's propensities exact), and are not a random choice of the serving policy: their
propensity is 1.0 and they are never ``explored``.

Unlike Personalize, the request's filters apply to promoted items too: a request that asks
for dramas only never gets a promoted comedy. Unknown item ids are ignored (as in the
request's ``exclude``); an unknown tag raises ``UnknownName``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.core.filters import tag_mask


@dataclass(frozen=True)
class Promotion:
    """``slots`` (>= 1) slots for the items ``items`` (ids) or carrying any of ``tags``;
    ``name`` is for the caller's bookkeeping."""

    slots: int
    items: tuple[str, ...] = field(default_factory=tuple)
    tags: tuple[str, ...] = field(default_factory=tuple)
    name: str | None = None

    def mask(self, catalogue, n: int, loc: tuple = ("promotions", 0)) -> np.ndarray:
        """Bool (n,) mask of the promoted set's catalogue rows (deleted items never).

        Raises:
            UnknownName: an unknown tag.
        """
        out = tag_mask(catalogue.attributes, self.tags, "any", n, (*loc, "tags")) if self.tags else np.zeros(n, bool)
        rows = [catalogue.live(i) for i in self.items]
        rows = [r for r in rows if r is not None]
        if rows:
            out[np.array(rows, dtype=np.int64)] = True
        return out
