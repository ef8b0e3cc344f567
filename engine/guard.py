"""Forgetting guard (work in progress): wraps a Recommender for in-process use.

Interface used by the synthetic simulator (simulators/synthetic.py):

    g = GuardedRecommender(EngineConfig(...), GuardConfig(enabled=True|False))
    slate = g.recommend(user_id, k)        -> Slate(recommendation_id, item_ids)
    g.apply(event)                          learn one Event (same code path as the server's learner)
    g.guard_events                          list of dicts {"kind": "rollback"|"quarantine"|"alarm",
                                            "at_event": int, ...}
    g.validation_windows                    int
    g.recommender                           the live Recommender (read-only use)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config import EngineConfig
from engine.events import Event
from engine.recommender import Recommender


@dataclass
class GuardConfig:
    """Guard switches and thresholds (filled in by the guard implementation)."""

    enabled: bool = True


@dataclass(frozen=True)
class Slate:
    """A served slate: its id (join key for impressions/clicks) and item ids, best first."""

    recommendation_id: str
    item_ids: list[str]


@dataclass
class GuardedRecommender:
    """A Recommender plus the forgetting guard (currently a pass-through)."""

    config: EngineConfig = field(default_factory=EngineConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        self.recommender = Recommender(self.config)
        self.guard_events: list[dict] = []
        self.validation_windows = 0
        self._served = 0

    def recommend(self, user_id: str, k: int = 10) -> Slate:
        items = [r.item_id for r in self.recommender.recommend(user_id, k)]
        self._served += 1
        return Slate(f"r{self._served}", items)

    def apply(self, event: Event) -> None:
        self.recommender.apply(event)
