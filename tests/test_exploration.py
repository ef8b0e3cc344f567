"""Exploration policies: slot distributions and propensities are exact (they sum to 1, they
match the frequencies of the draws), a draw reproduces from its seed, greedy is 0/1."""

import itertools

import numpy as np
import pytest

from engine.core.exploration import (GREEDY, ExplorationPolicy, draw_slate, logged_marginals, slot_distribution,
                                     slot_expectations, slot_probabilities)
from engine.core.model import stable_hash

SCORES = np.array([0.0, 0.5, 1.0, 2.0])


def test_epsilon_slot_distribution_is_best_plus_uniform_over_the_remaining_pool():
    scores = np.random.default_rng(3).normal(size=7)
    policy = ExplorationPolicy("epsilon", epsilon=0.3)
    logged = np.array([3, 0, 5])
    probs = slot_distribution(scores, logged, policy)
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    for j in range(3):
        prefix = logged[:j]
        assert np.all(probs[j, prefix] == 0)
        remaining = np.setdiff1d(np.arange(7), prefix)
        best = remaining[np.argmax(scores[remaining])]
        expected = np.zeros(7)
        expected[remaining] = 0.3 / len(remaining)
        expected[best] += 0.7
        np.testing.assert_allclose(probs[j], expected, rtol=0, atol=1e-15)


def test_softmax_slot_distribution_is_plackett_luce():
    policy = ExplorationPolicy("softmax", temperature=0.5)
    probs = slot_distribution(SCORES, np.array([2, 3]), policy)
    e = np.exp(SCORES / 0.5)
    np.testing.assert_allclose(probs[0], e / e.sum(), rtol=1e-12)
    rest = e.copy()
    rest[2] = 0
    np.testing.assert_allclose(probs[1], rest / rest.sum(), rtol=1e-12)


def _frequencies(policy, k, draws):
    counts, props = {}, {}
    for seed in range(draws):
        d = draw_slate(SCORES, k, policy, seed)
        key = tuple(d.positions.tolist())
        counts[key] = counts.get(key, 0) + 1
        props[key] = d.slate_propensity
    return counts, props


@pytest.mark.parametrize("policy", [ExplorationPolicy("softmax", temperature=0.7),
                                    ExplorationPolicy("epsilon", epsilon=0.4)])
def test_slate_propensities_match_the_frequencies_of_the_draws(policy):
    draws = 12_000
    counts, props = _frequencies(policy, 2, draws)
    total = 0.0
    for pair in itertools.permutations(range(4), 2):
        p = float(np.prod(slot_probabilities(SCORES, np.array(pair), policy)))
        total += p
        if pair in props:
            assert props[pair] == pytest.approx(p, rel=1e-12)  # the draw reports the same propensity
        freq = counts.get(pair, 0) / draws
        assert abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / draws) + 1e-9, (pair, freq, p)
    assert total == pytest.approx(1.0, abs=1e-12)  # the ordered slates' probabilities sum to 1


def test_a_decision_reproduces_from_its_seed():
    scores = np.random.default_rng(11).normal(size=50)
    policy = ExplorationPolicy("softmax", temperature=0.3)
    seed = stable_hash("rec-2026-12-01-abc")
    a, b = draw_slate(scores, 10, policy, seed), draw_slate(scores, 10, policy, seed)
    assert a.positions.tolist() == b.positions.tolist()
    assert a.propensities.tolist() == b.propensities.tolist()
    np.testing.assert_allclose(a.propensities, slot_probabilities(scores, a.positions, policy), rtol=1e-12)
    assert a.slate_propensity == pytest.approx(float(np.prod(a.propensities)), rel=1e-12)
    others = {tuple(draw_slate(scores, 10, policy, seed + s).positions.tolist()) for s in range(1, 6)}
    assert others != {tuple(a.positions.tolist())}  # the seed matters


def test_greedy_draws_the_top_k_with_propensity_one_and_targets_are_zero_or_one():
    scores = np.array([3.0, 2.0, 1.0, 2.0])  # a tie between rows 1 and 3: the lower index first
    d = draw_slate(scores, 3, GREEDY, seed=5)
    assert d.positions.tolist() == [0, 1, 3]
    assert d.propensities.tolist() == [1.0, 1.0, 1.0] and d.slate_propensity == 1.0
    assert slot_probabilities(scores, np.array([0, 1, 3]), GREEDY).tolist() == [1.0, 1.0, 1.0]
    # logged [1, 0, 2]: greedy would put 0 first (0); given {1} above, 0 second (1); given {1, 0}, 3 (0)
    assert slot_probabilities(scores, np.array([1, 0, 2]), GREEDY).tolist() == [0.0, 1.0, 0.0]
    assert draw_slate(scores, 3, ExplorationPolicy("epsilon", epsilon=0.0), seed=5).positions.tolist() == [0, 1, 3]


def test_new_item_bonus_lifts_new_items_and_their_probabilities():
    new = np.array([False, False, True, False])
    boosted = ExplorationPolicy("none", new_item_bonus=1.5)  # 1.0 + 1.5 beats 2.0
    assert draw_slate(SCORES, 2, boosted, seed=0, new=new).positions.tolist() == [2, 3]
    assert draw_slate(SCORES, 2, GREEDY, seed=0, new=new).positions.tolist() == [3, 2]
    soft = ExplorationPolicy("softmax", temperature=1.0, new_item_bonus=1.0)
    e = np.exp(SCORES + new)
    assert slot_probabilities(SCORES, np.array([2]), soft, new)[0] == pytest.approx(e[2] / e.sum(), rel=1e-12)


def test_slot_expectations_average_the_reward_model_over_the_policy():
    policy = ExplorationPolicy("epsilon", epsilon=0.5)
    rhat = np.array([0.1, 0.2, 0.3, 0.4])
    # slot 0: best is 3 -> 0.5 * 0.4 + 0.5 * mean(rhat)
    # slot 1 given {3}: best is 2 -> 0.5 * 0.3 + 0.5 * mean(0.1, 0.2, 0.3)
    got = slot_expectations(SCORES, np.array([3, 1]), policy, rhat)
    np.testing.assert_allclose(got, [0.5 * 0.4 + 0.5 * 0.25, 0.5 * 0.3 + 0.5 * 0.2], rtol=1e-12)
    per_slot = np.stack([rhat, 2 * rhat], axis=1)  # (n, m): a position effect
    np.testing.assert_allclose(slot_expectations(SCORES, np.array([3, 1]), policy, per_slot), got * [1, 2], rtol=1e-12)


def test_an_item_outside_the_pool_has_probability_zero_and_removes_nothing():
    policy = ExplorationPolicy("epsilon", epsilon=0.2)
    p = slot_probabilities(SCORES, np.array([-1, 3]), policy)
    assert p[0] == 0.0
    assert p[1] == pytest.approx(0.8 + 0.2 / 4)  # all 4 pool items still remain at slot 1


def test_short_pool_gives_a_short_slate():
    d = draw_slate(SCORES[:2], 5, ExplorationPolicy("softmax"), seed=1)
    assert len(d.positions) == 2 and d.propensities[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs", [{"kind": "ucb"}, {"kind": "epsilon", "epsilon": 1.5},
                                    {"kind": "softmax", "temperature": 0.0}])
def test_bad_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        ExplorationPolicy(**kwargs)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="finite"):
        draw_slate(np.array([1.0, np.nan]), 1, GREEDY, seed=0)
    with pytest.raises(ValueError, match="repeat"):
        slot_probabilities(SCORES, np.array([1, 1]), GREEDY)
    with pytest.raises(ValueError, match="pool indices"):
        slot_probabilities(SCORES, np.array([4]), GREEDY)
    with pytest.raises(ValueError, match="seed"):
        draw_slate(SCORES, 1, GREEDY, seed=-1)


@pytest.mark.parametrize("policy", [ExplorationPolicy("epsilon", epsilon=0.3), ExplorationPolicy("epsilon", epsilon=1.0),
                                    GREEDY, ExplorationPolicy("softmax", temperature=0.7)])
def test_logged_marginals_match_the_frequency_of_each_item_in_its_slot(policy):
    scores = np.random.default_rng(5).normal(size=9)
    k, draws = 4, 40_000
    freq = np.zeros((k, 9))
    for seed in range(draws):
        freq[np.arange(k), draw_slate(scores, k, policy, seed).positions] += 1
    freq /= draws
    for seed in range(20):
        logged = draw_slate(scores, k, policy, 10**6 + seed).positions
        got = logged_marginals(scores, logged, policy, samples=40_000, seed=seed)
        np.testing.assert_allclose(got, freq[np.arange(k), logged], rtol=0, atol=0.012)  # ~5 sd of the frequencies


def test_logged_marginals_of_greedy_and_uniform_are_exact():
    scores = np.array([0.1, 3.0, 2.0, -1.0, 0.5])
    np.testing.assert_array_equal(logged_marginals(scores, np.array([1, 2, 4, -1]), GREEDY), [1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(logged_marginals(scores, np.array([1, 4, 2]), GREEDY), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(logged_marginals(scores, np.array([3, 0, 1]), ExplorationPolicy("epsilon", epsilon=1.0)),
                               [0.2, 0.2, 0.2], rtol=1e-12)


@pytest.mark.parametrize("eps", [0.05, 0.5, 1.0])
def test_epsilon_draws_report_the_matrix_propensities_exactly_and_which_slots_are_the_greedy_choice(eps):
    rng = np.random.default_rng(0)
    policy = ExplorationPolicy("epsilon", eps)
    for trial in range(200):
        n = int(rng.integers(1, 40))
        scores = np.round(rng.normal(size=n), 1)  # ties on purpose: the lowest index wins them
        d = draw_slate(scores, int(rng.integers(0, 15)), policy, trial)
        assert np.array_equal(d.propensities, slot_probabilities(scores, d.positions, policy))  # bit for bit
        assert np.array_equal(d.at_best, slot_probabilities(scores, d.positions, GREEDY) == 1.0)
        assert len(set(d.positions.tolist())) == len(d.positions) == min(n, len(d.at_best))
