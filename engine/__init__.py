"""freshrec engine: online learning, ranking, durable feedback and snapshots.

A library that knows nothing of HTTP (it never imports ``api``), in three layers:

``engine.core``
    the pure learning core (no Redis, no asyncio, no I/O): events and their semantics,
    catalogue, trend, co-occurrence, the River factor model, ranking, the recommender, the
    forgetting guard's decisions, the snapshot codec.
``engine.storage``
    Redis behind small classes: the feedback log (and its intake), snapshots and their
    retention, served slates, key names, the embedded redis-server, the signing key.
``engine.roles``
    what runs: the learner loop, the checkpointer, the replica follower, composed by one
    ``Node`` per process that owns the Redis client.

``engine.config`` holds the parameters all three take. The path of one click::

    roles.node.Node.accept -> storage.feedback_log.FeedbackLog.accept (validate, trust, XADD)
        -> roles.learner.Learner (XREADGROUP) -> core.guard.GuardedRecommender.apply
        -> core.recommender.Recommender.apply (trend, co-occurrence, River BiasedMF)

and of one slate: ``Node.recommend`` -> ``GuardedRecommender.recommend`` (rank, slate id,
record, alarm) -> ``Recommender.recommend`` -> ``core.ranking.top_k``.
"""

from engine.config import EngineConfig
from engine.core.events import Event
from engine.core.recommender import Recommender

__all__ = ["EngineConfig", "Event", "Recommender"]
