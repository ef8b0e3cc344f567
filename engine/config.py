"""Engine configuration: one dataclass, every knob documented with its unit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineConfig:
    """Tunable parameters of the engine.

    Model
        n_factors: latent dimension of the River ``reco.BiasedMF`` (factors per user/item).
        learning_rate: SGD step size for biases and latent factors.
        l2: L2 regularisation on biases and latent factors.
        negatives_per_positive: implicit negatives per positive event, drawn uniformly from
            the last 4,096 positives (so popularity-proportional over that recent window;
            the popularity-aware sampling of word2vec / Rendle & Freudenthaler, WSDM 2014).
        seed: seeds latent initialisation (per id, so it is order independent) and
            negative sampling (per event sequence number), making learning deterministic
            given the event order.

    Scoring (see ``engine.recommender``)
        trend_half_life_h: half-life of the decayed-popularity trend signal, hours of
            event time.
        cooc_weight: weight of the item-to-item co-occurrence signal.
        cooc_history: how many of the user's most recent positives feed co-occurrence.
        cooc_neighbours: co-occurrence neighbours K kept per item (Space-Saving); memory
            is reserved at 8 * K bytes per item (2 KB at 256), and twice that again with
            the guard's two rollback points (``engine.cooccurrence``).
        mf_weight: weight of the BiasedMF score.

    Events
        positive_threshold: a ``rating`` event with value >= this is a positive.
        reward_window_s: an ``impression`` not followed by a click on the same item
            within this many seconds (event time) becomes a negative.

    Snapshots
        snapshot_every_events / snapshot_every_s: checkpoint after this many learned
            events or this many seconds (processing time), whichever comes first.
        snapshots_recent / snapshots_hours / snapshots_max_bytes: retention: the newest
            ``snapshots_recent`` snapshots, plus the newest of every hour for the last
            ``snapshots_hours`` hours, within ``snapshots_max_bytes`` in total.
        snapshot_write_mb_s: pace of snapshot writes to Redis (MB/s; 0 = as fast as
            possible). Unpaced, Redis ingesting 70 MB at full speed takes a core and the
            memory bus from serving on a small machine; 100 MB/s writes a 70 MB checkpoint
            (100k users + 100k items, 32 factors) in ~0.8 s (measured, load/bench_checkpoint.py).
        key_prefix: Redis key prefix; wrapped in a hash tag so every key lives in one
            Redis Cluster slot.
    """

    n_factors: int = 16
    learning_rate: float = 0.05
    l2: float = 0.01
    negatives_per_positive: int = 4
    seed: int = 42

    trend_half_life_h: float = 36.0
    cooc_weight: float = 6.0
    cooc_history: int = 10
    cooc_neighbours: int = 256
    mf_weight: float = 1.0

    positive_threshold: float = 8.0
    reward_window_s: float = 1800.0

    snapshot_every_events: int = 10_000
    snapshot_every_s: float = 60.0
    snapshots_recent: int = 10
    snapshots_hours: float = 25.0
    snapshots_max_bytes: int = 2 * 1024**3
    snapshot_write_mb_s: float = 100.0
    key_prefix: str = "freshrec"
