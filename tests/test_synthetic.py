"""The synthetic world: deterministic, the model learns it, and the bot burst bites.

A tiny world (300 users x 150 items, ~5,000 applied events per run) keeps this file under
a few seconds; every assertion is about behaviour, nothing sleeps.
"""

import json

import pytest

from simulators.synthetic import ROW_KEYS, run_scenario

TINY = dict(n_users=300, n_items=150, n_genres=5, established_events=400, change_steps=100,
            recovery_steps=50, burst_steps=10, n_targets=3, sample_users=100, measure_every=200,
            progress=False)


def _comparable(row: dict) -> dict:
    """The row minus wall-clock measurements (throughput and timings vary run to run)."""
    out = {k: v for k, v in row.items() if k not in ("events_per_s", "extra")}
    extra = {k: v for k, v in row["extra"].items() if k not in ("wall_s", "engine_s")}
    out["extra"] = json.loads(json.dumps(extra, default=str))
    return out


@pytest.fixture(scope="module")
def stationary():
    return run_scenario("stationary", None, False, 3, **TINY)


def test_row_has_exactly_the_documented_keys(stationary):
    assert set(stationary) == set(ROW_KEYS) | {"extra"}
    assert stationary["guard"] == "off" and stationary["dose"] is None
    assert stationary["target_exposure"] is None and stationary["cohort_recall"] is None
    assert stationary["extra"]["references"]["oracle"] == 1.0
    assert stationary["extra"]["events"] > 3000


def test_same_seed_gives_identical_row(stationary):
    again = run_scenario("stationary", None, False, 3, **TINY)
    assert _comparable(again) == _comparable(stationary)


def test_different_seed_gives_a_different_world(stationary):
    other = run_scenario("stationary", None, False, 4, **TINY)
    assert _comparable(other) != _comparable(stationary)


def test_stationary_model_beats_random_reference(stationary):
    refs = stationary["extra"]["references"]
    assert stationary["recall_before"] > 2 * refs["random"]
    assert stationary["recall_after"] > 2 * refs["random"]


def test_unguarded_bot_burst_reaches_most_established_users():
    row = run_scenario("bot_burst", 2000, False, 3, **TINY)
    assert row["target_exposure"] > 0.5
    assert row["extra"]["target_exposure_max"] >= row["target_exposure"]
    assert row["recall_after"] < row["recall_before"]
    assert len(row["extra"]["targets"]) == 3
