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
* **alpha spent by information** (the alpha-spending approach of Lan & DeMets 1983,
  "Discrete sequential boundaries for clinical trials", Biometrika): the check made after
  ``n`` decisions of this champion, the previous one after ``m``, tests at

  .. math:: \\alpha_{m \\to n} = f(n) - f(m), \\qquad f(n) = \\alpha \\, \\frac{n}{n + N},

  with ``N`` the evaluation window (half of ``alpha`` is spent once a window's worth of
  decisions has been seen, all of it only in the limit). The levels of all checks sum to
  ``f(last) < alpha`` whatever the schedule, so by the union bound the chance that *any*
  check of one champion promotes a challenger that is no better than it is below
  ``alpha`` (approximately, as bootstrap bounds are). Early checks, on few decisions and a
  champion still learning, get little of it: that is where the marginal rule failed.
  Spending by check count instead (``alpha * 6 / (pi^2 k^2)`` at the ``k``-th check, the
  Bonferroni form) was measured too: it spends 61 % of ``alpha`` on the first check and
  promoted the truly better challenger in 6 of 10 seeds within 24,000 slates against this
  schedule's figures in docs/BENCHMARKS.md. ``spending="none"`` tests every check at
  ``alpha``: the marginal rule's speed, and its false promotions. Time-uniform confidence
  sequences (Howard, Ramdas, McAuliffe & Sekhon 2021, Annals of Statistics) are another
  valid way to look as often as one likes.

Example:
    >>> round(spent_alpha(0.05, 0, 2_000, 20_000), 5), round(spent_alpha(0.05, 14_000, 15_000, 20_000), 5)
    (0.00455, 0.00084)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from engine.core.ope import LoggedSlates, resampled_sums, statistic, terms


SPENDING = ("information", "none")
_TAIL = 0.05  # the bootstrap quantile the lower tail's scale is read from when the level is beyond the resamples


def spent_alpha(alpha: float, before: int, now: int, scale: int, spending: str = "information") -> float:
    """The level of a check made after ``now`` decisions of this champion when its previous
    check was made after ``before`` (0: the first): ``f(now) - f(before)`` with ``f(n) =
    alpha * n / (n + scale)`` under ``"information"`` (0 when no decision was added),
    ``alpha`` under ``"none"``.

    Raises:
        ValueError: ``alpha`` outside (0, 1), ``before`` outside [0, ``now``], ``scale < 1``
            or an unknown ``spending``.
    """
    if not 0 < alpha < 1 or not 0 <= before <= now or scale < 1:
        raise ValueError("alpha must be in (0, 1), 0 <= before <= now and scale >= 1")
    if spending not in SPENDING:
        raise ValueError(f"spending must be one of {SPENDING}, not {spending!r}")
    if spending == "none":
        return alpha
    return alpha * (now / (now + scale) - before / (before + scale))


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
        alpha: the level of this check (``spent_alpha``).
        low: one-sided lower confidence bound at level ``alpha``: the paired bootstrap's
            ``alpha`` quantile (``lower_quantile``).
        n: slates used.
    """

    difference: float
    se: float
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


def improvement(log: LoggedSlates, level: float, estimator: str = "snips", variant: str = "slot",
                resamples: int = 2000, seed: int = 0) -> Improvement:
    """Test whether the target policy of ``log`` (the challenger) beats its logging policy
    (the champion, whose value on these slates is their mean clicks) at ``level``.

    Args:
        log: (n, k) logged slates with the challenger's probabilities as ``target``.
        level: the one-sided level of this check, in (0, 1) (``spent_alpha``).
        estimator, variant: the challenger's estimate (``engine.core.ope.terms``).
        resamples, seed: the paired bootstrap (``engine.core.ope.resampled_sums``), >= 2.

    Returns:
        an ``Improvement``; deterministic given its arguments.

    Raises:
        ValueError: an empty log, ``level`` outside (0, 1), ``resamples < 2``, or what
            ``engine.core.ope.terms`` raises.
    """
    if log.n == 0:
        raise ValueError("no logged slates")
    if not 0 < level < 1 or resamples < 2:
        raise ValueError("the paired test needs a level in (0, 1) and resamples >= 2")
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
    return Improvement(difference, float(np.std(boot, ddof=1)), level, lower_quantile(boot, level), n)
