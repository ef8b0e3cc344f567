"""Reference rankers computed in the same replay: all-time and decayed popularity."""

from __future__ import annotations

import numpy as np

from engine.core.catalogue import Catalogue
from engine.core.ranking import top_k
from engine.core.trend import DecayedPopularity

DECAY_HALF_LIVES_H = (12.0, 24.0, 48.0, 168.0)
_ALL_TIME_S = 1e15  # a half-life so long that nothing decays


class PopularityAnchors:
    """Popularity counters over positives, all sharing one item index and the same
    exclusion rule as freshrec (items the user already interacted with are never ranked).

    Names: ``popularity`` (all-time) and ``decayed_<h>h`` for each half-life in hours.
    """

    def __init__(self, half_lives_h: tuple[float, ...] = DECAY_HALF_LIVES_H) -> None:
        self.catalogue = Catalogue()
        self.counters = {"popularity": DecayedPopularity(_ALL_TIME_S)}
        for h in half_lives_h:
            self.counters[f"decayed_{h:g}h"] = DecayedPopularity(h * 3600.0)
        self.seen: dict[str, set[int]] = {}

    def recommend(self, user_id: str, k: int = 10) -> dict[str, list[str]]:
        """Top-k item ids per anchor for ``user_id``."""
        n = len(self.catalogue)
        seen = self.seen.get(user_id)
        exclude = np.fromiter(seen, dtype=np.int64, count=len(seen)) if seen else None
        out = {}
        for name, counter in self.counters.items():
            counter.grow(n)
            idx, _ = top_k(counter.log_score[:n].copy(), k, exclude)
            out[name] = [self.catalogue.ids[i] for i in idx.tolist()]
        return out

    def random_hit(self, user_id: str, item_id: str, k: int = 10) -> float:
        """The chance that a random slate of ``k`` known items the user has not interacted
        with contains ``item_id`` (0 for an item not known yet): the random-slate HR@k."""
        idx = self.catalogue.get(item_id)
        seen = self.seen.get(user_id, ())
        if idx is None or idx in seen:
            return 0.0
        return min(1.0, k / (len(self.catalogue) - len(seen)))

    def learn(self, user_id: str, item_id: str, t: float, positive: bool) -> None:
        """Register an interaction; positives count towards popularity at event time ``t``."""
        idx = self.catalogue.add(item_id)
        self.seen.setdefault(user_id, set()).add(idx)
        for counter in self.counters.values():
            counter.grow(len(self.catalogue))
            if positive:
                counter.add(idx, t)
