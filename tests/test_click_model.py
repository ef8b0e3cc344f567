"""The reward models of the doubly robust estimator (engine.core.click_model) recover known
parameters: the position-based model's click probabilities on a PBM log, the calibrated
score's slot intercepts and slope on a logistic log, and both refuse malformed input."""

import numpy as np
import pytest

from engine.core.click_model import fit_calibrated_score, fit_position_based


def test_position_based_model_recovers_the_click_probabilities_of_a_pbm_log():
    rng = np.random.default_rng(0)
    m, n_items, k = 200_000, 60, 8
    theta = np.array([1.0, 0.7, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15])
    gamma = rng.uniform(0.02, 0.6, n_items)
    items, slots = rng.integers(0, n_items, m), rng.integers(0, k, m)
    clicks = rng.random(m) < theta[slots] * gamma[items]
    pbm = fit_position_based(items, slots, clicks, n_items + 1, k)  # one item never logged
    truth = theta[None, :] * gamma[:, None]
    fitted = pbm.examination[None, :] * pbm.appeal[:n_items, None]
    assert np.abs(fitted - truth).max() < 0.03
    # the examination ratios are identified (only the common scale is not)
    np.testing.assert_allclose(pbm.examination / pbm.examination[0], theta, atol=0.03)
    # an item never logged is predicted at the mean appeal, not at 0 or 1
    assert pbm.appeal[:n_items].min() < pbm.appeal[n_items] < pbm.appeal[:n_items].max()
    slate = np.array([[0, 1, 2], [3, 4, 5]])
    np.testing.assert_allclose(pbm.slate(slate), pbm.predict(slate, np.array([[0, 1, 2]] * 2)))


def test_calibrated_score_recovers_slot_intercepts_and_slope():
    rng = np.random.default_rng(1)
    m, k = 200_000, 10
    scores, slots = rng.normal(2.0, 3.0, m), rng.integers(0, k, m)
    alpha, beta = np.linspace(-1.0, -3.0, k), 0.4
    clicks = rng.random(m) < 1.0 / (1.0 + np.exp(-(alpha[slots] + beta * scores)))
    cal = fit_calibrated_score(scores, slots, clicks, k)
    np.testing.assert_allclose(cal.intercepts, alpha, atol=0.05)
    assert cal.slope == pytest.approx(beta, abs=0.01)
    p = cal.predict(np.array([[0.0], [5.0]]), np.arange(k)[None, :])
    assert p.shape == (2, k) and np.all(p[1] > p[0]) and np.all(np.diff(p[0]) < 0)


@pytest.mark.parametrize("fit", ["pbm", "calibrated"])
def test_malformed_logs_are_refused(fit):
    def call(a, slots, c):
        if fit == "pbm":
            return fit_position_based(a, slots, c, n_items=5, n_slots=3)
        return fit_calibrated_score(a.astype(float), slots, c, n_slots=3)

    with pytest.raises(ValueError, match="same length"):
        call(np.array([0, 1]), np.array([0]), np.array([1, 0]))
    with pytest.raises(ValueError, match="no impression"):
        call(np.array([], dtype=int), np.array([], dtype=int), np.array([]))
    with pytest.raises(ValueError, match="out of range"):
        call(np.array([0, 1]), np.array([0, 3]), np.array([1, 0]))
