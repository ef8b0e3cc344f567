"""The per-slot mixture of champion and challenger policies (engine.core.mixture): its
propensities are the mixture's distribution, the draws follow them, and share 0 is the
champion's own epsilon-greedy draw."""

import numpy as np
import pytest

from engine.core.exploration import ExplorationPolicy, slot_distribution
from engine.core.mixture import draw_mixture

N = 12
A_POOL = np.arange(N) < 8  # the champion's pool: items 0..7
B_POOL = np.arange(N) >= 4  # the challenger's: items 4..11
RNG = np.random.default_rng(3)
A_SCORES, B_SCORES = RNG.normal(size=N), RNG.normal(size=N)


def mixture(j_prefix, share, a_policy, b_policy):
    """The mixture's slot distribution given the items already placed, from exploration.slot_distribution."""
    def part(scores, pool, policy):
        idx = np.flatnonzero(pool)
        pos = [int(np.flatnonzero(idx == i)[0]) if i in idx else -1 for i in j_prefix] + [-1]
        row = slot_distribution(scores[idx], np.array(pos), policy)[-1]
        out = np.zeros(N)
        out[idx] = row
        return out
    mu = (1 - share) * part(A_SCORES, A_POOL, a_policy)
    if (B_POOL & ~np.isin(np.arange(N), j_prefix)).any():
        mu += share * part(B_SCORES, B_POOL, b_policy)
    return mu / mu.sum()


@pytest.mark.parametrize("b_policy", [ExplorationPolicy(), ExplorationPolicy("softmax", temperature=0.5)])
def test_propensities_are_the_mixture_given_the_slots_above(b_policy):
    a = ExplorationPolicy("epsilon", 0.1)
    for seed in range(50):
        d = draw_mixture(A_SCORES, A_POOL, a, B_SCORES, B_POOL, b_policy, 0.3, 6, seed)
        for j, i in enumerate(d.positions.tolist()):
            assert d.propensities[j] == pytest.approx(mixture(d.positions[:j].tolist(), 0.3, a, b_policy)[i], abs=1e-12)
        assert d.slate_propensity == pytest.approx(np.prod(d.propensities))


def test_draws_follow_the_propensities():
    a, b = ExplorationPolicy("epsilon", 0.1), ExplorationPolicy()
    n = 20_000
    first = np.array([draw_mixture(A_SCORES, A_POOL, a, B_SCORES, B_POOL, b, 0.3, 2, s).positions[0]
                      for s in range(n)])
    mu = mixture([], 0.3, a, b)
    freq = np.bincount(first, minlength=N) / n
    assert np.all(np.abs(freq - mu) <= 4 * np.sqrt(mu * (1 - mu) / n) + 1e-12)
    assert mu[np.flatnonzero(~A_POOL)].sum() > 0.2  # the challenger's own favourites get its share


def test_share_zero_is_the_champions_epsilon_greedy_and_the_greedy_choice_is_flagged():
    a = ExplorationPolicy("epsilon", 0.2)
    idx = np.flatnonzero(A_POOL)
    for seed in range(30):
        d = draw_mixture(A_SCORES, A_POOL, a, B_SCORES, B_POOL, ExplorationPolicy(), 0.0, 5, seed)
        assert A_POOL[d.positions].all()
        pos = np.searchsorted(idx, d.positions)
        dist = slot_distribution(A_SCORES[idx], pos, a)
        np.testing.assert_allclose(d.propensities, dist[np.arange(5), pos], atol=1e-12)
        greedy = slot_distribution(A_SCORES[idx], pos, ExplorationPolicy())
        np.testing.assert_array_equal(d.at_best, greedy[np.arange(5), pos] == 1.0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="share"):
        draw_mixture(A_SCORES, A_POOL, ExplorationPolicy(), B_SCORES, B_POOL, ExplorationPolicy(), 1.0, 3, 0)
    with pytest.raises(ValueError, match="seed"):
        draw_mixture(A_SCORES, A_POOL, ExplorationPolicy(), B_SCORES, B_POOL, ExplorationPolicy(), 0.1, 3, -1)


def test_a_near_zero_temperature_does_not_underflow_once_the_top_items_are_placed():
    """Softmax weights are taken against the best free item at every slot: at T = 1e-6 (the
    fuzz found it: a 500 from a division by zero) the slate is the greedy one, each slot
    with propensity ~1 for the champion's side."""
    a = ExplorationPolicy("softmax", temperature=1e-6)
    d = draw_mixture(A_SCORES, A_POOL, a, B_SCORES, B_POOL, ExplorationPolicy("softmax", temperature=1e-6), 0.1, 6, 5)
    assert np.all(np.isfinite(d.propensities)) and np.all(d.propensities > 0)
    for j, i in enumerate(d.positions.tolist()):
        assert d.propensities[j] == pytest.approx(mixture(d.positions[:j].tolist(), 0.1, a, a)[i], abs=1e-9)
