"""Small builders shared by tests."""

from __future__ import annotations

from engine import EngineConfig, Event, Recommender


def rating(user: str, item: str, value: float, t: float) -> Event:
    return Event(user_id=user, item_id=item, kind="rating", value=value, timestamp=t)


def trained(n_users: int = 30, n_items: int = 40, n_events: int = 600, seed: int = 0, **config) -> Recommender:
    """A recommender trained on a seeded random stream of ratings."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rec = Recommender(EngineConfig(**config))
    for t in range(n_events):
        rec.apply(rating(f"u{rng.integers(n_users)}", f"i{rng.integers(n_items)}", float(rng.integers(0, 11)), 1000.0 + 60 * t))
    return rec


def served_model(bodies: list[dict]):
    """The model the server learns from these ``/feedback`` bodies: events go through the
    forgetting guard (on by default) and, joining no served slate, arrive as unvetted."""
    from engine.core.guard import GuardedRecommender

    g = GuardedRecommender()
    for b in bodies:
        g.apply(Event(b["user_id"], b["item_id"], b["event"], b.get("value"), b.get("timestamp"), trust="unvetted"))
    return g.recommender
