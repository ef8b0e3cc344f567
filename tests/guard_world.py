"""A small seeded world for the forgetting guard, in process: users with fixed tastes ask
for slates and click what they like in them (joined, trusted clicks that vet and establish
them) or click organically, and every eighth round a burst of sybil accounts clicks two
target items they were never shown. With ``GUARD`` its windows are short and bursts make
the guard roll back several times within ~1,700 events."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine import EngineConfig, Event
from engine.config import GuardConfig
from engine.core.guard import GuardedRecommender

GUARD = GuardConfig(window_events=300, early_suspicious=60, min_suspicious=10, reservoir_size=500,
                    quality_pairs=100, exposure_users=60, reference_every=2)


def guard_world(seed: int = 1, rounds: int = 24, users: int = 60, items: int = 150,
                on_event: Callable[[int, GuardedRecommender], None] | None = None,
                guard: GuardConfig = GUARD) -> tuple[GuardedRecommender, list[Event]]:
    """Run the world through a fresh guard; returns it and the events it applied, each
    carrying the trust decided when it was made (as the server's intake stores it), so the
    same list can be applied to another guard. ``on_event(n, guard)`` runs after the n-th
    event is applied."""
    rng = np.random.default_rng(seed)
    g = GuardedRecommender(EngineConfig(), guard, slate_seed=seed)
    tastes = {f"u{u}": sorted(rng.choice(items, 25, replace=False).tolist()) for u in range(users)}
    t = 1_000_000.0
    events: list[Event] = []

    def emit(e: Event) -> None:
        e = Event(e.user_id, e.item_id, e.kind, e.value, e.timestamp, recommendation_id=e.recommendation_id,
                  trust=g.join.classify(e))
        events.append(e)
        g.apply(e)
        if on_event is not None:
            on_event(len(events), g)

    for r in range(rounds):
        for u in rng.choice(users, min(users, 60), replace=False).tolist():
            user = f"u{u}"
            t += 10
            slate = g.recommend(user, 10, now=t)
            liked = set(tastes[user])
            hit = [i for i in slate.item_ids if i.startswith("i") and int(i[1:]) in liked]
            if hit:
                emit(Event(user, hit[0], "click", timestamp=t, recommendation_id=slate.recommendation_id))
            else:
                emit(Event(user, f"i{rng.choice(tastes[user])}", "click", timestamp=t))
        if r % 8 == 7:
            for b in range(80):
                t += 1
                emit(Event(f"bot{r}-{b}", f"t{b % 2}", "click", timestamp=t))
    return g, events
