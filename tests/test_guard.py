"""The forgetting guard on a tiny synthetic world: it must stop a bot burst (stability)
without blocking a genuine new cohort (plasticity). Fails if the guard stops working."""

import pytest

from engine import Event
from engine.config import GuardConfig
from engine.core.guard import GuardedRecommender
from simulators.synthetic import run_scenario
from tests.test_synthetic import TINY

GUARD_TINY = dict(TINY, established_events=1500)


@pytest.fixture(scope="module")
def burst():
    return {g: run_scenario("bot_burst", 2000, g, 5, **GUARD_TINY) for g in (False, True)}


def test_guard_rolls_back_a_bot_burst_and_keeps_targets_out_of_established_slates(burst):
    off, on = burst[False], burst[True]
    assert off["target_exposure"] > 0.5  # the attack bites without the guard
    assert on["target_exposure"] <= 0.15
    assert on["rollbacks"] >= 1
    kinds = {e["kind"] for e in on["extra"]["guard_events"]}
    assert {"rollback", "quarantine"} <= kinds
    assert on["recall_loss"] <= off["recall_loss"]


def test_guard_keeps_learning_a_legitimate_cohort():
    off = run_scenario("cohort", None, False, 5, **GUARD_TINY)
    on = run_scenario("cohort", None, True, 5, **GUARD_TINY)
    assert off["cohort_recall"] > 0
    assert on["cohort_recall"] >= 0.9 * off["cohort_recall"]
    assert on["rollbacks"] == 0


def test_trust_comes_from_the_impression_join():
    g = GuardedRecommender()
    g.apply(Event("", "a", "item"))
    g.apply(Event("", "b", "item"))
    slate = g.recommend("alice", 2)
    assert g.join.trusted(Event("alice", slate.item_ids[0], "click", timestamp=0, recommendation_id=slate.recommendation_id))
    assert not g.join.trusted(Event("mallory", slate.item_ids[0], "click", timestamp=0, recommendation_id=slate.recommendation_id))
    assert not g.join.trusted(Event("bob", "a", "click", timestamp=0))
    assert "alice" in g.join.vetted and "mallory" not in g.join.vetted


def test_guard_off_is_a_pass_through():
    g = GuardedRecommender(guard=GuardConfig(enabled=False))
    for n in range(500):
        g.apply(Event(f"s{n}", "target", "click", timestamp=float(n)))
    assert g.validation_windows == 0 and not g.guard_events
    assert g.recommend("anyone", 1).item_ids == ["target"]
