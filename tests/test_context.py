"""Context is used: in a world whose tastes differ by time of day, the engine told the
daypart serves different slates by daypart and recalls more than the same engine not told."""

import pytest

import simulators.synthetic as synthetic
from tests.test_synthetic import TINY

CONTEXT_WORLD = dict(TINY, established_events=2500, context_effect=1.0, change_steps=0, recovery_steps=1)


def run(told: bool):
    sims = []
    original = synthetic.Simulation

    class Recorded(original):  # keep the simulation to ask its engine afterwards
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            sims.append(self)

    synthetic.Simulation = Recorded
    try:
        row = synthetic.run_scenario("stationary", None, False, 2, **CONTEXT_WORLD, use_context=told)
    finally:
        synthetic.Simulation = original
    return row, sims[0]


@pytest.fixture(scope="module")
def worlds():
    return {told: run(told) for told in (True, False)}


def test_slates_differ_by_context(worlds):
    _, sim = worlds[True]
    rec = sim.g.recommender
    users = [f"u{n}" for n in range(20)]
    differ = sum([r.item_id for r in rec.recommend(u, 10, context={"daypart": "d0"})]
                 != [r.item_id for r in rec.recommend(u, 10, context={"daypart": "d2"})] for u in users)
    assert differ >= 15
    same = [r.item_id for r in rec.recommend("u1", 10)] == [r.item_id for r in rec.recommend("u1", 10)]
    assert same  # and a context-free request is deterministic


def test_recall_with_context_beats_recall_without(worlds):
    told, _ = worlds[True]
    blind, _ = worlds[False]
    assert told["recall_before"] >= 1.2 * blind["recall_before"]
