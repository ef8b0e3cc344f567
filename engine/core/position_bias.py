"""Position bias (the examination probability of each slot) estimated by intervention
harvesting: from the same (context, item) pairs shown in different slots of a log.

Under the position-based click model a click on item ``a`` for context ``x`` (a user) in
slot ``j`` has probability ``theta_j * gamma(x, a)``. When the appeal ``gamma`` is personal
(it depends on the user, not only on the item), an EM that fits one appeal per *item*
(``engine.core.click_model.fit_position_based``) confounds the slots with relevance: a
ranked log shows each user's best items in the top slots, so the top slots look examined
more than they are and ``theta`` falls too steeply down the slate (measured on the
synthetic world: slot 10 at 0.15 of slot 1 against the world's 0.29).

Intervention harvesting (Agarwal, Zaitsev, Wang, Li, Najork & Joachims 2019, "Estimating
position bias without intrusive interventions", WSDM) needs no click model of relevance:
for two slots ``j`` and ``l``, take the pairs ``(x, a)`` that the log shows in both (an
exploring logger, or several rankers, moves them around). For each such pair
``E[clicks in l / shows in l] = theta_l gamma(x, a)`` and the same in ``j``, so with any
pair weights ``h`` that do not look at the clicks

.. math::

    \\frac{\\sum_{(x,a)} h_{xa} \\, \\hat c_l(x, a)}{\\sum_{(x,a)} h_{xa} \\, \\hat c_j(x, a)}
    \\to \\frac{\\theta_l}{\\theta_j}

whatever the appeals. Here ``h = n_j n_l / (n_j + n_l)`` (the harmonic share of the pair's
shows in the two slots, which keeps a pair shown once in one slot from counting like one
shown a thousand times), and the log-ratios of all slot pairs are combined by weighted least
squares (weight: the harmonic mean of the two weighted click sums, about the inverse
variance of a log-ratio), with ``log theta_0 = 0``. This is the estimator's all-pairs form
with a closed-form solve instead of their extremum estimator.

Example::

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> m, n_pairs = 200_000, 2_000
    >>> keys, slots = rng.integers(0, n_pairs, m), rng.integers(0, 4, m)
    >>> theta, gamma = np.array([1.0, 0.7, 0.5, 0.4]), rng.uniform(0.05, 0.6, n_pairs)
    >>> clicks = rng.random(m) < theta[slots] * gamma[keys]
    >>> bool(np.abs(harvest_examination(keys, slots, clicks, 4).examination - theta).max() < 0.03)
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HarvestedBias:
    """Relative examination of each slot harvested from a log.

    Attributes:
        examination: ``theta`` (n_slots,), relative to slot 0 (``theta[0] == 1``).
        pairs: (n_slots, n_slots) int, the number of (context, item) pairs shown in both
            slots ``j`` and ``l`` (symmetric; the evidence behind each ratio).
    """

    examination: np.ndarray
    pairs: np.ndarray


def harvest_examination(keys: np.ndarray, slots: np.ndarray, clicks: np.ndarray, n_slots: int) -> HarvestedBias:
    """Estimate each slot's examination relative to slot 0 (module docstring).

    Args:
        keys: (m,) int, the (context, item) pair of each logged impression (for example
            ``user_row * n_items + item_row``; any ints, only equality matters).
        slots: (m,) int slots in ``0..n_slots-1`` (0 = top).
        clicks: (m,) bool or 0/1.
        n_slots: number of slots.

    Cost: one ``np.unique`` over the m impressions and ``O(P * n_slots^2)`` for P distinct
    pairs; memory two (P, n_slots) float arrays.

    Raises:
        ValueError: arrays of different lengths, a slot out of range, no impression, or a
            slot that no pair shown with a click links to slot 0 (its examination is not
            identified by this log: the logger never moves items into or out of it).
    """
    keys = np.asarray(keys, dtype=np.int64)
    slots = np.asarray(slots, dtype=np.int64)
    c = np.asarray(clicks, dtype=np.float64)
    if not (len(keys) == len(slots) == len(c)):
        raise ValueError("keys, slots and clicks must have the same length")
    if not len(keys):
        raise ValueError("no impression to harvest from")
    if slots.min() < 0 or slots.max() >= n_slots:
        raise ValueError("a slot id is out of range")
    _, pair = np.unique(keys, return_inverse=True)
    n_pairs = int(pair.max()) + 1
    cell = pair * n_slots + slots
    shows = np.bincount(cell, minlength=n_pairs * n_slots).reshape(n_pairs, n_slots).astype(np.float64)
    hits = np.bincount(cell, c, minlength=n_pairs * n_slots).reshape(n_pairs, n_slots)
    ctr = np.divide(hits, shows, out=np.zeros_like(hits), where=shows > 0)
    rows, rhs, weights = [], [], []
    counts = np.zeros((n_slots, n_slots), dtype=np.int64)
    for j in range(n_slots):
        for l in range(j + 1, n_slots):
            both = (shows[:, j] > 0) & (shows[:, l] > 0)
            counts[j, l] = counts[l, j] = int(both.sum())
            if not counts[j, l]:
                continue
            nj, nl = shows[both, j], shows[both, l]
            h = nj * nl / (nj + nl)
            cj, cl = float(h @ ctr[both, j]), float(h @ ctr[both, l])
            if cj <= 0 or cl <= 0:
                continue
            row = np.zeros(n_slots)
            row[l], row[j] = 1.0, -1.0
            rows.append(row)
            rhs.append(np.log(cl / cj))
            weights.append(cj * cl / (cj + cl))
    linked = np.zeros(n_slots, dtype=bool)
    linked[0] = True
    edges = [(int(np.flatnonzero(r > 0)[0]), int(np.flatnonzero(r < 0)[0])) for r in rows]
    changed = True
    while changed:  # slots reachable from slot 0 through ratios with clicks on both sides
        changed = False
        for a, b in edges:
            if linked[a] != linked[b]:
                linked[a] = linked[b] = changed = True
    if not linked.all():
        raise ValueError(f"slots {np.flatnonzero(~linked).tolist()} share no clicked (context, item) pair with "
                         "slot 0's chain: their examination is not identified by this log")
    a = np.vstack(rows + [np.eye(n_slots)[0]])
    b = np.append(rhs, 0.0)
    sw = np.sqrt(np.append(weights, max(weights, default=1.0) * 1e3))  # pins log theta_0 = 0
    log_theta = np.linalg.lstsq(a * sw[:, None], b * sw, rcond=None)[0]
    theta = np.exp(log_theta - log_theta[0])
    return HarvestedBias(theta, counts)
