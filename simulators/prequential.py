"""Prequential (test-then-train) evaluation of the engine in process, on a rating log.

For every positive event the engine is first asked for a slate of ``K`` for that user
(scored against the event's item: HR@K, NDCG@K), then every event is learned. Used by the
replay for what the HTTP run cannot vary: the same engine learning in batches (updates held
back until the end of each hour / day / week of event time, the way a nightly job would),
and ablations (the engine with one feature group of its ranker left out). The engine is
``engine.core.guard.GuardedRecommender``, exactly what the server runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
from tqdm import tqdm

from engine.config import EngineConfig, GuardConfig
from engine.core.events import Event
from engine.core.guard import GuardedRecommender
from simulators.datasets import Rating
from simulators.metrics import hit_and_ndcg

K = 10
BATCH_PERIODS_S = {"hourly": 3600.0, "daily": 86400.0, "weekly": 7 * 86400.0}


def prequential(rows: Iterable[Rating], engine: EngineConfig, guard: GuardConfig | None = None,
                batch_s: float | None = None, kind: str = "rating", label: str = "in-process",
                progress: bool = True) -> dict:
    """Replay ``rows`` (time-ordered) through a fresh ``GuardedRecommender``.

    Args:
        rows: the log.
        engine, guard: the engine's configuration (its event schema decides what a positive is).
        batch_s: hold every update back until the event-time period of this length (s,
            aligned to the epoch) ends, then apply them in order: a batch-trained engine.
            None: learn every event at once (online).
        kind: the event type of rows whose own type is ``rating`` (a rating type of
            ``engine.events``); rows of another type (``Rating.event``) keep theirs.
        label: name on the progress bar.

    Returns:
        ``{"hr@10", "ndcg@10", "positives", "wall_s", "hits": float array per positive,
        "hr@10_exploited" / "hr@10_explored": the hits in slots that held the ranker's choice /
        an exploration pick, per positive (they add up to HR@10),
        "rollbacks": guard rollbacks, "weights": the ranker's learned weights}``.
    """
    g = GuardedRecommender(engine, guard or GuardConfig())
    semantics = g.recommender.semantics
    hits: list[float] = []
    ndcg = 0.0
    held: list[Event] = []
    period = None
    explored_hits = 0
    t0 = time.perf_counter()
    for r in tqdm(rows, desc=label, unit="ev", disable=not progress, mininterval=1.0, leave=False):
        if batch_s is not None:
            current = int(r.timestamp // batch_s)
            if period is not None and current != period:
                for event in held:
                    g.apply(event)
                held = []
            period = current
        event_type = kind if r.event == "rating" else r.event
        if semantics.is_positive(event_type, r.value):
            slate = g.recommend(r.user_id, K)
            h, n = hit_and_ndcg(slate.item_ids, r.item_id, K)
            hits.append(h)
            ndcg += n
            if h:
                explored_hits += bool(slate.explored[slate.item_ids.index(r.item_id)])
        event = Event(r.user_id, r.item_id, event_type, r.value, r.timestamp)
        if batch_s is None:
            g.apply(event)
        else:
            held.append(event)
    n = max(1, len(hits))
    rec = g.recommender
    return {"hr@10": round(sum(hits) / n, 4), "ndcg@10": round(ndcg / n, 4), "positives": len(hits),
            "hr@10_exploited": round((sum(hits) - explored_hits) / n, 4), "hr@10_explored": round(explored_hits / n, 4),
            "wall_s": round(time.perf_counter() - t0, 1), "hits": np.array(hits),
            "rollbacks": sum(1 for e in g.guard_events if e["kind"] == "rollback"),
            "weights": rec.ranker.weights() if rec.learned else None}
