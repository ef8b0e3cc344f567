"""A synthetic explicit-rating log with long histories and bulk sittings: a stand-in, with
known structure, for the logs freshrec has not seen (1-5 stars, users who rate dozens of
items in one sitting, months of history, a catalogue that grows).

World: ``n_genres`` genre centres in R^d; item i has a genre, a latent ``y_i`` around its
centre and a popularity ``q_i ~ N(0, 1)``; it is released at a uniformly random time of the
first 80 % of the log (a few at time 0). User u has a primary and a secondary genre and a
latent ``x_u``. The log is a sequence of sittings: a user (drawn by a log-normal activity)
sits down at a random time, and rates ``sitting_min..sitting_max`` released items she has
not rated, drawn with ``P(i) ~ exp(popularity * q_i + taste * <x_u, y_i> - recency * age_i)``
(taste, popularity and novelty all matter), seconds apart; the rating is her affinity
``<x_u, y_i> + 0.3 q_i`` plus noise, mapped to 1..5 by fixed quantiles of the affinity
distribution. Every random choice comes from one seeded generator.

    python -m simulators.rating_log OUT.csv [--users 900] [--items 1600] [--ratings 100000] [--seed 0]
        [--popularity 1] [--taste 2.5] [--recency 1]

(``--recency 0``: old items are drawn as readily as new ones, so all-time popularity is the
strong anchor rather than a short trend, as in a catalogue of old films rated in sittings.)

writes ``user_id,item_id,rating,timestamp`` (time-ordered), the format ``freshrec replay
--format csv`` reads.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

T0 = 880_000_000.0  # 1997-11-20: the log starts here
SPAN_S = 200 * 86400.0  # ~7 months


def generate(n_users: int = 900, n_items: int = 1600, n_ratings: int = 100_000, seed: int = 0,
             n_genres: int = 18, dim: int = 12, sitting_min: int = 5, sitting_max: int = 60,
             popularity: float = 1.0, taste: float = 2.5, recency: float = 1.0) -> list[tuple[str, str, int, int]]:
    """The log as ``(user_id, item_id, rating 1..5, unix s)`` rows, time-ordered."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_genres, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    genre = rng.integers(0, n_genres, n_items)
    Y = centres[genre] + 0.6 * rng.normal(size=(n_items, dim)) / math.sqrt(dim)
    q = rng.normal(size=n_items)
    released = np.where(rng.random(n_items) < 0.15, T0, T0 + rng.random(n_items) * 0.8 * SPAN_S)
    prim, sec = rng.integers(0, n_genres, n_users), rng.integers(0, n_genres, n_users)
    X = centres[prim] + 0.5 * centres[sec] + 0.5 * rng.normal(size=(n_users, dim)) / math.sqrt(dim)
    activity = rng.lognormal(0.0, 0.8, n_users)
    activity /= activity.sum()
    aff = X @ Y.T + 0.3 * q
    cuts = np.quantile(aff, [0.35, 0.6, 0.8, 0.93])  # rating 1..5 by affinity quantiles
    rated = np.zeros((n_users, n_items), dtype=bool)
    rows: list[tuple[str, str, int, int]] = []
    while len(rows) < n_ratings:
        u = int(rng.choice(n_users, p=activity))
        t = T0 + rng.random() * SPAN_S
        avail = (released <= t) & ~rated[u]
        if not avail.any():
            continue
        age_d = np.maximum(t - released, 0.0) / 86400.0
        logit = popularity * q + taste * (X[u] @ Y.T) - recency * np.log1p(age_d)
        logit = np.where(avail, logit, -np.inf)
        p = np.exp(logit - logit.max())
        p /= p.sum()
        size = min(int(rng.integers(sitting_min, sitting_max + 1)), int(avail.sum()), n_ratings - len(rows))
        items = rng.choice(n_items, size=size, replace=False, p=p)
        for j, item in enumerate(items.tolist()):
            value = aff[u, item] + 0.25 * rng.normal()
            rating = 1 + int(np.searchsorted(cuts, value))
            rows.append((f"u{u}", f"m{item}", rating, int(t + 20 * j)))
            rated[u, item] = True
    rows.sort(key=lambda r: r[3])
    return rows


def write_csv(rows: list[tuple[str, str, int, int]], path: str | Path) -> None:
    """Write rows with the header ``user_id,item_id,rating,timestamp``."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "rating", "timestamp"])
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--users", type=int, default=900)
    p.add_argument("--items", type=int, default=1600)
    p.add_argument("--ratings", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--popularity", type=float, default=1.0, help="weight of an item's popularity in a sitting's draw")
    p.add_argument("--taste", type=float, default=2.5, help="weight of the user's taste in a sitting's draw")
    p.add_argument("--recency", type=float, default=1.0,
                   help="weight of novelty: the draw's logit falls by recency * log(1 + age in days); 0: a stationary catalogue")
    a = p.parse_args(argv)
    rows = generate(a.users, a.items, a.ratings, a.seed, popularity=a.popularity, taste=a.taste, recency=a.recency)
    write_csv(rows, a.out)
    print(f"wrote {len(rows)} ratings of {a.users} users on {a.items} items to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
