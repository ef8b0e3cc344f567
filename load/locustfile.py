"""Locust load test for the freshrec HTTP API: a realistic mix of reads and feedback.

Run headless (32 users, spawn 8/s, 60 s) against a running server::

    locust -f load/locustfile.py --headless -u 32 -r 8 -t 60s --host http://127.0.0.1:8000

Add ``--csv freshrec-out/locust/run`` to keep the stats as CSV. ``locust -f
load/locustfile.py --list`` lists the user classes.

Traffic per simulated user (``RecsysUser``, a ``FastHttpUser``), about 5 reads per write:

    POST /recommend  (weight 5)  {"user_id": str, "k": 10}; the user id comes from a random
                     row of the MovieTweetings ratings (so active users are asked for more
                     often, as in real traffic), or, 10% of the time, is a fresh unknown id
                     ("load-cold-<hex>") that exercises the cold-start path.
    POST /feedback   (weight 1)  a real (user, movie) pair from a random ratings row, as
                     {"user_id", "item_id", "event": "click"} (70%), "impression" (20%),
                     or {"event": "rating", "value": <the row's 0-10 rating>} (10%).

Ids are the raw strings of ``simulators/data/movietweetings-100k/ratings.dat``
(``user_id::movie_id::rating::unix_ts``; movie ids keep their leading zeros), read once at
import. Choices come from one module-level ``random.Random(42)``, so the request sequence
is reproducible up to the interleaving of the concurrent users. Any non-2xx answer (or a
connection error) is recorded as a failure.
"""

from __future__ import annotations

import random
from pathlib import Path

import sys

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenarios import _post  # noqa: E402  (shared success/failure bookkeeping)

DATA_FILE = Path(__file__).resolve().parent.parent / "simulators/data/movietweetings-100k/ratings.dat"

K = 10
COLD_SHARE = 0.10  # share of /recommend calls for a never-seen user
CLICK_SHARE = 0.70  # feedback kinds: click / impression / rating
IMPRESSION_SHARE = 0.20


def load_rows(path: Path = DATA_FILE) -> list[tuple[str, str, float]]:
    """(user_id, item_id, rating) for every row of a MovieTweetings ``ratings.dat``."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("::")
            if len(parts) >= 3 and parts[0] and parts[1]:
                rows.append((parts[0], parts[1], float(parts[2])))
    if not rows:
        raise RuntimeError(f"no ratings rows in {path}")
    return rows


ROWS = load_rows()
RNG = random.Random(42)


def recommend_body() -> dict:
    """Body of one ``POST /recommend``: a known user most of the time, else a cold one."""
    if RNG.random() < COLD_SHARE:
        user = f"load-cold-{RNG.getrandbits(48):012x}"
    else:
        user = RNG.choice(ROWS)[0]
    return {"user_id": user, "k": K}


def feedback_body() -> dict:
    """Body of one ``POST /feedback`` from a real (user, item) row of the data set."""
    user, item, rating = RNG.choice(ROWS)
    body = {"user_id": user, "item_id": item}
    r = RNG.random()
    if r < CLICK_SHARE:
        body["event"] = "click"
    elif r < CLICK_SHARE + IMPRESSION_SHARE:
        body["event"] = "impression"
    else:
        body["event"] = "rating"
        body["value"] = rating
    return body


class RecsysUser(FastHttpUser):
    """One client: ~5 ``/recommend`` calls per ``/feedback`` call, 10-100 ms think time."""

    wait_time = between(0.01, 0.1)

    @task(5)
    def recommend(self) -> None:
        _post(self.client, "/recommend", recommend_body())

    @task(1)
    def feedback(self) -> None:
        _post(self.client, "/feedback", feedback_body())
