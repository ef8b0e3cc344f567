"""The Open Bandit sample: the uniform-random policy estimated from the random log with IPS
is its logged CTR exactly, and the progressively trained freshrec target gets finite
estimates and intervals on both logs, with no look-ahead."""

import dataclasses
import math
from collections import Counter

import pytest

from engine.core.ope import ips
from simulators.evaluate import evaluate, logged_slates
from simulators.open_bandit import decisions, load


@pytest.fixture(scope="module")
def random_decisions():
    return decisions(load("random"))


def test_the_sample_keeps_rows_not_slates():
    """The documented grouping: timestamps are (almost) unique, so each row is a decision."""
    for name in ("random", "bts"):
        log = load(name)
        per_timestamp = Counter(log.t.tolist())
        assert log.n == 10_000 and len(per_timestamp) >= 9_980
        assert max(per_timestamp.values()) == 2  # never the 3 positions of one impression
        assert set(log.position.tolist()) == {0, 1, 2}


def test_uniform_policy_from_the_random_log_is_the_logged_ctr_exactly(random_decisions):
    log = load("random")
    assert int(log.click.sum()) == 38
    for policy in ("uniform", "logging"):
        e = ips(logged_slates(random_decisions, policy), resamples=200)
        assert e.value == 38 / 10_000
        assert e.ess == 10_000 and e.max_weight == 1.0


def test_freshrec_target_gets_finite_estimates_on_the_random_log(random_decisions):
    rows = [r for r in evaluate(random_decisions, ("slot",), resamples=300) if r["policy"] == "freshrec"]
    assert [r["estimator"] for r in rows] == ["ips", "snips", "dr"]
    matched = sum(d["targets"]["freshrec"]["p"][0] for d in random_decisions)
    assert 60 <= matched <= 200  # a greedy target agrees with a uniform logger on ~1/80 of the rows
    for r in rows:
        assert all(math.isfinite(r[key]) for key in ("value", "low", "high", "ess"))
        assert 0.0 <= r["low"] <= r["high"] <= 1.0
        assert r["ess"] == pytest.approx(matched)
        assert any(w.startswith("thin support") for w in r["warnings"])


def test_freshrec_target_gets_finite_estimates_on_the_bts_log():
    ds = decisions(load("bts", limit=2000))
    for r in evaluate(ds, ("slot",), resamples=200):
        assert all(math.isfinite(r[key]) for key in ("value", "low", "high", "ess"))
        assert 0.0 <= r["low"] <= r["high"] <= 1.0


def test_targets_are_computed_before_the_row_is_learned():
    """Flipping row 150's click changes nothing the decisions up to row 150 hold but that
    row's reward, and it does change what comes after (the models learn it)."""
    log = load("random", limit=300)
    flipped_clicks = log.click.copy()
    flipped_clicks[150] = 1.0 - flipped_clicks[150]
    flipped = dataclasses.replace(log, click=flipped_clicks)
    a, b = decisions(log), decisions(flipped)
    for i in range(151):
        ra, rb = dict(a[i]), dict(b[i])
        assert ra.pop("rewards") == (rb.pop("rewards") if i != 150 else [1.0 - rb.pop("rewards")[0]])
        assert ra == rb, i
    assert a[151:] != b[151:]
