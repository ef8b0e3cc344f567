"""freshrec engine: online learning, ranking, durable feedback and snapshots.

This package is a library that knows nothing of HTTP (it never imports ``api``).
The path of one click::

    events.Event --(feedback_log.append: Redis Stream, durable)--> learner.Learner
        --> recommender.Recommender.apply --> model / trend / cooccurrence mirrors
    recommender.Recommender.recommend --> ranking.top_k (numpy) --> [(item_id, score)]
    learner.Learner --(every N events / T s)--> snapshots.SnapshotStore (Redis)
"""

from engine.config import EngineConfig
from engine.events import Event
from engine.recommender import Recommender

__all__ = ["EngineConfig", "Event", "Recommender"]
