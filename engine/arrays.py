"""Growable contiguous numpy buffers for the serving mirrors (amortised O(1) append)."""

from __future__ import annotations

import numpy as np


def ensure_capacity(arr: np.ndarray, n: int, fill: float = 0.0) -> np.ndarray:
    """Return ``arr`` or a copy whose first axis holds at least ``n`` rows.

    Capacity doubles, so appending one row at a time costs amortised O(1). New rows are
    ``fill``. Callers must keep the returned array (the old one may be stale).
    """
    cap = arr.shape[0]
    if n <= cap:
        return arr
    new_cap = max(n, 2 * cap, 64)
    out = np.full((new_cap,) + arr.shape[1:], fill, dtype=arr.dtype)
    out[:cap] = arr
    return out
