"""Is the challenger better than the champion? A paired, one-sided test on the champion's
own logged slates that stays valid when it is repeated.

Personalizer's promotion rule (the challenger's estimate higher and the lower bound of its
95 % interval above the champion's lower bound) compares two marginal intervals. When they
are about as wide it promotes whenever the challenger's point estimate is higher, and a rule
re-applied every ``check_every`` decisions gets many chances: measured in
``simulators.challenger_experiment``, a truly worse challenger was promoted in 1 of 10 seeds,
on an estimate whose per-slot effective sample size was 13. The arena
(``engine.core.champion``) therefore also requires this test:

* **paired**: the champion's on-policy clicks per slate and the challenger's off-policy
  estimate (SNIPS or IPS, ``engine.core.ope``) on the *same* slates, resampled together, so
  the clicks both policies account for cancel in the difference (the bootstrap of a
  difference, Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 6);
* **one-sided**: the ``alpha_k`` quantile of the paired bootstrap of the difference must be
  above 0 (``lower_quantile``: the empirical quantile while enough resamples lie below it,
  else extrapolated from the lower tail with a normal; the bootstrap of an off-policy
  estimate is skewed to the right, so a symmetric standard error would overstate the risk);
* **alpha spent over the checks**: the ``k``-th check of one champion (1-based) tests at

  .. math:: \\alpha_k = \\alpha \\cdot \\frac{6}{\\pi^2 k^2}, \\qquad \\sum_{k \\ge 1} \\alpha_k = \\alpha,

  so, by the union bound, the chance that *any* check of one champion promotes a
  challenger that is no better than it is at most ``alpha`` (approximately, as bootstrap
  bounds are). ``spending="none"`` tests every check at ``alpha`` instead: faster to
  promote a better challenger, with no bound on the rate over many checks. This is the Bonferroni form of alpha spending (Lan & DeMets 1983, "Discrete
  sequential boundaries for clinical trials", Biometrika); time-uniform confidence
  sequences (Howard, Ramdas, McAuliffe & Sekhon 2021, Annals of Statistics) are tighter
  and would promote a better challenger sooner.

Example:
    >>> round(spent_alpha(0.05, 1), 4), round(spent_alpha(0.05, 10), 6)
    (0.0304, 0.000304)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from engine.core.ope import LoggedSlates, resampled_sums, statistic, terms


SPENDING = ("bonferroni", "none")
_TAIL = 0.05  # the bootstrap quantile the lower tail's scale is read from when the level is beyond the resamples


def spent_alpha(alpha: float, look: int, spending: str = "bonferroni") -> float:
    """The level of the ``look``-th check (1-based): ``alpha * 6 / (pi^2 look^2)`` under
    ``"bonferroni"`` (the levels of all checks sum to ``alpha``), ``alpha`` itself under
    ``"none"`` (each check on its own: repeated checks raise the chance of a false promotion).

    Raises:
        ValueError: ``alpha`` outside (0, 1), ``look < 1`` or an unknown ``spending``.
    """
    if not 0 < alpha < 1 or look < 1:
        raise ValueError("alpha must be in (0, 1) and look >= 1")
    if spending not in SPENDING:
        raise ValueError(f"spending must be one of {SPENDING}, not {spending!r}")
    return alpha * 6.0 / (math.pi ** 2 * look ** 2) if spending == "bonferroni" else alpha


def lower_quantile(values: np.ndarray, level: float) -> float:
    """The ``level`` quantile of bootstrap ``values`` (1-D): the empirical one while at least
    20 resamples lie below it; beyond that, extrapolated with a normal lower tail whose scale
    is read from the resamples, ``median - z_{1 - level} * (median - q_{0.05}) / z_{0.95}``
    (the lower tail only: an off-policy estimate's bootstrap is skewed to the right by the
    rare large weights, so a symmetric standard error overstates the risk below).

    Raises:
        ValueError: no values or ``level`` outside (0, 1).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not 0 < level < 1:
        raise ValueError("lower_quantile needs values and a level in (0, 1)")
    if level * v.size >= 20:
        return float(np.quantile(v, level))
    median, tail = np.quantile(v, [0.5, _TAIL])
    z = NormalDist().inv_cdf
    return float(median - z(1.0 - level) * (median - tail) / z(1.0 - _TAIL))


@dataclass
class Improvement:
    """The challenger's estimated gain over the champion on the same logged slates.

    Attributes:
        difference: challenger's estimate minus the champion's on-policy value, clicks per slate.
        se: bootstrap standard error of ``difference``.
        look: which check of this champion it is (1-based).
        alpha: the level spent on this check (``spent_alpha``).
        low: one-sided lower confidence bound at level ``alpha``: the paired bootstrap's
            ``alpha`` quantile (``lower_quantile``).
        n: slates used.
    """

    difference: float
    se: float
    look: int
    alpha: float
    low: float
    n: int

    @property
    def significant(self) -> bool:
        """True when the lower bound is above 0: the challenger is better at this level."""
        return self.low > 0.0

    def to_dict(self) -> dict:
        """JSON-able dict, with ``significant``."""
        return {**asdict(self), "significant": self.significant}


def improvement(log: LoggedSlates, look: int, alpha: float = 0.05, estimator: str = "snips",
                variant: str = "slot", spending: str = "bonferroni", resamples: int = 2000,
                seed: int = 0) -> Improvement:
    """Test whether the target policy of ``log`` (the challenger) beats its logging policy
    (the champion, whose value on these slates is their mean clicks).

    Args:
        log: (n, k) logged slates with the challenger's probabilities as ``target``.
        look: the check's number since this champion started serving (1-based).
        alpha: the false-promotion rate (over all of the champion's checks with
            ``"bonferroni"`` spending, per check with ``"none"``).
        estimator, variant: the challenger's estimate (``engine.core.ope.terms``).
        spending: ``"bonferroni"`` or ``"none"`` (``spent_alpha``).
        resamples, seed: the paired bootstrap (``engine.core.ope.resampled_sums``), >= 2.

    Returns:
        an ``Improvement``; deterministic given its arguments.

    Raises:
        ValueError: an empty log, ``resamples < 2``, or what ``spent_alpha`` or
            ``engine.core.ope.terms`` raise.
    """
    if log.n == 0:
        raise ValueError("no logged slates")
    if resamples < 2:
        raise ValueError("the paired bootstrap needs resamples >= 2")
    level = spent_alpha(alpha, look, spending)
    C, D, _ = terms(log, estimator, variant)
    M = log.mask.astype(np.float64)
    clicks = (log.rewards * M).sum(axis=1, keepdims=True)  # the champion's on-policy value per slate
    n, k = C.shape

    def gain(sums: np.ndarray) -> np.ndarray:
        value = statistic(sums[..., :k], sums[..., k:2 * k], sums[..., 2 * k:3 * k] / n)[0]
        if estimator != "snips":
            value = sums[..., :k].sum(axis=-1) / n
        return value - sums[..., 3 * k] / n

    X = np.hstack([C, D, M, clicks])
    difference = float(gain(X.sum(axis=0)))
    boot = gain(resampled_sums(X, resamples, seed))
    return Improvement(difference, float(np.std(boot, ddof=1)), look, level, lower_quantile(boot, level), n)
