"""The small array helpers of the read path agree with the numpy idioms they replace, and the
popularity bank's cached trending list follows every change of its heads."""

import numpy as np

from engine.core.arrays import sum_by_key, without
from engine.core.popularity import PopularityBank


def test_without_equals_isin_on_random_rows():
    rng = np.random.default_rng(0)
    for _ in range(200):
        rows = np.unique(rng.integers(0, 500, rng.integers(0, 300)))
        drop = rng.integers(0, 500, rng.integers(0, 80))
        assert np.array_equal(without(rows, drop), rows[~np.isin(rows, drop)])


def test_sum_by_key_equals_unique_and_bincount_bit_for_bit():
    rng = np.random.default_rng(1)
    for _ in range(200):
        keys = rng.integers(0, 300, rng.integers(0, 2000))
        weights = rng.random(len(keys)) * 10.0 ** rng.integers(-3, 4, len(keys))
        items, sums = sum_by_key(keys, weights)
        ref_items, inverse = np.unique(keys, return_inverse=True)
        assert np.array_equal(items, ref_items)
        assert np.array_equal(sums, np.bincount(inverse, weights=weights, minlength=len(ref_items)))


def test_head_items_follow_every_head_change():
    bank = PopularityBank(half_lives_s=(3600.0,), half_lives_events=(50.0,), head_size=4)
    rng = np.random.default_rng(2)
    changed = 0
    before = None
    for k in range(3000):
        bank.add(int(rng.zipf(1.3) % 40) if k < 1500 else int(rng.integers(0, 40)), 1.7e9 + 60.0 * k)
        now = bank.head_items()
        assert np.array_equal(now, np.unique(bank.heads[bank.heads >= 0]))
        changed += before is not None and not np.array_equal(before, now)
        before = now.copy()
    assert changed > 10  # the heads did move (the popularity shifts at event 1500)
