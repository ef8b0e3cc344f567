"""Off-policy estimators on cases with a known answer: on-policy IPS is the mean reward
exactly, IPS / SNIPS / DR are unbiased on a two-armed bandit with known CTRs and their 95 %
intervals cover the truth, DR with a perfect reward model has no variance, the slate
variants are unbiased for Plackett-Luce slates, thin or missing support is reported, and the
position-based weights estimate a target that moves the logger's items to slots it never
uses for them."""

import itertools

import numpy as np
import pytest

from engine.core.exploration import ExplorationPolicy, slot_expectations, slot_probabilities
from engine.core.ope import (LoggedSlates, dr, estimate, estimate_all, ips, kish_ess, pbm_exposure, prior_weights,
                             slot_weights, snips)

MU = np.array([0.7, 0.3])  # logging: arm 0 mostly
PI = np.array([0.2, 0.8])  # target: arm 1 mostly
CTR = np.array([0.3, 0.6])
TRUTH = float(PI @ CTR)  # 0.54 clicks per decision


def bandit_log(seed: int, n: int = 1000, ctr: np.ndarray = CTR, rhat: np.ndarray | None = None) -> LoggedSlates:
    """n single-slot decisions of the two-armed bandit; ``rhat`` (2,) is the reward model."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(2, size=n, p=MU)
    clicks = (rng.random(n) < ctr[arm]).astype(float)
    model = {} if rhat is None else {"rhat": rhat[arm][:, None], "target_rhat": np.full((n, 1), PI @ rhat)}
    return LoggedSlates(clicks[:, None], MU[arm][:, None], PI[arm][:, None], **model)


def test_on_policy_ips_is_the_mean_reward_exactly():
    rng = np.random.default_rng(1)
    n, k = 500, 3
    rewards = (rng.random((n, k)) < 0.2).astype(float)
    mask = np.ones((n, k), dtype=bool)
    mask[rng.random(n) < 0.3, 2] = False  # some slates have 2 slots
    logging = rng.uniform(0.05, 1.0, size=(n, k))
    log = LoggedSlates(rewards, logging, logging.copy(), mask=mask)
    clicks = (rewards * mask).sum()
    for variant in ("slot", "prefix", "slate"):
        e = ips(log, variant, resamples=200)
        assert e.value == clicks / n
        assert e.ess == pytest.approx(mask[:, 2].sum() if variant != "slate" else n, rel=1e-12)
        np.testing.assert_allclose(e.ctr, (rewards * mask).sum(axis=0) / mask.sum(axis=0), rtol=1e-12)
        assert snips(log, variant, resamples=200).value == pytest.approx(clicks / n, rel=1e-12)


@pytest.mark.parametrize("name", ["ips", "snips", "dr"])
def test_estimators_are_unbiased_and_their_intervals_cover_the_truth_on_a_two_armed_bandit(name):
    seeds = range(100)
    values, covered = [], 0
    for seed in seeds:
        log = bandit_log(seed, rhat=np.array([0.5, 0.5]))  # a wrong reward model: DR must stay unbiased
        e = estimate(log, name, "slot", resamples=1000, seed=seed)
        values.append(e.value)
        covered += e.low <= TRUTH <= e.high
    values = np.array(values)
    # one estimate's sd is ~0.04 (n = 1000, weights up to 2.7): the mean of 100 has sd ~0.004
    assert abs(values.mean() - TRUTH) < 0.012
    assert covered / len(seeds) >= 0.90


def test_the_empirical_bernstein_interval_is_wider_and_covers():
    covered = 0
    for seed in range(50):
        log = bandit_log(seed)
        boot, bern = ips(log, resamples=500, seed=seed), ips(log, interval="bernstein")
        assert bern.value == boot.value
        assert bern.high - bern.low > boot.high - boot.low
        covered += bern.low <= TRUTH <= bern.high
    assert covered == 50  # a conservative bound (nominal >= 95 %): no miss in 50 seeds


def test_dr_with_a_perfect_reward_model_has_zero_variance():
    deterministic = np.array([0.0, 1.0])  # arm 1 always clicked, arm 0 never
    values = []
    for seed in range(20):
        log = bandit_log(seed, ctr=deterministic, rhat=deterministic)
        e = dr(log, resamples=300, seed=seed)
        values.append(e.value)
        assert e.value == pytest.approx(PI[1], abs=1e-12) and e.high - e.low < 1e-12
    assert np.std(values) < 1e-12
    assert np.std([ips(bandit_log(s, ctr=deterministic), resamples=10).value for s in range(20)]) > 0.01


def test_dr_with_the_true_click_rates_beats_ips_on_variance():
    dr_values = [dr(bandit_log(s, rhat=CTR), resamples=10).value for s in range(60)]
    ips_values = [ips(bandit_log(s), resamples=10).value for s in range(60)]
    # theory at n = 1000: sd(DR) = sqrt(E[w^2 ctr (1 - ctr)] / n) = 0.023, sd(IPS) = 0.032 (ratio 0.72)
    assert np.std(dr_values) < 0.85 * np.std(ips_values)
    assert np.std(dr_values) == pytest.approx(0.0229, rel=0.25)


# --------------------------------------------------------------------- two-slot slates
ITEMS_SCORES = np.array([1.0, 0.0, -0.5])  # target's Plackett-Luce scores over 3 items
THETA = np.array([[0.5, 0.3], [0.2, 0.4], [0.1, 0.6]])  # P(click | item, slot): item-position model
UNIFORM = ExplorationPolicy("softmax", temperature=1.0)
TARGET = ExplorationPolicy("softmax", temperature=0.5)
PAIRS = list(itertools.permutations(range(3), 2))


def _pair_probability(policy, scores, pair):
    return float(np.prod(slot_probabilities(scores, np.array(pair), policy)))


def slate_log(seed: int, n: int = 2000) -> LoggedSlates:
    """Slates of 2 out of 3 items logged uniformly (without replacement), clicks from THETA."""
    flat = np.zeros(3)
    mu_pair = np.array([_pair_probability(UNIFORM, flat, p) for p in PAIRS])
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(PAIRS), size=n, p=mu_pair)
    slates = np.array(PAIRS)[idx]
    clicks = (rng.random((n, 2)) < THETA[slates, [0, 1]]).astype(float)
    logging = np.array([slot_probabilities(flat, np.array(p), UNIFORM) for p in PAIRS])[idx]
    target = np.array([slot_probabilities(ITEMS_SCORES, np.array(p), TARGET) for p in PAIRS])[idx]
    rhat = THETA[slates, [0, 1]]
    expect = np.array([slot_expectations(ITEMS_SCORES, np.array(p), TARGET, THETA) for p in PAIRS])[idx]
    return LoggedSlates(clicks, logging, target, rhat=rhat, target_rhat=expect)


def test_prefix_and_slate_variants_are_unbiased_for_plackett_luce_slates_and_slot_is_conditional():
    truth = sum(_pair_probability(TARGET, ITEMS_SCORES, (a, b)) * (THETA[a, 0] + THETA[b, 1]) for a, b in PAIRS)
    # what the slot variant estimates: slot 1 as the target fills it, slot 2 as the target
    # fills it given the *logged* (uniform) first item
    first = slot_probabilities(ITEMS_SCORES, np.array([0, 1, 2]), TARGET)[0] / np.exp(ITEMS_SCORES[0] / 0.5) \
        * np.exp(ITEMS_SCORES / 0.5)  # P(first = a), a = 0, 1, 2
    second_given = {a: [(b, _pair_probability(TARGET, ITEMS_SCORES, (a, b)) / first[a]) for b in range(3) if b != a]
                    for a in range(3)}
    conditional = float(first @ THETA[:, 0]) + sum(p * THETA[b, 1] for a in range(3) for b, p in second_given[a]) / 3
    assert abs(truth - conditional) > 0.02  # the two quantities differ on this world
    runs = {(e, v): [] for e in ("ips", "snips", "dr") for v in ("slot", "prefix", "slate")}
    for seed in range(40):
        log = slate_log(seed)
        for est in estimate_all(log, variants=("slot", "prefix", "slate"), resamples=10):
            runs[(est.estimator, est.variant)].append(est.value)
    for (name, variant), values in runs.items():
        aim = conditional if variant == "slot" else truth
        assert abs(np.mean(values) - aim) < 0.01, (name, variant, np.mean(values), aim)


def test_weights_by_variant():
    log = LoggedSlates(np.zeros((1, 3)), np.array([[0.5, 0.5, 0.25]]), np.array([[1.0, 0.25, 0.5]]))
    np.testing.assert_allclose(slot_weights(log, "slot"), [[2.0, 0.5, 2.0]])
    np.testing.assert_allclose(slot_weights(log, "prefix"), [[2.0, 1.0, 2.0]])
    np.testing.assert_allclose(slot_weights(log, "slate"), [[2.0, 2.0, 2.0]])
    np.testing.assert_allclose(prior_weights(log, "prefix"), [[1.0, 2.0, 1.0]])
    np.testing.assert_allclose(prior_weights(log, "slot"), [[1.0, 1.0, 1.0]])


# --------------------------------------------------------------------------- diagnostics
def test_ess_equals_n_for_uniform_weights_and_one_for_a_single_weight():
    assert kish_ess(np.full(400, 0.37)) == pytest.approx(400, rel=1e-12)
    assert kish_ess(np.r_[5.0, np.zeros(99)]) == 1.0
    assert kish_ess(np.zeros(10)) == 0.0
    n = 300
    log = LoggedSlates(np.ones((n, 1)), np.full((n, 1), 0.25), np.full((n, 1), 0.5))
    e = ips(log, resamples=50)
    assert e.ess == pytest.approx(n, rel=1e-12) and e.max_weight == 2.0


def test_zero_support_is_reported():
    n = 200
    log = LoggedSlates(np.ones((n, 1)), np.full((n, 1), 0.5), np.zeros((n, 1)))
    e = ips(log, resamples=50)
    assert e.value == 0.0 and e.ess == 0.0 and e.clicks == 0
    assert any(w.startswith("no support") for w in e.warnings)


def test_mass_outside_the_logging_support_is_reported():
    n = 200
    deterministic = LoggedSlates(np.ones((n, 1)), np.ones((n, 1)), np.full((n, 1), 0.5))
    warnings = ips(deterministic, resamples=50).warnings
    assert any("logging probability is 0" in w and "deterministic" in w for w in warnings)
    # a logger that shows items with 0.1 where the target puts 0.03: mean weight 0.3 < 1
    rng = np.random.default_rng(0)
    thin = LoggedSlates((rng.random((n, 1)) < 0.5).astype(float), np.full((n, 1), 0.1), np.full((n, 1), 0.03))
    assert any("mean per-slot weight 0.300" in w for w in ips(thin, resamples=50).warnings)
    covered = LoggedSlates(np.ones((n, 1)), np.full((n, 1), 0.5), np.full((n, 1), 0.5))
    assert ips(covered, resamples=50).warnings == []


def test_thin_support_and_few_clicks_are_reported():
    n = 1000
    target = np.zeros((n, 1))
    target[:20] = 0.5  # 20 supported decisions out of 1000
    rewards = np.zeros((n, 1))
    rewards[:10] = 1
    e = ips(LoggedSlates(rewards, np.full((n, 1), 0.5), target), resamples=50)
    assert e.ess == pytest.approx(20) and e.clicks == 10
    assert any(w.startswith("thin support") for w in e.warnings)
    assert any(w.startswith("rests on 10 clicks") for w in e.warnings)


def test_bad_logs_are_refused():
    with pytest.raises(ValueError, match="logging"):
        LoggedSlates(np.zeros((2, 1)), np.zeros((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="rewards"):
        LoggedSlates(np.full((2, 1), np.nan), np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="shape"):
        LoggedSlates(np.zeros((2, 1)), np.ones((2, 2)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="rhat"):
        dr(LoggedSlates(np.zeros((2, 1)), np.ones((2, 1)), np.ones((2, 1))))
    with pytest.raises(ValueError, match="variant"):
        ips(LoggedSlates(np.zeros((2, 1)), np.ones((2, 1)), np.ones((2, 1))), "cascade")


def test_a_masked_slot_holds_anything_and_counts_for_nothing():
    rewards = np.array([[1.0, np.nan], [0.0, 1.0]])
    mask = np.array([[True, False], [True, True]])
    log = LoggedSlates(rewards, np.array([[0.5, 0.0], [0.5, 0.5]]), np.array([[0.5, 7.0], [0.5, 0.5]]), mask=mask)
    e = ips(log, "slate", resamples=50)
    assert e.value == 1.0  # 2 clicks over 2 slates
    np.testing.assert_allclose(e.ctr, [0.5, 1.0])


def test_a_bootstrap_interval_without_weighted_clicks_is_flagged_and_bernstein_is_not_degenerate():
    n = 500
    rewards = np.zeros((n, 1))
    rewards[::50] = 1  # 10 clicks, none where the target agrees with the log
    target = np.zeros((n, 1))
    target[1::50] = 1.0
    log = LoggedSlates(rewards, np.full((n, 1), 0.5), target)
    boot = ips(log, resamples=200)
    assert boot.value == 0.0 and boot.low == boot.high == 0.0
    assert any(w.startswith("degenerate interval") for w in boot.warnings)
    bern = ips(log, interval="bernstein")
    assert bern.high > 0.01 and not any(w.startswith("degenerate") for w in bern.warnings)


def test_one_decision_gets_a_degenerate_interval_warning_and_an_estimate_outside_the_range_is_said():
    """One clicked slot logged with probability 0.82 under a target that agrees: IPS is
    1 / 0.82 = 1.22 clicks on a one-slot slate, outside [0, 1]; the interval (clipped to the
    possible range) is [1, 1]. Both are said, not left for the reader to spot."""
    log = LoggedSlates(np.ones((1, 1)), np.full((1, 1), 0.82), np.ones((1, 1)))
    est = ips(log, resamples=50)
    assert est.value == pytest.approx(1 / 0.82) and est.low == est.high == 1.0
    assert any(w.startswith("degenerate interval") and "one decision" in w for w in est.warnings)
    assert any("outside the possible range [0, 1]" in w for w in est.warnings)
    many = ips(bandit_log(0), resamples=50)  # a thousand decisions: neither warning
    assert not any(w.startswith("degenerate") or "possible range" in w for w in many.warnings)


# ---------------------------------------------------------------- position-based weights
PBM_THETA = np.array([1.0, 0.5])  # slot examination
PBM_APPEAL = np.array([0.6, 0.2])  # items A, B
SWAPPED = float(PBM_THETA[0] * PBM_APPEAL[1] + PBM_THETA[1] * PBM_APPEAL[0])  # the target's slate (B, A): 0.5 clicks


def swapped_log(n: int, rewards=None, eps: float = 0.0, seed: int = 0) -> LoggedSlates:
    """A logger that shows (A, B), or (B, A) with probability ``eps``, and a target that
    always shows (B, A); clicks follow the position-based model PBM_THETA x PBM_APPEAL. Per slot the
    target's pairs (B in slot 0, A in slot 1) have logging probability ``eps``. ``rewards``:
    optional function of the (n, 2) click probabilities (default: sampled clicks)."""
    rng = np.random.default_rng(seed)
    swap = rng.random(n) < eps
    items = np.where(swap[:, None], [[1, 0]], [[0, 1]])
    p = PBM_THETA[None, :] * PBM_APPEAL[items]
    r = (rng.random((n, 2)) < p).astype(float) if rewards is None else rewards(p)
    mu_all = np.where(items[:, :, None] == 0, [[1 - eps, eps]], [[eps, 1 - eps]])  # item -> P(slot l)
    pi_all = np.where(items[:, :, None] == 0, [[0.0, 1.0]], [[1.0, 0.0]])
    mu_slot, pi_slot = np.diagonal(mu_all, axis1=1, axis2=2), np.diagonal(pi_all, axis1=1, axis2=2)  # own slot
    return LoggedSlates(r, np.maximum(mu_slot, 1e-12), pi_slot, rhat=PBM_THETA[None, :] * PBM_APPEAL[items],
                        target_rhat=np.broadcast_to(PBM_THETA * PBM_APPEAL[[1, 0]], (n, 2)),
                        logging_exposure=pbm_exposure(mu_all, PBM_THETA), target_exposure=pbm_exposure(pi_all, PBM_THETA),
                        examination=PBM_THETA)


def test_pbm_weights_estimate_a_target_the_logger_never_showed_per_slot():
    # expected clicks as rewards: the estimators' expectations, with no click noise
    log = swapped_log(100, rewards=lambda p: p)
    assert ips(log, "slot", resamples=10).value == 0.0  # per slot the logger never shows (B, A)
    for name in ("ips", "snips"):
        assert estimate(log, name, "pbm", resamples=10).value == pytest.approx(SWAPPED, rel=1e-12)
    # DR with the true click model is exact too; with wrong appeals it stays unbiased (below)
    assert dr(log, "pbm", resamples=10).value == pytest.approx(SWAPPED, rel=1e-12)


@pytest.mark.parametrize("name", ["ips", "snips", "dr"])
def test_pbm_estimates_are_unbiased_and_covered_with_sampled_clicks(name):
    values, covered = [], 0
    for seed in range(40):
        log = swapped_log(2000, eps=0.0, seed=seed)
        if name == "dr":  # a wrong reward model of the PBM form: every item's appeal 0.3
            log.rhat = log.target_rhat = np.broadcast_to(0.3 * PBM_THETA, (log.n, 2))
        e = estimate(log, name, "pbm", resamples=400, seed=seed)
        values.append(e.value)
        covered += e.low <= SWAPPED <= e.high
    assert abs(np.mean(values) - SWAPPED) < 0.01  # one estimate's sd ~0.02: the mean of 40 ~0.003
    assert covered >= 34  # >= 85 % of 40 (95 % nominal)


def test_pbm_snips_normaliser_has_mean_one_under_the_logger():
    # the logger sometimes swaps: the per-slate normaliser sum_j theta_j w_j / sum theta averages 1
    log = swapped_log(20_000, eps=0.3, seed=3)
    w = slot_weights(log, "pbm")
    norm = (w * PBM_THETA).sum(axis=1) / PBM_THETA.sum()
    assert norm.mean() == pytest.approx(1.0, abs=0.02)
    assert not np.allclose(w.mean(axis=0), 1.0, atol=0.05)  # per slot they do not: why SNIPS normalises per slate


def test_pbm_weights_need_the_exposures():
    log = bandit_log(0)
    with pytest.raises(ValueError, match="pbm weights need"):
        estimate(log, "ips", "pbm")
    with pytest.raises(ValueError, match="go together"):
        LoggedSlates(np.zeros((2, 1)), np.ones((2, 1)), np.ones((2, 1)), examination=np.ones(1))
    with pytest.raises(ValueError, match="logging_exposure must be > 0"):
        LoggedSlates(np.zeros((2, 1)), np.ones((2, 1)), np.ones((2, 1)), logging_exposure=np.zeros((2, 1)),
                     target_exposure=np.ones((2, 1)), examination=np.ones(1))
    with pytest.raises(ValueError, match="examination must be"):
        LoggedSlates(np.zeros((2, 1)), np.ones((2, 1)), np.ones((2, 1)), logging_exposure=np.ones((2, 1)),
                     target_exposure=np.ones((2, 1)), examination=np.ones(2))
