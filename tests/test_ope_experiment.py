"""The OPE experiment's exact truth (simulators.ope_experiment): the epsilon-greedy marginals
by rank match ``logged_marginals`` on any scores, each user's exact value of a target is its
slate's expected clicks (greedy) or the mean of its on-policy draws (uniform), and the split
of that value by logging support adds up to it."""

import numpy as np
import pytest

from engine.core.exploration import ExplorationPolicy, logged_marginals
from engine.core.slates import draw
from simulators.ope_experiment import (
    POLICIES,
    QUICK,
    _click_probs,
    _expected_by_user,
    _rank_marginals,
)
from simulators.synthetic import K, Simulation, World, WorldConfig

EPS = ExplorationPolicy("epsilon", 0.1)


def test_rank_marginals_are_the_logged_marginals_of_any_scores_by_rank():
    scores = np.random.default_rng(3).normal(size=30)
    rank = np.empty(30, dtype=np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(30)
    by_rank = _rank_marginals(30, K, EPS)
    for item in (0, 7, 29):
        np.testing.assert_allclose(by_rank[rank[item]], logged_marginals(scores, np.full(K, item), EPS), atol=1e-12)
    np.testing.assert_allclose(by_rank.sum(axis=0), 1.0, atol=1e-12)  # every slot holds one item


@pytest.fixture(scope="module")
def sim():
    world = World(WorldConfig(**QUICK), 0)
    s = Simulation(world, guard=False)
    s.normal_traffic(300, world.established)
    return s


def test_greedy_exact_value_is_the_expected_clicks_of_its_slate(sim):
    value, split, logged_clicks = _expected_by_user(sim, "greedy", POLICIES["greedy"], 0, EPS)
    rec, w = sim.g.recommender, sim.w
    for row in (0, 5, 11):
        user = w.user_ids[row]
        d = draw(rec, user, K, rec.excluded(user), None, POLICIES["greedy"], 1)
        assert value[row] == pytest.approx(_click_probs(sim, row, [rec.catalogue.ids[r] for r in d.rows.tolist()]).sum())
    np.testing.assert_allclose(split.sum(axis=1), value)
    assert np.all(split[:, 0] == 0)  # the greedy slate is inside the logging pool
    assert np.all(logged_clicks >= 0)


def test_uniform_exact_value_is_the_mean_of_its_draws(sim):
    value, split, _ = _expected_by_user(sim, "uniform", POLICIES["uniform"], 0, EPS)
    rec, w = sim.g.recommender, sim.w
    row = 3
    user = w.user_ids[row]
    draws = [_click_probs(sim, row, [rec.catalogue.ids[r] for r in
                                     draw(rec, user, K, rec.excluded(user), None, POLICIES["uniform"], s).rows.tolist()]
                          ).sum() for s in range(4000)]
    assert value[row] == pytest.approx(np.mean(draws), abs=4 * np.std(draws) / np.sqrt(len(draws)))
    np.testing.assert_allclose(split.sum(axis=1), value)
