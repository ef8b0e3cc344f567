"""Rolling latency percentiles (feedback -> learned freshness, in ms)."""

from __future__ import annotations

import numpy as np


class LatencyWindow:
    """Keeps the last ``size`` samples (ms) in a ring buffer and reports percentiles."""

    def __init__(self, size: int = 100_000) -> None:
        self.samples = np.zeros(size)
        self.count = 0

    def add(self, ms: float) -> None:
        self.samples[self.count % self.samples.size] = ms
        self.count += 1

    def percentiles(self) -> dict[str, float | None]:
        """``{"p50", "p99"}`` in ms over the window, None when empty."""
        n = min(self.count, self.samples.size)
        if n == 0:
            return {"p50": None, "p99": None}
        p50, p99 = np.percentile(self.samples[:n], [50, 99])
        return {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}
