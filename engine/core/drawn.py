"""A drawn slate (``engine.core.slates.draw``, ``engine.core.ruled_slates.draw``): the rows
and, per slot, the score, the propensity and whether the slot explored or holds a promoted
item. Its own module so both drawing paths share it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Drawn:
    """A drawn slate: catalogue rows best slot first, their scores, per-slot propensities
    (given the slots above), whether each slot explored (did not hold the greedy choice of
    the remaining items), and whether it holds a promoted item (None: no promotions)."""

    rows: np.ndarray
    scores: np.ndarray
    propensities: np.ndarray
    explored: np.ndarray
    promoted: np.ndarray | None = None
