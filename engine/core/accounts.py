"""The guard's accounts: which users are vetted (have trusted history) and how many trusted
clicks each has, kept in a form a snapshot takes without per-id Python work.

An account is vetted from its first trusted event on (``engine.core.trust``); its trusted
clicks make it *established* once they reach ``GuardConfig.established_clicks`` (the
validation's reservoir, its exposure sample and the prequential alarm read that). Intake
decides with ``in`` whether an unjoined event is ``vetted`` or ``unvetted``, and so how much
it weighs.

Layout (like the model's users, ``engine.core.model.FactorModel``): one row per account in
vetting order, ids packed as they arrive (``engine.core.arrays.PackedIds``), trusted clicks
in an int64 array, a dead flag per row for accounts forgotten with their user
(``engine.core.eviction``). Dead rows are compacted away once they are a quarter of all
rows, so memory stays within ~4/3 of the live accounts and the cost is amortised O(1) per
forgotten account. ``state`` is four prefix views; ``load`` restores the rows exactly (dead
ones included), so a restored guard compacts, samples and snapshots like an uninterrupted
one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from engine.core.arrays import PackedIds, ensure_capacity, unpack_ids

_COMPACT_SHARE = 0.25
_COMPACT_MIN_ROWS = 1024


class Accounts:
    """The set of vetted accounts (``in``, ``add``, ``discard``, ``len``, iteration) with a
    count of trusted clicks per account."""

    def __init__(self) -> None:
        self.ids: list[str] = []  # by row; forgotten rows keep their id until compaction
        self.rows: dict[str, int] = {}  # live accounts only
        self.packed = PackedIds()
        self.clicks = np.zeros(0, dtype=np.int64)
        self.dead = np.zeros(0, dtype=bool)
        self._dead = 0

    # ------------------------------------------------------------- the vetted set
    def __contains__(self, user: object) -> bool:
        return user in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def add(self, user: str) -> int:
        """Vet ``user`` (no-op when vetted); returns its row."""
        row = self.rows.get(user)
        if row is None:
            row = len(self.ids)
            self.ids.append(user)
            self.packed.append(user)
            self.rows[user] = row
            self.clicks = ensure_capacity(self.clicks, row + 1)
            self.dead = ensure_capacity(self.dead, row + 1, False)
        return row

    def discard(self, user: str) -> None:
        """Forget ``user``'s account (vetting and trusted clicks); no-op when unknown."""
        row = self.rows.pop(user, None)
        if row is None:
            return
        self.dead[row] = True
        self.clicks[row] = 0
        self._dead += 1
        if self._dead >= _COMPACT_MIN_ROWS and self._dead >= _COMPACT_SHARE * len(self.ids):
            self._compact()

    # ------------------------------------------------------------- trusted clicks
    def trusted_click(self, user: str) -> int:
        """Count one more trusted click of ``user`` (vetting it if needed); returns its count."""
        row = self.add(user)
        self.clicks[row] += 1
        return int(self.clicks[row])

    def clicks_of(self, user: str) -> int:
        """Trusted clicks of ``user`` (0 when not vetted)."""
        row = self.rows.get(user)
        return 0 if row is None else int(self.clicks[row])

    def established(self, min_clicks: int) -> list[str]:
        """Accounts with at least ``min_clicks`` trusted clicks, in vetting order."""
        n = len(self.ids)
        rows = np.flatnonzero((self.clicks[:n] >= min_clicks) & ~self.dead[:n])
        ids = self.ids
        return [ids[r] for r in rows.tolist()]

    # ------------------------------------------------------------- snapshots
    def state(self) -> dict[str, np.ndarray]:
        """Arrays for a snapshot, views of the live ones (finish with them before the next
        change): packed ids (``ids_text`` uint8, ``ids_len`` int64), ``clicks`` int64 and
        ``dead`` bool per row."""
        n = len(self.ids)
        text, lengths = self.packed.arrays()
        return {"ids_text": text, "ids_len": lengths, "clicks": self.clicks[:n], "dead": self.dead[:n]}

    @classmethod
    def load(cls, arrays: dict[str, np.ndarray]) -> "Accounts":
        """Inverse of ``state`` (rows, dead ones included, as they were)."""
        out = cls()
        out.ids = unpack_ids(arrays["ids_text"], arrays["ids_len"])
        out.packed = PackedIds.from_arrays(arrays["ids_text"], arrays["ids_len"])
        out.clicks = arrays["clicks"].astype(np.int64, copy=True)
        out.dead = arrays["dead"].astype(bool, copy=True)
        out._dead = int(out.dead.sum())
        out.rows = {u: r for r, (u, gone) in enumerate(zip(out.ids, out.dead.tolist())) if not gone}
        return out

    def as_dict(self) -> dict[str, int]:
        """``{account: trusted clicks}`` of the live accounts, in vetting order (tests, debug)."""
        return {u: int(self.clicks[r]) for u, r in self.rows.items()}

    def _compact(self) -> None:
        n = len(self.ids)
        alive = ~self.dead[:n]
        ids = [u for u, a in zip(self.ids, alive.tolist()) if a]
        clicks = self.clicks[:n][alive].copy()
        self.__init__()
        for u in ids:
            self.add(u)
        self.clicks[: len(ids)] = clicks
