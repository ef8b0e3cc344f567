"""Locust user classes for the freshrec benchmark scenarios (used by ``load/bench.py`` and by hand).

By hand, against a running server whose catalogue holds the synthetic ids below (for example
one loaded by ``python load/bench.py``, or by ``load_catalogue`` in that file)::

    locust -f load/scenarios.py --headless -u 32 -r 8 -t 60s --host http://127.0.0.1:8000 RecommendOnly
    locust -f load/scenarios.py --headless -u 32 -r 8 -t 60s --host http://127.0.0.1:8000 Mix
    locust -f load/scenarios.py --headless -u 32 -r 8 -t 60s --host http://127.0.0.1:8000 FeedbackOnly
    FRESHREC_SPIKE_SHAPE=1 locust -f load/scenarios.py --headless -t 40s --host http://127.0.0.1:8000 Mix

(the last one: ``SpikeShape`` drives the user count, ``-u``/``-r`` are ignored.)

Scenarios (every class is a ``FastHttpUser``):

    RecommendOnly  POST /recommend {"user_id": "u<n>", "k": 10}, n uniform over the known users.
    Mix            5 x /recommend per 1 x /feedback (task weights 5:1); the feedback is a click
                   {"user_id": "u<n>", "item_id": "i<m>", "event": "click"} on a known item.
    FeedbackOnly   POST /feedback clicks only, as in Mix.
    FeedbackFirehose  one user posting /feedback/batch of 250 clicks 8 times/s (2,000
                   events/s; run together with RecommendOnly).
    SpikeShape     (only when FRESHREC_SPIKE_SHAPE=1) a LoadTestShape: 4 users for 5 s, then a
                   ramp to 64 users at 30 users/s, hold to 30 s, then stop.

Think time: ``wait_time = constant(0)`` everywhere, i.e. closed loop, each simulated user
sends its next request as soon as the previous answer arrives. The offered load is therefore
"as fast as N connections can go": rps is the throughput ceiling at N concurrent clients and
p99 is measured at that saturation (queueing included), not at a fixed rate below it.

Ids: users ``u0 .. u{N_USERS-1}``, items ``i0 .. i{N_ITEMS-1}``, the id space that
``load/bench.py`` loads with ``/feedback/batch`` (item ``i<j>`` clicked by user
``u<j % N_USERS>``). Sizes come from ``FRESHREC_LOAD_USERS`` (default 10000) and
``FRESHREC_LOAD_ITEMS`` (default 100000), or from ``configure()``. Each simulated user draws
from its own ``random.Random`` seeded from a global counter, so a run is reproducible up to
the interleaving of users. Any non-2xx answer or connection error is a failure.
"""

from __future__ import annotations

import itertools
import os
import random
import time

from locust import LoadTestShape, constant, constant_throughput, task
from locust.contrib.fasthttp import FastHttpUser

K = 10
EXPLORE_EPSILON = 0.05  # RecommendExplore's per-request epsilon
N_USERS = int(os.environ.get("FRESHREC_LOAD_USERS", "10000"))
N_ITEMS = int(os.environ.get("FRESHREC_LOAD_ITEMS", "100000"))
_SEEDS = itertools.count(1)


def configure(n_users: int, n_items: int) -> None:
    """Set the synthetic id space (call before the runner starts users)."""
    global N_USERS, N_ITEMS
    N_USERS, N_ITEMS = int(n_users), int(n_items)


def _post(client, path: str, body: dict) -> None:
    with client.post(path, json=body, name=path, catch_response=True) as resp:
        status = resp.status_code or 0
        if 200 <= status < 300:
            resp.success()
        else:
            text = (resp.text or "")[:200] if status else str(resp.error)
            resp.failure(f"HTTP {status}: {text}")


class _FreshrecUser(FastHttpUser):
    """Shared helpers: a per-user RNG and the two request bodies."""

    abstract = True
    wait_time = constant(0)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rng = random.Random(next(_SEEDS))

    def recommend_body(self) -> dict:
        return {"user_id": f"u{self.rng.randrange(N_USERS)}", "k": K}

    def click_body(self) -> dict:
        return {"user_id": f"u{self.rng.randrange(N_USERS)}",
                "item_id": f"i{self.rng.randrange(N_ITEMS)}", "event": "click"}


class RecommendOnly(_FreshrecUser):
    """Only ``POST /recommend`` (k=10) for known users."""

    @task
    def recommend(self) -> None:
        _post(self.client, "/recommend", self.recommend_body())


class RecommendExplore(_FreshrecUser):
    """Only ``POST /recommend`` (k=10) for known users, with epsilon-greedy exploration at
    ``EXPLORE_EPSILON`` set on the request (issue 15: the cost of exploring)."""

    @task
    def recommend(self) -> None:
        _post(self.client, "/recommend", {**self.recommend_body(), "explore": {"kind": "epsilon",
                                                                              "epsilon": EXPLORE_EPSILON}})


class Mix(_FreshrecUser):
    """About five ``/recommend`` per ``/feedback`` click on a known item."""

    @task(5)
    def recommend(self) -> None:
        _post(self.client, "/recommend", self.recommend_body())

    @task(1)
    def feedback(self) -> None:
        _post(self.client, "/feedback", self.click_body())


class FeedbackOnly(_FreshrecUser):
    """Only ``POST /feedback`` clicks on known items."""

    @task
    def feedback(self) -> None:
        _post(self.client, "/feedback", self.click_body())


class FeedbackFirehose(_FreshrecUser):
    """A steady background feedback stream for the learner: one user posting
    ``/feedback/batch`` about ``FIREHOSE_BATCHES_PER_S`` times a second, each batch sized so
    that the clicks posted so far keep up with ``FIREHOSE_EVENTS_PER_S`` of wall time
    (default 2,200/s, a margin over the 2,000/s target; at most 1,000 per batch, the API's
    limit). Paced by the clock rather than by a fixed batch size, so the rate holds even when
    the Locust process is saturated by the users running next to it and schedules this one
    late. Run next to ``RecommendOnly`` to measure serving while the learner takes in
    feedback (issue 5, acceptance 1); the class attribute ``sent`` counts the clicks posted
    by all instances (``load/bench.py`` resets and reads it)."""

    fixed_count = 1
    wait_time = constant_throughput(float(os.environ.get("FRESHREC_FIREHOSE_BATCHES_PER_S", "8")))
    rate = float(os.environ.get("FRESHREC_FIREHOSE_EVENTS_PER_S", "2200"))
    sent = 0

    def on_start(self) -> None:
        self.t0 = time.monotonic()
        self.posted = 0  # this instance's clicks, for pacing

    @task
    def feedback_batch(self) -> None:
        n = min(1000, int(self.rate * (time.monotonic() - self.t0)) - self.posted)
        if n > 0:
            _post(self.client, "/feedback/batch", {"events": [self.click_body() for _ in range(n)]})
            self.posted += n
            FeedbackFirehose.sent += n


class SpikeShape(LoadTestShape):
    """Few users, then many within seconds: ``(t, users)`` steps, 30 users/s ramp.

    Inactive (abstract) unless ``FRESHREC_SPIKE_SHAPE=1``, so that ``-u N`` keeps working for
    the other scenarios of this file. ``load/bench.py`` drives the same spike itself.
    """

    abstract = os.environ.get("FRESHREC_SPIKE_SHAPE") != "1"
    low, high, rate = 4, 64, 30.0
    spike_at_s, stop_at_s = 5.0, 30.0

    def tick(self):
        t = self.get_run_time()
        if t < self.spike_at_s:
            return self.low, self.low
        if t < self.stop_at_s:
            return self.high, self.rate
        return None


class ChantillyMix(FastHttpUser):
    """The Mix scenario against River's ``chantilly`` server (host = chantilly's URL).

    5 x ``POST /api/predict {"features": {"user", "item"}}`` per 1 x ``POST /api/learn
    {"features": {...}, "ground_truth": 1.0}``, same synthetic ids as above. chantilly has
    no ranking endpoint: one predict scores ONE (user, item) pair, so this row is generous to
    chantilly (a top-10 over the catalogue would take N_ITEMS predicts). The uploaded model
    must accept ``x={"user", "item"}`` (``load/bench.py`` wraps ``reco.BiasedMF``).
    """

    wait_time = constant(0)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.rng = random.Random(next(_SEEDS))

    def _pair(self) -> dict:
        return {"user": f"u{self.rng.randrange(N_USERS)}", "item": f"i{self.rng.randrange(N_ITEMS)}"}

    @task(5)
    def predict(self) -> None:
        _post(self.client, "/api/predict", {"features": self._pair()})

    @task(1)
    def learn(self) -> None:
        _post(self.client, "/api/learn", {"features": self._pair(), "ground_truth": 1.0})
