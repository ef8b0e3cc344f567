"""Ranking: the vectorised blend equals a brute-force per-item loop over River's predict_one."""

import copy
import math

import numpy as np

from engine.core.ranking import top_k
from tests.helpers import trained


def brute_force(rec, user, k):
    """Score every eligible item one by one with River's own predict_one (on a copy, since
    predict_one inserts state for unknown ids)."""
    mf = copy.deepcopy(rec.model.mf)
    c = rec.config
    history = rec.positives.get(user, [])[-c.cooc_history:]
    seen = rec.seen.get(user, {})
    scored = []
    for idx, item in enumerate(rec.catalogue.ids):
        if idx in seen:
            continue
        personal = mf.predict_one(user, item) - mf.global_mean.get() - mf.u_biases[user]
        cooc = 0.0
        for h in history:
            co = rec.cooc.get(h, idx)
            if co:
                cooc += co / math.sqrt(rec.cooc.counts[h] * rec.cooc.counts[idx])
        scored.append((rec.trend.log_score[idx] + c.mf_weight * personal + c.cooc_weight * cooc, item))
    scored.sort(key=lambda s: -s[0])
    return scored[:k]


def test_recommend_matches_brute_force_predict_one_loop():
    rec = trained(ranker="blend")  # the fixed blend over the whole catalogue
    users = sorted(rec.seen)[:10]
    for user in users:
        fast = rec.recommend(user, k=10)
        slow = brute_force(rec, user, 10)
        assert [r.item_id for r in fast] == [item for _, item in slow]
        # serving computes <p_u, q_i> in float32 (FactorModel.serving_factors): ~1e-7 relative
        np.testing.assert_allclose([r.score for r in fast], [s for s, _ in slow], rtol=1e-6, atol=1e-6)


def test_top_k_equals_full_sort_and_honours_exclusions():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=1000)
    exclude = rng.choice(1000, 100, replace=False)
    idx, top = top_k(scores.copy(), 25, exclude)
    masked = scores.copy()
    masked[exclude] = -np.inf
    expected = np.argsort(-masked, kind="stable")[:25]
    assert idx.tolist() == expected.tolist()
    assert not set(idx.tolist()) & set(exclude.tolist())
    assert np.all(np.diff(top) <= 0)


def test_top_k_returns_fewer_when_fewer_items_are_eligible():
    idx, _ = top_k(np.arange(5.0), 10, np.array([0, 1, 2]))
    assert sorted(idx.tolist()) == [3, 4]


def test_top_k_is_exact_with_ties_exclusions_and_few_eligible_items():
    rng = np.random.default_rng(11)
    for trial in range(300):
        n = int(rng.integers(1, 3000))
        kind = trial % 3
        if kind == 0:
            scores = rng.normal(size=n)
        elif kind == 1:  # heavy ties (cold items all at the same score)
            scores = rng.choice([0.0, 1.0, 2.5], size=n)
        else:  # most items excluded
            scores = rng.normal(size=n)
        k = int(rng.integers(1, 40))
        n_ex = int(rng.integers(0, n)) if kind == 2 else int(rng.integers(0, n // 4 + 1))
        exclude = rng.choice(n, n_ex, replace=False)
        idx, top = top_k(scores.copy(), k, exclude)
        masked = scores.copy()
        masked[exclude] = -np.inf
        expected = np.sort(masked[np.isfinite(masked)])[::-1][:k]
        np.testing.assert_array_equal(top, expected)  # the k best scores, best first
        np.testing.assert_array_equal(scores[idx], top)
        assert len(set(idx.tolist())) == len(idx) and not set(idx.tolist()) & set(exclude.tolist())


def test_top_k_with_a_catalogue_of_ties_takes_the_lowest_tied_rows():
    """Most of a large catalogue tied at one score (items the factor model never learned sit
    at 0): the top k are the rows above the tie and then the lowest tied rows, in order."""
    rng = np.random.default_rng(5)
    for above_tie in (0, 3, 50, 400):
        scores = np.zeros(200_000)
        rows = rng.choice(200_000, above_tie, replace=False)
        scores[rows] = rng.random(above_tie) + 0.1
        scores[rng.choice(200_000, 500, replace=False)] -= 1.0  # a few below the tie
        exclude = rng.choice(200_000, 30, replace=False)
        idx, top = top_k(scores.copy(), 100, exclude)
        masked = scores.copy()
        masked[exclude] = -np.inf
        expected = np.lexsort((np.arange(len(masked)), -masked))[:100]  # by score, then the lower row
        assert idx.tolist() == expected.tolist()
        np.testing.assert_array_equal(top, masked[expected])
