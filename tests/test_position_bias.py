"""Position bias harvested from a ranked, exploring log (engine.core.position_bias) recovers
the examination of each slot where appeal is personal; the item-level EM does not."""

import numpy as np
import pytest

from engine.core.click_model import fit_position_based
from engine.core.position_bias import harvest_examination

THETA = np.array([1.0, 0.7, 0.55, 0.45, 0.4])


def ranked_log(seed: int = 0, n_users: int = 300, n_items: int = 40, requests: int = 30_000, epsilon: float = 0.2):
    """A logger that shows each user their own best items, best first, except that each slot
    shows a random remaining item with probability ``epsilon``; clicks follow the PBM with a
    personal appeal gamma(user, item)."""
    rng = np.random.default_rng(seed)
    k = len(THETA)
    gamma = rng.beta(0.6, 2.0, size=(n_users, n_items))
    order = np.argsort(-gamma, axis=1)
    users = rng.integers(0, n_users, requests)
    slates = np.empty((requests, k), dtype=np.int64)
    for n, u in enumerate(users):
        remaining = list(order[u])
        for j in range(k):
            pick = int(rng.integers(len(remaining))) if rng.random() < epsilon else 0
            slates[n, j] = remaining.pop(pick)
    clicks = rng.random((requests, k)) < THETA[None, :] * gamma[users[:, None], slates]
    return users, slates, clicks, n_items


def test_harvested_examination_recovers_the_slots_where_the_item_level_em_is_biased():
    users, slates, clicks, n_items = ranked_log()
    k = slates.shape[1]
    slots = np.tile(np.arange(k), len(slates))
    keys = (users[:, None] * n_items + slates).ravel()
    harvested = harvest_examination(keys, slots, clicks.ravel(), k)
    assert harvested.examination[0] == pytest.approx(1.0)
    assert np.abs(harvested.examination - THETA).max() < 0.05
    assert harvested.pairs[0, 1] == harvested.pairs[1, 0] > 0
    em = fit_position_based(slates.ravel(), slots, clicks.ravel(), n_items, k)
    em_ratio = em.examination / em.examination[0]
    # relevance falls down a personal ranking, and an item-level appeal reads it as examination
    assert em_ratio[-1] < THETA[-1] - 0.07


def test_fit_position_based_holds_a_given_examination_and_fits_the_appeals():
    rng = np.random.default_rng(3)
    items, slots = rng.integers(0, 20, 60_000), rng.integers(0, 5, 60_000)
    gamma = np.linspace(0.05, 0.6, 20)
    clicks = rng.random(60_000) < THETA[slots] * gamma[items]
    pbm = fit_position_based(items, slots, clicks, 20, 5, examination=THETA)
    assert np.array_equal(pbm.examination, THETA)
    assert np.abs(pbm.appeal - gamma).max() < 0.04
    with pytest.raises(ValueError, match="examination"):
        fit_position_based(items, slots, clicks, 20, 5, examination=np.array([1.0, 0.5]))


def test_a_slot_no_pair_links_to_the_top_is_not_identified():
    # pairs 0..9 only ever in slots 0/1, pairs 10..19 only in slots 2/3: slots 2 and 3 float free
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 10, 4_000)
    slots = rng.integers(0, 2, 4_000)
    keys = np.concatenate([keys, keys + 10])
    slots = np.concatenate([slots, slots + 2])
    clicks = rng.random(len(keys)) < 0.3
    with pytest.raises(ValueError, match=r"slots \[2, 3\]"):
        harvest_examination(keys, slots, clicks, 4)
    with pytest.raises(ValueError, match="same length"):
        harvest_examination(keys[:-1], slots, clicks, 4)
    with pytest.raises(ValueError, match="out of range"):
        harvest_examination(keys, slots, clicks, 3)
