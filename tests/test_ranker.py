"""The learned ranker: vectorised scores equal River's own scaler and weights, serving and
learning compute features with the same function, the ranker learns which signal predicts
and serves the candidate that ranks best, its state survives a snapshot, and candidate
generation honours exclusions."""

import numpy as np

from engine import EngineConfig, Event, Recommender
from engine.core import learned_ranking
from engine.core.candidates import candidates
from engine.core.features import feature_names, features
from engine.core.ranker import Ranker
from tests.helpers import trained


def test_vectorised_scores_equal_rivers_logit_per_candidate():
    rec = trained(n_events=800)
    assert rec.ranker.examples > 0
    for user in sorted(rec.seen)[:5] + ["stranger"]:
        pool = candidates(rec, user, np.zeros(0, dtype=np.int64))
        F = features(rec, user, pool)
        fast = rec.ranker.score(F)
        weights = rec.ranker.models[rec.ranker.serving]._weights
        slow = []
        for row in F.tolist():
            z = rec.ranker.scaler.transform_one(dict(zip(rec.ranker.names, row)))
            slow.append(sum(weights[n] * z[n] for n in weights))
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)


def test_serving_and_learning_use_the_same_features():
    """The examples the ranker learns from carry exactly the features a slate served at the
    event's time would have used for those items (no train/serve skew)."""
    rec = trained(n_events=600)
    seen_by_ranker = []
    original = rec.ranker.learn_list
    rec.ranker.learn_list = lambda F, *rest: (seen_by_ranker.append(F.copy()), original(F, *rest))
    user, item = "u3", "i7"
    idx = rec.catalogue.get(item)
    assert idx not in rec.seen[user]
    expected_rows = learned_ranking.training_list(rec, user, idx)
    expected = features(rec, user, expected_rows, t=1e7)  # the serving function, at the event's time
    rec.config.ranker_sample = 1.0  # learn from this positive
    rec.apply(Event(user, item, "click", timestamp=1e7))
    np.testing.assert_array_equal(seen_by_ranker[-1], expected)
    assert expected.shape == (len(expected_rows), len(feature_names(rec.config)))


def test_serving_reads_only_the_serving_rankers_groups_and_scores_the_same():
    """Serving computes only the groups the serving candidate reads (and, without a
    co-occurrence feature, the neighbours of fewer positives): every candidate, forced to
    serve, gets exactly the scores the full feature matrix gives, on a catalogue large enough
    for the candidate sources."""
    from engine.core.trend import jitter

    rec = trained(n_users=30, n_items=120, n_events=1500, full_scan_items=20, candidates_per_source=15)
    full_groups = 0
    for k in range(len(rec.ranker.models)):
        rec.ranker.forced = k
        rec.ranker._cache.clear()
        groups = rec.ranker.serving_groups()
        full_groups += groups is None
        for user in sorted(rec.seen)[:8] + ["stranger"]:
            pool, scores = learned_ranking.scored_pool(rec, user, rec.excluded(user))
            assert len(pool) > 0
            F = features(rec, user, pool)
            np.testing.assert_array_equal(scores, rec.ranker.score(F) + jitter(pool))
            if groups is not None:  # the columns it does not read are not computed
                G = features(rec, user, pool, groups=groups)
                read = rec.ranker.columns[k]
                np.testing.assert_array_equal(G[:, read], F[:, read])
                unread = np.setdiff1d(np.arange(F.shape[1]), read)
                assert not G[:, unread].any() and F[:, unread].any()
    assert full_groups == 1


def test_the_ranker_learns_which_signal_predicts_the_next_positive():
    """A stream where users always click the item that co-occurs with their last one, and
    popularity says nothing: the co-occurrence weight grows past the popularity weights."""
    rec = Recommender(EngineConfig(ranker_sample=1.0))
    rng = np.random.default_rng(0)
    t = 1e6
    for n in range(3000):
        user = f"u{n}"
        a = 2 * int(rng.integers(0, 100))
        for item in (a, a + 1):  # pairs (a, a+1), a even: co-occurrence predicts the second click
            rec.apply(Event(user, f"i{item}", "click", timestamp=t))
            t += 1
    learned = rec.ranker.weights()
    assert learned["serving"] > 0  # a candidate that may use co-occurrence serves
    w = learned["candidates"][learned["serving"]]["weights"]
    assert w["cooc_1"] > 0.5
    assert w["cooc_1"] > max(v for k, v in w.items() if k.startswith("pop_"))
    top = [r.item_id for r in rec.recommend("fresh", 3)]
    rec.apply(Event("fresh", "i50", "click", timestamp=t))
    assert rec.recommend("fresh", 1)[0].item_id == "i51"  # what the learned weights say
    assert top  # a cold user still gets a slate


def test_ranker_state_round_trips_exactly():
    rec = trained(n_events=700)
    r = rec.ranker
    back = Ranker.from_state(*r.state())
    F = np.random.default_rng(1).normal(size=(50, len(r.names)))
    for k in range(len(r.models)):
        np.testing.assert_array_equal(back.score(F, k), r.score(F, k))
    for positive in (3, 7):
        r.learn_list(F, positive, np.array([positive, 0, 1]))
        back.learn_list(F, positive, np.array([positive, 0, 1]))
    assert back.serving == r.serving and back.hit_rate() == r.hit_rate()
    for k in range(len(r.models)):
        np.testing.assert_array_equal(back.score(F, k), r.score(F, k))


def test_candidates_exclude_what_they_must_and_cover_new_items():
    rec = trained(n_events=600, full_scan_items=10)  # force the candidate sources
    rec.apply(Event("", "brand-new", "item"))
    excluded = np.array([0, 1, 2])
    pool = candidates(rec, "u1", excluded, per_source=5, full_scan=10)
    assert not set(pool.tolist()) & {0, 1, 2}
    assert rec.catalogue.get("brand-new") in pool.tolist()
    assert np.all(np.diff(pool) > 0)


def test_a_training_lists_factor_source_scores_a_bounded_sample_of_a_large_catalogue():
    from engine.core.candidates import sampled_factor_best

    rec = trained(n_items=400, n_events=3000, full_scan_items=10)
    n = len(rec.catalogue)
    excluded = rec.excluded("u1")
    for key in range(5):
        best = sampled_factor_best(rec, "u1", n, 5, excluded, 100, key)
        step = -(-n // 100)
        sample = np.arange(key % step, n, step)
        assert len(sample) <= 100 and set(best.tolist()) <= set(sample.tolist())
        assert not set(best.tolist()) & set(excluded.tolist())
        eligible = np.setdiff1d(sample, excluded)
        expected = eligible[np.argsort(-rec.model.item_scores("u1", eligible), kind="stable")[:5]]
        assert best.tolist() == expected.tolist()  # the sample's best, best first
    # a catalogue within the bound is scanned whole: the same pool as without a bound
    assert np.array_equal(candidates(rec, "u1", excluded, 5, 10, factor_rows=n, sample_key=3),
                          candidates(rec, "u1", excluded, 5, 10))
