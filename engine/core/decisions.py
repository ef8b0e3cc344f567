"""The logged decisions of the serving policy, joined with their rewards: the off-policy
dataset champion/challenger and ``freshrec evaluate`` read.

A served slate (a ``slate`` event in the stream: items, the serving policy's per-slot
propensities, the probabilities other policies would have given the same slots) opens a
decision; a positive that names its recommendation id and slot (``Event.position``) sets that
slot's reward to 1. A decision is complete once ``reward_window_s`` of event time has passed
since it was served; the last ``window`` complete decisions are kept (memory: one small
record per decision). Everything is a function of the stream, so a replay keeps the same
window. ``as_dicts`` gives the decision-log lines of ``simulators.evaluate`` (JSON lines).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from engine.core.ope import LoggedSlates


@dataclass
class Decision:
    """One served slate and what came of it."""

    recommendation_id: str
    user_id: str
    t: float
    items: list[str]
    logging: list[float]
    targets: dict[str, list[float]] = field(default_factory=dict)
    context: dict | None = None
    rewards: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        """The decision-log line (``simulators.evaluate``'s format)."""
        return {"recommendation_id": self.recommendation_id, "user_id": self.user_id, "t": self.t,
                "context": self.context, "items": self.items, "logging": self.logging, "rewards": self.rewards,
                "rhat": None, "targets": {name: {"p": p, "rhat": None} for name, p in self.targets.items()}}


class DecisionLog:
    """Open decisions waiting for rewards, and the window of complete ones.

    Args:
        reward_window_s: event time after which a decision's rewards are final.
        window: complete decisions kept (the evaluation window).
    """

    def __init__(self, reward_window_s: float = 1800.0, window: int = 20_000) -> None:
        self.reward_window_s = reward_window_s
        self.open: OrderedDict[str, Decision] = OrderedDict()
        self.complete: deque[Decision] = deque(maxlen=window)
        self.closed = 0  # decisions completed since this log began (the window keeps only the last ``window``)

    def served(self, decision: Decision) -> None:
        """A slate was served (rewards start at 0)."""
        decision.rewards = [0.0] * len(decision.items)
        self.open[decision.recommendation_id] = decision

    def reward(self, recommendation_id: str | None, position: int | None, item_id: str) -> None:
        """A positive on ``item_id`` joined slate ``recommendation_id`` at ``position`` (or
        wherever the slate holds the item, when the event carries no position)."""
        d = self.open.get(recommendation_id) if recommendation_id else None
        if d is None:
            return
        if position is None and item_id in d.items:
            position = d.items.index(item_id)
        if position is not None and 0 <= position < len(d.items) and d.items[position] == item_id:
            d.rewards[position] = 1.0

    def advance(self, now: float) -> None:
        """Close the decisions older than the reward window at event time ``now``."""
        while self.open:
            rid, d = next(iter(self.open.items()))
            if d.t > now - self.reward_window_s:
                break
            del self.open[rid]
            self.complete.append(d)
            self.closed += 1

    def erase(self, user_id: str) -> int:
        """Drop every decision (open or complete) served to ``user_id``; how many."""
        open_ = [rid for rid, d in self.open.items() if d.user_id == user_id]
        for rid in open_:
            del self.open[rid]
        kept = [d for d in self.complete if d.user_id != user_id]
        dropped = len(self.complete) - len(kept)
        if dropped:
            self.complete = deque(kept, maxlen=self.complete.maxlen)
        return len(open_) + dropped

    def as_dicts(self, last: int | None = None) -> list[dict]:
        """The last ``last`` complete decisions as decision-log lines."""
        items = list(self.complete)[-last:] if last else list(self.complete)
        return [d.as_dict() for d in items]

    def logged(self, target: str, last: int | None = None) -> LoggedSlates | None:
        """The complete decisions that carry ``target``'s probabilities, as arrays for
        ``engine.core.ope`` (``"logging"``: the serving policy itself); None when none do."""
        rows = [d for d in (list(self.complete)[-last:] if last else self.complete)
                if target == "logging" or target in d.targets]
        if not rows:
            return None
        k = max(len(d.items) for d in rows)
        shape = (len(rows), k)
        rewards, logging, p = np.zeros(shape), np.ones(shape), np.zeros(shape)
        mask = np.zeros(shape, dtype=bool)
        for i, d in enumerate(rows):
            m = len(d.items)
            rewards[i, :m] = d.rewards
            logging[i, :m] = d.logging
            p[i, :m] = d.logging if target == "logging" else d.targets[target]
            mask[i, :m] = True
        return LoggedSlates(rewards=rewards, logging=logging, target=p, mask=mask)
