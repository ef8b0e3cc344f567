"""The guard on a real log: prequential replay of MovieTweetings in-process, guard on vs off.

Same protocol as ``freshrec replay`` (for every positive: recommend k=10 for that user,
score HR@10 / NDCG@10, then learn the event; other events are only learned), but through
``engine.guard.GuardedRecommender`` in-process, so the guard's effect on a real organic
stream is isolated. Organic ratings join no served impression, so the guard damps every
event by the same factor (trend and co-occurrence rankings are scale-invariant) and, with no
trusted evidence to validate against, never rolls back.
"""

from __future__ import annotations

import time

from tqdm import tqdm

from engine.config import EngineConfig
from engine.core.events import Event
from engine.config import GuardConfig
from engine.core.guard import GuardedRecommender
from simulators.datasets import BUNDLED, load_movietweetings
from simulators.metrics import hit_and_ndcg


def prequential(guard: bool, limit: int | None = None, threshold: float = 8.0, progress: bool = True) -> dict:
    """HR@10 / NDCG@10 of the guarded (or unguarded) engine on the bundled stream."""
    rows = load_movietweetings(BUNDLED / "ratings.dat")[:limit]
    g = GuardedRecommender(EngineConfig(positive_threshold=threshold), GuardConfig(enabled=guard))
    hits = ndcg = positives = 0.0
    t0 = time.perf_counter()
    for r in tqdm(rows, desc=f"replay guard={'on' if guard else 'off'}", disable=not progress, mininterval=1.0):
        if r.value >= threshold:
            slate = g.recommend(r.user_id, 10)
            h, n = hit_and_ndcg(slate.item_ids, r.item_id, 10)
            hits += h
            ndcg += n
            positives += 1
        g.apply(Event(r.user_id, r.item_id, "rating", r.value, r.timestamp))
    return {"guard": "on" if guard else "off", "events": len(rows), "positives": int(positives),
            "hr@10": round(hits / max(positives, 1), 4), "ndcg@10": round(ndcg / max(positives, 1), 4),
            "rollbacks": sum(1 for e in g.guard_events if e["kind"] == "rollback"),
            "wall_s": round(time.perf_counter() - t0, 1)}


def compare(limit: int | None = None, progress: bool = True) -> dict:
    """Guard off and on over the same events; ``hr_loss`` = relative HR@10 lost with it on."""
    off = prequential(False, limit, progress=progress)
    on = prequential(True, limit, progress=progress)
    loss = max(0.0, (off["hr@10"] - on["hr@10"]) / off["hr@10"]) if off["hr@10"] else 0.0
    return {"off": off, "on": on, "hr_loss": round(loss, 4)}
