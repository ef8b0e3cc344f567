"""The item catalogue: id <-> dense row index, metadata and visibility."""

from __future__ import annotations

import numpy as np

from engine.core.arrays import PackedIds


class Catalogue:
    """Items known to the engine, each with a dense row index into the serving arrays.

    Items become known from feedback (``add`` on the write path) or from
    ``PUT /items/{item_id}`` with metadata. ``get`` never creates an entry, so the read
    path cannot grow the catalogue. Hidden items stay known but are never recommended.
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.packed = PackedIds()  # the same ids, packed for snapshots
        self.index: dict[str, int] = {}
        self.meta: dict[int, dict] = {}
        self._hidden: set[int] = set()
        self.hidden_idx = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, item_id: str) -> int | None:
        """Row index of ``item_id`` or None when unknown (creates nothing)."""
        return self.index.get(item_id)

    def add(self, item_id: str) -> int:
        """Row index of ``item_id``, registering it when new."""
        idx = self.index.get(item_id)
        if idx is None:
            idx = len(self.ids)
            self.ids.append(item_id)
            self.packed.append(item_id)
            self.index[item_id] = idx
        return idx

    def load_ids(self, ids: list[str], text: np.ndarray, lengths: np.ndarray) -> None:
        """Register ``ids`` (distinct, rows in order) into an empty catalogue at once, with
        their packed form (``PackedIds.arrays``) as a snapshot holds it: the same as ``add``
        of each id in turn, without per-id packing."""
        if self.ids:
            raise ValueError("load_ids needs an empty catalogue")
        self.ids = list(ids)
        self.index = dict(zip(self.ids, range(len(self.ids))))
        self.packed = PackedIds.from_arrays(text, lengths)

    def upsert(self, item_id: str, meta: dict | None = None, hidden: bool | None = None) -> int:
        """Register or update an item's metadata / visibility; returns its row index."""
        idx = self.add(item_id)
        if meta is not None:
            self.meta[idx] = meta
        if hidden is not None:
            (self._hidden.add if hidden else self._hidden.discard)(idx)
            self.hidden_idx = np.fromiter(sorted(self._hidden), dtype=np.int64, count=len(self._hidden))
        return idx
