"""Reward models for the doubly robust estimator (``engine.core.ope``), fitted on a slate log:
the position-based click model (``fit_position_based``) and the logging ranker's score
calibrated per slot (``fit_calibrated_score``, below).

**The position-based model (PBM)**, fitted by EM, knows an item's appeal apart from the slot
it was shown in.

A click on item ``i`` shown in slot ``j`` needs the slot examined and the item attractive,
independently:

.. math::

    P(c = 1 \\mid i, j) = \\theta_j \\, \\gamma_i

(Craswell et al., WSDM 2008; Chuklin, Markov and de Rijke, *Click Models for Web Search*,
2015, ch. 3). Both are latent; EM alternates the posteriors of "examined" and "attractive"
for every logged (item, slot) pair, ``P(E = 1 | c = 0) = theta (1 - gamma) / (1 - theta
gamma)`` and ``P(A = 1 | c = 0) = (1 - theta) gamma / (1 - theta gamma)`` (both 1 after a
click), with their means per slot and per item (Wang et al., "Position Bias Estimation for
Unbiased Learning to Rank in Personal Search", WSDM 2018). Each item's appeal gets a Beta
prior centred on the mean appeal (``prior_strength`` pseudo-impressions), so an item seen
rarely, or never, is predicted near the average rather than at 0 or 1.

Why the doubly robust estimator wants it: a log from an epsilon-greedy logger shows its top
items almost only in the top slots, so inverse propensity weights cannot see a target that
puts them lower. The PBM learns an item's appeal where it was shown and each slot's
examination from every item, and predicts the pairs the log (almost) never holds; the DR
term ``w (r - rhat) + E_target[rhat]`` corrects it wherever the log has support.

Example::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> items, slots = rng.integers(0, 20, 50_000), rng.integers(0, 5, 50_000)
    >>> theta, gamma = np.array([1.0, 0.6, 0.4, 0.3, 0.2]), np.linspace(0.05, 0.5, 20)
    >>> clicks = rng.random(50_000) < theta[slots] * gamma[items]
    >>> pbm = fit_position_based(items, slots, clicks, n_items=20, n_slots=5)
    >>> bool(np.abs(pbm.predict(items, slots) - theta[slots] * gamma[items]).max() < 0.03)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PositionBased:
    """A fitted PBM.

    Attributes:
        examination: ``theta`` (n_slots,), the probability that each slot is examined
            (identified up to a common factor shared with ``appeal``: only the products
            are predictions).
        appeal: ``gamma`` (n_items,), each item's probability of a click once examined.
    """

    examination: np.ndarray
    appeal: np.ndarray

    def predict(self, items: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Click probabilities of ``items`` shown in ``slots`` (int arrays of one shape)."""
        return self.examination[slots] * self.appeal[items]

    def slate(self, items: np.ndarray) -> np.ndarray:
        """Click probability of each slot of slates ``items`` (n, k) (int; slot j = column
        j): (n, k)."""
        return self.examination[None, : items.shape[1]] * self.appeal[items]

    def mean_appeal(self, pools: list[np.ndarray]) -> np.ndarray:
        """Mean appeal of each pool of items (a uniform target's expected appeal at any
        slot): (len(pools),)."""
        return np.array([float(self.appeal[p].mean()) if len(p) else 0.0 for p in pools])


def fit_position_based(items: np.ndarray, slots: np.ndarray, clicks: np.ndarray, n_items: int, n_slots: int,
                       iterations: int = 50, prior_strength: float = 2.0,
                       examination: np.ndarray | None = None) -> PositionBased:
    """Fit a PBM by EM on logged impressions.

    Args:
        items: (m,) int item ids in ``0..n_items-1``, one per logged impression.
        slots: (m,) int slots in ``0..n_slots-1`` (0 = top).
        clicks: (m,) bool or 0/1, whether the impression was clicked.
        n_items, n_slots: sizes of the id spaces (items never logged get the prior mean).
        iterations: EM steps (each is a few vectorised passes over the m impressions).
        prior_strength: pseudo-impressions of each item's Beta prior, centred on the mean
            appeal of the current step.
        examination: optional (n_slots,) ``theta`` held fixed (for example harvested from
            the log, ``engine.core.position_bias``): then only the appeals are fitted.

    Raises:
        ValueError: arrays of different lengths, ids out of range, no impression, or an
            ``examination`` not of shape (n_slots,) or outside [0, 1].
    """
    items, slots = np.asarray(items, dtype=np.int64), np.asarray(slots, dtype=np.int64)
    c = np.asarray(clicks, dtype=np.float64)
    if not (len(items) == len(slots) == len(c)):
        raise ValueError("items, slots and clicks must have the same length")
    if not len(items):
        raise ValueError("no impression to fit")
    if items.min() < 0 or items.max() >= n_items or slots.min() < 0 or slots.max() >= n_slots:
        raise ValueError("an item or slot id is out of range")
    shown_at = np.bincount(slots, minlength=n_slots).astype(np.float64)
    shown = np.bincount(items, minlength=n_items).astype(np.float64)
    fixed = examination is not None
    if fixed:
        theta = np.asarray(examination, dtype=np.float64)
        if theta.shape != (n_slots,) or not np.all((theta >= 0) & (theta <= 1)):
            raise ValueError(f"examination must be (n_slots,) = ({n_slots},) in [0, 1]")
    else:
        theta = np.full(n_slots, 0.5)
    gamma = np.full(n_items, min(0.5, 2.0 * c.mean() + 1e-6))
    clicked = c > 0
    for _ in range(iterations):
        t, g = theta[slots], gamma[items]
        miss = np.maximum(1.0 - t * g, 1e-12)
        examined = np.where(clicked, 1.0, t * (1.0 - g) / miss)
        attractive = np.where(clicked, 1.0, (1.0 - t) * g / miss)
        if not fixed:
            theta = np.divide(np.bincount(slots, examined, n_slots), shown_at, out=np.full(n_slots, 0.5),
                              where=shown_at > 0)
        mean = float(attractive.mean())
        gamma = (np.bincount(items, attractive, n_items) + prior_strength * mean) / (shown + prior_strength)
    return PositionBased(np.clip(theta, 0.0, 1.0), np.clip(gamma, 0.0, 1.0))


@dataclass(frozen=True)
class CalibratedScore:
    """A ranker's score calibrated into per-slot click probabilities,
    ``P(c = 1 | u, i, j) = sigmoid(alpha_j + beta * s_ui)``: a reward model that is personal
    (the score ``s_ui`` carries what the ranker knows of the user) and whose slot terms are
    estimated *given* the score, so they do not absorb the drop in relevance down a ranked
    slate the way a position-only or item-only model fitted on a ranked log does (Platt
    scaling, 1999, with one intercept per slot).

    Attributes:
        intercepts: ``alpha`` (n_slots,).
        slope: ``beta``.
    """

    intercepts: np.ndarray
    slope: float

    def predict(self, scores: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Click probabilities for ranker ``scores`` shown in ``slots`` (broadcastable)."""
        z = self.intercepts[slots] + self.slope * np.asarray(scores, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-z))


def fit_calibrated_score(scores: np.ndarray, slots: np.ndarray, clicks: np.ndarray, n_slots: int,
                         iterations: int = 25, l2: float = 1e-6) -> CalibratedScore:
    """Logistic regression of clicks on one-hot slots and the ranker's score, by Newton's
    method (IRLS; ``n_slots + 1`` parameters, so each step is one pass over the m
    impressions and an (n_slots + 1)-square solve).

    Args:
        scores: (m,) the ranker's score of each logged impression's item for its user.
        slots: (m,) int slots in ``0..n_slots-1``.
        clicks: (m,) bool or 0/1.
        l2: ridge on every parameter (keeps the solve defined when a slot has no click).

    Raises:
        ValueError: arrays of different lengths, slots out of range, or no impression.
    """
    s = np.asarray(scores, dtype=np.float64)
    slots = np.asarray(slots, dtype=np.int64)
    y = np.asarray(clicks, dtype=np.float64)
    if not (len(s) == len(slots) == len(y)):
        raise ValueError("scores, slots and clicks must have the same length")
    if not len(s):
        raise ValueError("no impression to fit")
    if slots.min() < 0 or slots.max() >= n_slots:
        raise ValueError("a slot id is out of range")
    centre, spread = float(s.mean()), float(s.std()) or 1.0
    z = (s - centre) / spread  # standardised, so one ridge suits both kinds of parameter
    theta = np.zeros(n_slots + 1)
    rate = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
    theta[:n_slots] = np.log(rate / (1 - rate))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(theta[slots] + theta[-1] * z)))
        r, wgt = y - p, p * (1.0 - p)
        grad = np.concatenate([np.bincount(slots, r, n_slots), [r @ z]]) - l2 * theta
        h = np.zeros((n_slots + 1, n_slots + 1))
        h[np.arange(n_slots), np.arange(n_slots)] = np.bincount(slots, wgt, n_slots)
        h[-1, :n_slots] = h[:n_slots, -1] = np.bincount(slots, wgt * z, n_slots)
        h[-1, -1] = wgt @ (z * z)
        h += l2 * np.eye(n_slots + 1)
        step = np.linalg.solve(h, grad)
        theta += step
        if np.abs(step).max() < 1e-10:
            break
    slope = theta[-1] / spread
    return CalibratedScore(theta[:n_slots] - slope * centre, float(slope))
