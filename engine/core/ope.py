"""Off-policy estimators of a target policy's click rate from logged slates.

A log of ``n`` slates with up to ``k`` slots each (``LoggedSlates``) holds, per slot, the
click ``r`` (0/1), the probability ``mu`` with which the logging policy put the logged item
there, and the probability ``pi`` with which the target policy would have (both given the
items in the slots before it, as ``engine.core.exploration`` computes them). The value
estimated is the target's **expected clicks per slate**; ``ctr`` is its click rate per slot.

Estimators (``estimator``):

``ips``
    inverse propensity scoring (Horvitz & Thompson 1952, "A generalization of sampling
    without replacement from a finite universe", JASA): ``mean_i sum_j w_ij r_ij``.
    Unbiased when the target only puts mass where the logger does.
``snips``
    self-normalised IPS (Swaminathan & Joachims 2015, "The self-normalized estimator for
    counterfactual learning", NeurIPS): per slot ``sum_i w_ij r_ij / sum_i w_ij``. Biased
    O(1/n), bounded by the rewards, far less variance when weights are large.
``dr``
    doubly robust (Dudik, Langford & Li 2011, "Doubly robust policy evaluation and
    learning", ICML), in its sequential form for slates: per slot
    ``w_ij (r_ij - rhat_ij) + v_ij * target_rhat_ij`` where ``rhat`` is a reward model's
    prediction for the logged item, ``target_rhat`` the target's expected reward-model value
    at that slot (``exploration.slot_expectations``) and ``v`` the weight of the slots
    before it (1 for ``slot``). Unbiased if the weights are right, whatever the model;
    low variance when the model is good.

Weights (``variant``):

``slot``
    ``w_ij = pi_ij / mu_ij``: every slot on its own. Assumes a slot's click depends only on
    the item in it (the item-position click model of Li, Kim, Kveton, Muthukrishnan, Vinay &
    Wen 2018, "Offline evaluation of ranking policies with click models", KDD: their IIPS);
    this is the additivity assumption of the pseudo-inverse estimator of Swaminathan,
    Krishnamurthy, Agarwal, Dudik, Langford, Jose & Zitouni 2017, "Off-policy evaluation
    for slate recommendation", NeurIPS, with the per-slot rewards observed. With the
    conditional propensities of ``exploration`` it estimates the target at each slot *given
    the logged items above it*; with marginal per-position propensities (the Open Bandit
    Dataset's) it is exactly IIPS.
``prefix``
    ``w_ij = prod_{l <= j} pi_il / mu_il``: a slot's click may depend on the items above it
    (the cascade assumption; Li et al. 2018's cascade estimator, Kiyohara, Saito, Matsuhiro,
    Narita, Shimizu & Yamamoto 2022, "Doubly robust off-policy evaluation for ranking
    policies under the cascade behavior model", WSDM). Unbiased for the target's own
    slates under that assumption, with the conditional propensities logged here.
``slate``
    ``W_i = prod_j pi_ij / prod_j mu_ij`` for every slot: no assumption on clicks at all,
    the most variance (Swaminathan et al. 2017's baseline).
``pbm``
    the position-based estimator of Li et al. 2018 (their PBM estimator): under the
    position-based click model ``P(c = 1 | a, j) = theta_j gamma_a`` an item's clicks in any
    slot tell its appeal, so the logged item ``a`` in slot ``j`` is weighted by its
    examination-weighted *exposure* under each policy, whatever slot it was logged in:

    .. math::

        w_{ij} = \\frac{\\sum_l \\pi(a_{ij}, l \\mid x_i) \\, \\theta_l}{\\sum_l \\mu(a_{ij}, l \\mid x_i) \\, \\theta_l}

    with marginal slot probabilities (``pbm_exposure``). A logger that shows its best item
    almost only in the top slot still supports a target that puts it lower, where ``slot``
    weights see (almost) nothing. Needs the exposures and ``theta`` in the log
    (``LoggedSlates.logging_exposure``, ``target_exposure``, ``examination``; ``theta``
    harvested from the log, ``engine.core.position_bias.harvest_examination``, which holds
    when appeal is personal, or fitted by ``engine.core.click_model.fit_position_based``,
    which is biased then). Unbiased when the
    clicks follow the PBM with that ``theta``, and the target's items are shown by the
    logger somewhere. Its SNIPS divides by the per-slate control variate
    ``sum_j theta_j w_ij / sum_j theta_j``, whose expectation under the logger is 1 (not
    per slot: a slot's weights do not average 1 here). Its DR is unbiased for a reward
    model of the same form ``theta_j g_a`` whatever the appeals ``g`` (the PBM fitted on
    the log is one), not for any reward model.

Each ``Estimate`` carries a 95 % interval (percentile bootstrap over slates, seeded and
vectorised, or the empirical Bernstein bound of Maurer & Pontil 2009, "Empirical Bernstein
bounds and sample variance penalization", COLT, Theorem 4), the Kish effective sample size
of the weights, the largest weight, the clicks the estimate rests on and plain-language
warnings when support is thin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

ESTIMATORS = ("ips", "snips", "dr")
VARIANTS = ("slot", "prefix", "slate", "pbm")
INTERVALS = ("bootstrap", "bernstein")
MIN_CLICKS = 30
THIN_ESS_SHARE = 0.05
THIN_ESS = 100
_BOOT_CELLS = 2_000_000  # resample counts held at once (B_chunk * n)


@dataclass
class LoggedSlates:
    """Logged slates as (n, k) arrays, one row per slate, slots best first.

    Attributes:
        rewards: (n, k) clicks, 0/1 (any value in [0, 1] works), no NaN.
        logging: (n, k) logging policy's probability of each logged item in its slot, in (0, 1].
        target: (n, k) target policy's probability of the same, in [0, 1]
            (``exploration.slot_probabilities``).
        mask: optional (n, k) bool, True where the slot exists (a slate shorter than ``k``);
            default all True. Masked entries are ignored (any value, NaN included).
        rhat: optional (n, k) reward model's prediction for each logged item (DR only).
        target_rhat: optional (n, k) target's expected reward-model value at each slot given
            the logged items above it (``exploration.slot_expectations``; DR only).
        logging_exposure, target_exposure: optional (n, k) examination-weighted exposure of
            each logged item under the logging / target policy, ``sum_l P(item in slot l)
            theta_l`` with marginal slot probabilities (``pbm_exposure``); the logging one > 0
            on logged slots (the logger showed the item). ``pbm`` weights only.
        examination: optional (k,) examination probability ``theta`` of each slot, > 0
            (relative examination suffices: ``engine.core.position_bias.HarvestedBias.examination``
            or ``engine.core.click_model.PositionBased.examination``); with the exposures.

    Raises:
        ValueError: shapes differ or are not 2-D, a NaN/inf, rewards outside [0, 1], a
            logging probability outside (0, 1] or a target probability outside [0, 1] on an
            unmasked slot, only one of ``rhat`` / ``target_rhat``, only some of the exposures
            and ``examination``, a non-positive logging exposure on a logged slot or a
            negative target exposure, an ``examination`` not of shape (k,) or not > 0.
    """

    rewards: np.ndarray
    logging: np.ndarray
    target: np.ndarray
    mask: np.ndarray | None = None
    rhat: np.ndarray | None = None
    target_rhat: np.ndarray | None = None
    logging_exposure: np.ndarray | None = None
    target_exposure: np.ndarray | None = None
    examination: np.ndarray | None = None

    def __post_init__(self) -> None:
        r = np.asarray(self.rewards, dtype=np.float64)
        if r.ndim != 2:
            raise ValueError(f"rewards must be (n, k), got shape {r.shape}")
        m = np.ones(r.shape, dtype=bool) if self.mask is None else np.asarray(self.mask, dtype=bool)
        if m.shape != r.shape:
            raise ValueError(f"mask must have shape {r.shape}, got {m.shape}")
        self.mask = m

        def clean(name: str, a, fill: float) -> np.ndarray:
            a = np.asarray(a, dtype=np.float64)
            if a.shape != r.shape:
                raise ValueError(f"{name} must have shape {r.shape}, got {a.shape}")
            if not np.all(np.isfinite(a[m])):
                raise ValueError(f"{name} has a NaN or infinite value on a logged slot")
            return np.where(m, a, fill)

        self.rewards = clean("rewards", r, 0.0)
        self.logging = clean("logging", self.logging, 1.0)
        self.target = clean("target", self.target, 1.0)
        if np.any((self.rewards < 0) | (self.rewards > 1)):
            raise ValueError("rewards must be in [0, 1] (clicks)")
        if np.any((self.logging <= 0) | (self.logging > 1)):
            raise ValueError("logging probabilities must be in (0, 1]: the logger did show every logged item")
        if np.any((self.target < 0) | (self.target > 1)):
            raise ValueError("target probabilities must be in [0, 1]")
        if (self.rhat is None) != (self.target_rhat is None):
            raise ValueError("rhat and target_rhat go together (both or neither)")
        if self.rhat is not None:
            self.rhat = clean("rhat", self.rhat, 0.0)
            self.target_rhat = clean("target_rhat", self.target_rhat, 0.0)
        pbm = (self.logging_exposure, self.target_exposure, self.examination)
        if any(a is not None for a in pbm):
            if any(a is None for a in pbm):
                raise ValueError("logging_exposure, target_exposure and examination go together (all or none)")
            self.logging_exposure = clean("logging_exposure", self.logging_exposure, 1.0)
            self.target_exposure = clean("target_exposure", self.target_exposure, 0.0)
            if np.any(self.logging_exposure <= 0):
                raise ValueError("logging_exposure must be > 0 on logged slots: the logger did show every logged item")
            if np.any(self.target_exposure < 0):
                raise ValueError("target_exposure must be >= 0")
            theta = np.asarray(self.examination, dtype=np.float64)
            if theta.shape != (r.shape[1],) or not np.all(np.isfinite(theta)) or np.any(theta <= 0):
                raise ValueError(f"examination must be ({r.shape[1]},) finite and > 0, got shape {theta.shape}")
            self.examination = theta

    @property
    def n(self) -> int:
        """Number of slates."""
        return self.rewards.shape[0]

    @property
    def k(self) -> int:
        """Slots per row (the longest slate)."""
        return self.rewards.shape[1]

    @property
    def logging_slate(self) -> np.ndarray:
        """(n,) probability of each whole logged slate under the logging policy."""
        return np.prod(self.logging, axis=1)

    @property
    def target_slate(self) -> np.ndarray:
        """(n,) probability of each whole logged slate under the target policy."""
        return np.prod(self.target, axis=1)


@dataclass
class Estimate:
    """One off-policy estimate.

    Attributes:
        estimator, variant, interval: what produced it (``ESTIMATORS``, ``VARIANTS``, ``INTERVALS``).
        value: expected clicks per slate under the target.
        ctr: (k,) click rate per slot (value = sum over slots of ctr times the share of
            slates that have the slot).
        low, high: the 95 % (``1 - alpha``) interval of ``value``, clipped to the possible
            range [0, slots] (``value`` itself is not clipped: IPS can exceed it, DR can be < 0).
        n: slates used.
        ess: Kish effective sample size ``(sum w)^2 / sum w^2`` of the weights (per slot for
            ``slot`` / ``prefix``: the smallest over slots; 0 when all weights are 0).
        max_weight: the largest weight.
        clicks: clicks on slots with a non-zero weight (what the estimate rests on).
        warnings: plain-language reasons not to trust it.
    """

    estimator: str
    variant: str
    value: float
    ctr: np.ndarray
    low: float
    high: float
    n: int
    ess: float
    max_weight: float
    clicks: int
    interval: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able dict (``ctr`` as a list)."""
        d = asdict(self)
        d["ctr"] = [float(x) for x in self.ctr]
        return d


# ------------------------------------------------------------------------------ weights
def pbm_exposure(marginals: np.ndarray, examination: np.ndarray) -> np.ndarray:
    """Examination-weighted exposure of logged items for ``pbm`` weights:
    ``sum_l marginals[..., l] * examination[l]``.

    Args:
        marginals: (n, k, s) marginal probability that the item logged in slot ``j`` of slate
            ``i`` is put in slot ``l`` by a policy (``exploration.logged_marginals`` of that
            item at every slot; one-hot for a deterministic slate, 0 where the policy does not
            show it).
        examination: (s,) examination probability of each slot (``theta``).

    Returns:
        (n, k) exposures.

    Raises:
        ValueError: the last axis of ``marginals`` is not ``len(examination)``.
    """
    m, theta = np.asarray(marginals, dtype=np.float64), np.asarray(examination, dtype=np.float64)
    if m.ndim != 3 or m.shape[-1] != theta.shape[0]:
        raise ValueError(f"marginals must be (n, k, {theta.shape[0]}), got shape {m.shape}")
    return m @ theta


def slot_weights(log: LoggedSlates, variant: str = "slot") -> np.ndarray:
    """(n, k) importance weight of every logged slot under ``variant`` (0 on masked slots).

    Raises:
        ValueError: an unknown variant, ``pbm`` on a log without exposures.
    """
    if variant == "pbm":
        if log.examination is None:
            raise ValueError("pbm weights need logging_exposure, target_exposure and examination in the log")
        return np.where(log.mask, log.target_exposure / log.logging_exposure, 0.0)
    ratio = log.target / log.logging  # masked slots: 1 / 1
    if variant == "slot":
        w = ratio
    elif variant == "prefix":
        w = np.cumprod(ratio, axis=1)
    elif variant == "slate":
        w = np.repeat(log.target_slate / log.logging_slate, log.k).reshape(log.n, log.k)
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    return np.where(log.mask, w, 0.0)


def prior_weights(log: LoggedSlates, variant: str = "slot") -> np.ndarray:
    """(n, k) weight of the slots *above* each slot: what multiplies the direct-method term
    of DR (1 for ``slot``; ``prod_{l < j} pi/mu`` for ``prefix`` and ``slate``, whose
    sum over slots estimates the target's expected reward-model value without bias).

    Raises:
        ValueError: an unknown variant.
    """
    if variant in ("slot", "pbm"):
        v = np.ones(log.rewards.shape)
    elif variant in ("prefix", "slate"):
        ratio = log.target / log.logging
        v = np.concatenate([np.ones((log.n, 1)), np.cumprod(ratio, axis=1)[:, :-1]], axis=1)
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    return np.where(log.mask, v, 0.0)


def kish_ess(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of non-negative weights (any
    shape, flattened): ``n`` for equal weights, 1 when one weight carries everything, 0
    when all are 0."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    sq = float(np.dot(w, w))
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


def _ess(log: LoggedSlates, w: np.ndarray, variant: str) -> float:
    if variant == "slate":
        return kish_ess(w[:, 0]) if log.k else 0.0
    per_slot = [kish_ess(w[log.mask[:, j], j]) for j in range(log.k) if log.mask[:, j].any()]
    return min(per_slot) if per_slot else 0.0


# ------------------------------------------------------------------------- the estimate
def terms(log: LoggedSlates, estimator: str, variant: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(C, D, w), each (n, k): the estimate is ``ctr_j = sum_i C_ij / sum_i D_ij`` per slot,
    ``value = sum_j (share of slates with slot j) * ctr_j``; ``w`` the weights used.

    Raises:
        ValueError: an unknown estimator or variant, ``dr`` without ``rhat``, ``pbm`` without exposures.
    """
    w = slot_weights(log, variant)
    m = log.mask.astype(np.float64)
    if estimator == "ips":
        return w * log.rewards, m, w
    if estimator == "snips":
        if variant == "pbm":  # one normaliser per slate, mean 1 under the logger (module docstring)
            theta = np.where(log.mask, log.examination[None, :], 0.0)
            norm = np.sum(theta * w, axis=1) / np.maximum(theta.sum(axis=1), 1e-300)
            return w * log.rewards, norm[:, None] * m, w
        return w * log.rewards, w, w
    if estimator == "dr":
        if log.rhat is None:
            raise ValueError("dr needs rhat and target_rhat in the log")
        v = prior_weights(log, variant)
        return m * (w * (log.rewards - log.rhat) + v * log.target_rhat), m, w
    raise ValueError(f"estimator must be one of {ESTIMATORS}, not {estimator!r}")


def statistic(num: np.ndarray, den: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value (...,), ctr (..., k)) from column sums (``terms``): ``num``/``den`` the sums of
    C and D over slates, ``present`` the share of slates having each slot; leading axes are
    resamples (``bootstrap_interval``)."""
    ctr = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    return np.sum(present * ctr, axis=-1), ctr


def resampled_sums(X: np.ndarray, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """(resamples, m) column sums of ``X`` (n, m) over its rows resampled with replacement
    (the nonparametric bootstrap, Efron 1979): ``resamples`` resamples from
    ``np.random.default_rng(seed)``, in vectorised blocks (resample counts times ``X``).

    Raises:
        ValueError: ``resamples < 1`` or no rows.
    """
    n = X.shape[0]
    if resamples < 1 or n == 0:
        raise ValueError("bootstrap needs resamples >= 1 and at least one slate")
    rng = np.random.default_rng(seed)
    block = max(1, min(resamples, _BOOT_CELLS // n))
    out = []
    for start in range(0, resamples, block):
        b = min(block, resamples - start)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        out.append(counts @ X)
    return np.concatenate(out)


def bootstrap_interval(C: np.ndarray, D: np.ndarray, M: np.ndarray, resamples: int = 2000, seed: int = 0,
                       alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap (Efron 1979) interval of ``statistic`` over slates (rows)
    resampled with replacement (``resampled_sums``).

    Args:
        C, D, M: (n, k) numerator terms, denominator terms, slot mask (float).

    Raises:
        ValueError: ``resamples < 1``, ``alpha`` outside (0, 1) or no rows.
    """
    n, k = C.shape
    if not 0 < alpha < 1:
        raise ValueError("bootstrap needs alpha in (0, 1)")
    sums = resampled_sums(np.hstack([C, D, M]), resamples, seed)
    v = statistic(sums[:, :k], sums[:, k:2 * k], sums[:, 2 * k:] / n)[0]
    return float(np.quantile(v, alpha / 2)), float(np.quantile(v, 1 - alpha / 2))


def bernstein_interval(C: np.ndarray, D: np.ndarray, M: np.ndarray, coef: np.ndarray, rewards: np.ndarray,
                       alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided empirical Bernstein interval (Maurer & Pontil 2009, Theorem 4, each side at
    ``alpha / 2``): ``mean +- sqrt(2 V ln(4/alpha) / n) + 7 R ln(4/alpha) / (3 (n - 1))``
    over the per-slate terms ``X_i`` whose mean is the estimate (exact for IPS and DR; for
    SNIPS the delta-method linearisation, an approximation), ``V`` their sample variance and
    ``R`` their range.

    The bound needs the range of ``X`` over all possible clicks: ``C`` is linear in the
    ``rewards`` (n, k) with coefficients ``coef`` (n, k) >= 0 (the weights), so each
    slate's range is known from its logged weights; ``R`` is the widest over the logged
    slates (a logger that can show items with smaller probabilities than any logged one
    could make it wider).

    Raises:
        ValueError: fewer than 2 slates or ``alpha`` outside (0, 1).
    """
    n = C.shape[0]
    if n < 2 or not 0 < alpha < 1:
        raise ValueError("the empirical Bernstein bound needs at least 2 slates and alpha in (0, 1)")
    p = M.mean(axis=0)
    dbar = D.mean(axis=0)
    value, ctr = statistic(C.sum(axis=0), D.sum(axis=0), p)
    scale = np.divide(p, dbar, out=np.zeros_like(p), where=dbar != 0)
    x = value + (scale * (C - ctr * D) + ctr * (M - p)).sum(axis=1)  # influence terms, mean = value
    slope = (scale * coef).sum(axis=1)  # d X_i / d(clicks); X_i ranges over [x0, x0 + slope]
    x0 = x - (scale * coef * rewards).sum(axis=1)  # the same slate with no click
    span = float(np.max(x0 + slope) - np.min(x0))
    log_term = np.log(4.0 / alpha)
    half = np.sqrt(2.0 * np.var(x, ddof=1) * log_term / n) + 7.0 * span * log_term / (3.0 * (n - 1))
    return float(np.mean(x) - half), float(np.mean(x) + half)


def estimate(log: LoggedSlates, estimator: str = "ips", variant: str = "slot", interval: str = "bootstrap",
             resamples: int = 2000, seed: int = 0, alpha: float = 0.05) -> Estimate:
    """Estimate the target's expected clicks per slate from ``log``.

    Args:
        log: the logged slates with target probabilities.
        estimator: ``"ips"``, ``"snips"`` or ``"dr"`` (see the module docstring).
        variant: ``"slot"``, ``"prefix"``, ``"slate"`` or ``"pbm"`` weights (``pbm``: the log
            carries the exposures and ``examination``).
        interval: ``"bootstrap"`` (percentile, ``resamples`` resamples seeded by ``seed``) or
            ``"bernstein"`` (Maurer & Pontil 2009).
        alpha: 1 - confidence (0.05: a 95 % interval).

    Returns:
        an ``Estimate``; deterministic given its arguments.

    Raises:
        ValueError: an unknown estimator / variant / interval, an empty log, ``dr`` without
            ``rhat`` in the log, ``pbm`` without exposures, or bad interval parameters.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, not {interval!r}")
    if log.n == 0:
        raise ValueError("no logged slates")
    C, D, w = terms(log, estimator, variant)
    M = log.mask.astype(np.float64)
    value, ctr = statistic(C.sum(axis=0), D.sum(axis=0), M.mean(axis=0))
    if estimator != "snips":
        value = C.sum() / log.n  # the same number, summed as the mean of the terms (exact on-policy)
    if interval == "bootstrap":
        low, high = bootstrap_interval(C, D, M, resamples, seed, alpha)
    else:
        low, high = bernstein_interval(C, D, M, w, log.rewards, alpha)
    top = float(M.sum(axis=1).max())
    ess = _ess(log, w, variant)
    clicks = int(round(float(np.sum(log.rewards * (w > 0)))))
    warnings = support_warnings(log, w, ess, clicks)
    if interval == "bootstrap" and np.any(w > 0) and high - low <= 1e-12 and (clicks == 0 or log.n == 1):
        why = "no weighted click to resample" if clicks == 0 else "one decision: every resample is that decision"
        warnings.append(f"degenerate interval: every resample gives the same value ({why}), which understates the "
                        "uncertainty; the Bernstein bound does not")
    if not 0.0 <= value <= top:
        warnings.append(f"the estimate {value:.4g} lies outside the possible range [0, {top:g}] clicks per slate "
                        "(too few decisions for importance weights to average out); the interval is clipped to it")
    return Estimate(estimator, variant, float(value), ctr, max(0.0, min(low, top)), max(0.0, min(high, top)),
                    log.n, ess, float(w.max(initial=0.0)), clicks, interval, warnings)


def ips(log: LoggedSlates, variant: str = "slot", **kwargs) -> Estimate:
    """Inverse propensity scoring (Horvitz & Thompson 1952); ``estimate(log, "ips", ...)``."""
    return estimate(log, "ips", variant, **kwargs)


def snips(log: LoggedSlates, variant: str = "slot", **kwargs) -> Estimate:
    """Self-normalised IPS (Swaminathan & Joachims 2015); ``estimate(log, "snips", ...)``."""
    return estimate(log, "snips", variant, **kwargs)


def dr(log: LoggedSlates, variant: str = "slot", **kwargs) -> Estimate:
    """Doubly robust (Dudik, Langford & Li 2011); ``estimate(log, "dr", ...)``. Needs
    ``log.rhat`` and ``log.target_rhat`` (ValueError otherwise)."""
    return estimate(log, "dr", variant, **kwargs)


# ----------------------------------------------------------------------------- warnings
def support_warnings(log: LoggedSlates, w: np.ndarray, ess: float, clicks: int) -> list[str]:
    """Plain-language reasons not to trust an estimate with weights ``w`` (n, k).

    * no logged item has target probability > 0 (nothing supports the target);
    * thin support: ESS below 5 % of the slates or below 100;
    * the target puts mass where the logging probability is 0: on slots where the logger
      was deterministic (probability 1) and the target is not, or when the mean per-slot
      weight (``pi / mu``, whose expectation is the target's mass inside the logger's
      support) is clearly below 1;
    * fewer than 30 clicks carry the estimate.
    """
    out = []
    n = log.n
    m = log.mask
    if not np.any(w > 0):
        out.append(f"no support: the target gives probability 0 to every one of the {int(m.sum())} logged "
                   "items, so the log says nothing about it (the estimate is not evidence of 0 clicks)")
        return out
    if ess < THIN_ESS_SHARE * n or ess < THIN_ESS:
        out.append(f"thin support: effective sample size {ess:.1f} of {n} slates (< 5 % or < {THIN_ESS}); "
                   "a few large weights decide the estimate and the interval")
    deterministic = int(np.sum(m & (log.logging >= 1.0) & (log.target < 1.0)))
    if deterministic:
        out.append(f"target puts mass where the logging probability is 0: on {deterministic} logged slots the "
                   "logger was deterministic (p = 1) and the target was not; no estimator here sees what the "
                   "target would have shown there")
    ratio = (log.target / log.logging)[m]
    if len(ratio) > 1:
        mean, se = float(ratio.mean()), float(ratio.std(ddof=1) / np.sqrt(len(ratio)))
        if mean + 2 * se < 0.95:
            out.append(f"target puts mass where the logging probability is 0: mean per-slot weight {mean:.3f} "
                       f"(+- {2 * se:.3f}; 1 when the logger covers the target), so about {1 - mean:.0%} of the "
                       "target's choices were never logged")
    if clicks < MIN_CLICKS:
        out.append(f"rests on {clicks} click{'' if clicks == 1 else 's'} (< {MIN_CLICKS}): the interval is wide "
                   "and its coverage approximate")
    return out


def estimate_all(log: LoggedSlates, estimators: tuple[str, ...] = ESTIMATORS,
                 variants: tuple[str, ...] = ("slot", "slate"),
                 **kwargs) -> list[Estimate]:
    """Every ``estimator`` x ``variant`` (DR skipped when the log has no ``rhat``);
    keyword arguments go to ``estimate``."""
    return [estimate(log, e, v, **kwargs) for e in estimators for v in variants
            if not (e == "dr" and log.rhat is None)]
