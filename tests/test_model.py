"""The factor model's own vectorised step against River's BiasedMF."""

import copy

import numpy as np

from engine import EngineConfig, Event, Recommender
from engine.model import FactorModel


def _model() -> FactorModel:
    m = FactorModel(n_factors=8)
    for j in range(30):
        m.learn(f"u{j % 4}", f"i{j}", j, 1.0)
    return m


def test_a_single_negative_is_rivers_learn_one():
    """Same update as River's to the last bit or two (the sums are associated differently)."""
    m = _model()
    river = copy.deepcopy(m.mf)
    m.learn_negatives("u1", ["i5"], [5])
    river.learn_one("u1", "i5", 0.0)
    np.testing.assert_allclose(m.mf.u_latents["u1"], river.u_latents["u1"], rtol=0, atol=1e-15)
    np.testing.assert_allclose(m.mf.i_latents["i5"], river.i_latents["i5"], rtol=0, atol=1e-15)
    assert abs(m.mf.u_biases["u1"] - river.u_biases["u1"]) < 1e-15
    assert abs(m.mf.i_biases["i5"] - river.i_biases["i5"]) < 1e-15
    assert m.mf.global_mean.get() == river.global_mean.get()


def test_a_batch_is_one_summed_step_and_keeps_river_and_the_serving_mirror_equal():
    m = _model()
    river = copy.deepcopy(m.mf)
    items, rows = ["i3", "i7", "i11"], [3, 7, 11]
    p_u, b_u = river.u_latents["u2"].copy(), river.u_biases["u2"]
    river.global_mean.update(0.0, 3)
    preds = [river.global_mean.get() + b_u + river.i_biases[i] + river.i_latents[i] @ p_u for i in items]
    g = 2.0 * np.array(preds)
    m.learn_negatives("u2", items, rows)
    lr, l2 = m.learning_rate, m.l2
    expected_p = p_u - lr * (sum(gj * river.i_latents[i] for gj, i in zip(g, items)) + 3 * l2 * p_u)
    np.testing.assert_allclose(m.mf.u_latents["u2"], expected_p, rtol=0, atol=1e-15)
    for gj, item, row in zip(g, items, rows):
        expected_q = river.i_latents[item] - lr * (gj * p_u + l2 * river.i_latents[item])
        np.testing.assert_allclose(m.mf.i_latents[item], expected_q, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(m.item_factors[row], m.mf.i_latents[item])
        assert m.item_bias[row] == m.mf.i_biases[item]
    np.testing.assert_array_equal(m.user_factors[m.user_index["u2"]], m.mf.u_latents["u2"])


def test_negative_sampling_moves_the_clicked_item_above_the_sampled_ones():
    rec = Recommender(EngineConfig(negatives_per_positive=4, cooc_weight=0.0))
    for t in range(400):
        rec.apply(Event(f"u{t % 40}", f"i{t % 20}", "click", timestamp=1e9 + t))
    rec.apply(Event("fan", "i0", "click", timestamp=1e9 + 500))
    mf = rec.model.mf
    clicked = mf.predict_one("fan", "i0")
    assert all(clicked > mf.predict_one("fan", f"i{j}") for j in range(1, 20))
