"""The guard on a real log: prequential replay of MovieTweetings in-process, guard on vs off.

Same protocol as ``freshrec replay`` (for every positive: recommend k=10 for that user,
score HR@10 / NDCG@10, then learn the event; other events are only learned), but through
``engine.core.guard.GuardedRecommender`` in-process (``simulators.prequential``), so the
guard's effect on a real organic stream is isolated. Organic ratings join no served
impression, so the guard damps every event by the same factor and, with no trusted
evidence to validate against, never rolls back.
"""

from __future__ import annotations

from engine.config import EngineConfig, GuardConfig
from simulators.datasets import BUNDLED, load_movietweetings
from simulators.prequential import prequential


def compare(limit: int | None = None, progress: bool = True) -> dict:
    """Guard off and on over the same events (ratings 0-10, a positive from 8);
    ``hr_loss`` = relative HR@10 lost with it on."""
    rows = load_movietweetings(BUNDLED / "ratings.dat")[:limit]
    config = EngineConfig(events={"rating": {"min": 0, "max": 10, "positive_threshold": 8}})
    runs = {}
    for guard in (False, True):
        r = prequential(rows, config, GuardConfig(enabled=guard), label=f"replay guard={'on' if guard else 'off'}",
                        progress=progress)
        runs["on" if guard else "off"] = {"guard": "on" if guard else "off", "events": len(rows),
                                          **{k: r[k] for k in ("positives", "hr@10", "ndcg@10", "rollbacks",
                                                               "wall_s")}}
    off, on = runs["off"], runs["on"]
    loss = max(0.0, (off["hr@10"] - on["hr@10"]) / off["hr@10"]) if off["hr@10"] else 0.0
    return {"off": off, "on": on, "hr_loss": round(loss, 4)}
