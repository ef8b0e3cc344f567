"""A bank of decayed popularity counters: what is trending at several time scales at once.

Each column c is an exponentially decayed count of every item's positives,
``n_c(i, now) = sum_j w_j * 2 ** (-(clock_c(now) - clock_c(t_j)) / h_c)``, in one of two
clocks: *time* (event time, seconds) or *events* (the number of positives seen so far, so
the column means the same whatever the stream's time unit or rate), plus an all-time column
(no decay). The ranker (``engine.core.ranker``) learns how much each column counts on the
deployment's own stream, instead of one half-life fitted to one dataset.

Storage: ``counts`` (n_items, columns) float64 relative to a per-column reference clock, so
an update touches one row; ``total`` (columns,) the decayed mass of all items in the same
reference. Shares ``counts / total`` need no decay at read time (both decay alike).
"""

from __future__ import annotations

import math

import numpy as np

from engine.core.arrays import ensure_capacity

_REBASE_EXPONENT = 300.0  # rebase before exp() can overflow float64 (limit ~709)
TIME, EVENTS = "time", "events"


class PopularityBank:
    """Decayed positive counts per item in several clocks and half-lives.

    Each column also keeps its *head*, the ``head_size`` items with the most decayed
    positives, maintained exactly as counts change: decay scales every item of a column
    alike, so the order only changes when an item is counted, and then only that item can
    enter the head (replacing the head's smallest). Reading a head costs nothing; keeping it
    costs a comparison per column per positive.

    Args:
        half_lives_s: half-lives of the time-clock columns, seconds of event time.
        half_lives_events: half-lives of the event-clock columns, in positives.
        all_time: add a column that never decays.
        head_size: items kept in each column's head (the trending candidates).

    Column order: time columns, event columns, then all-time (``names``).
    """

    def __init__(self, half_lives_s: tuple[float, ...] = (), half_lives_events: tuple[float, ...] = (),
                 all_time: bool = True, head_size: int = 64) -> None:
        if any(h <= 0 for h in (*half_lives_s, *half_lives_events)):
            raise ValueError("half-lives must be > 0")
        self.half_lives_s = tuple(float(h) for h in half_lives_s)
        self.half_lives_events = tuple(float(h) for h in half_lives_events)
        self.all_time = all_time
        rates = [math.log(2.0) / h for h in self.half_lives_s] + [math.log(2.0) / h for h in self.half_lives_events]
        if all_time:
            rates.append(0.0)
        self.rates = np.array(rates)
        self.is_time = np.array([True] * len(self.half_lives_s) + [False] * (len(rates) - len(self.half_lives_s)))
        self.names = column_names(self.half_lives_s, self.half_lives_events, all_time)
        c = len(rates)
        self.head_size = head_size
        self.heads = np.full((c, head_size), -1, dtype=np.int64)  # item per slot, -1 = empty
        self.head_fill = np.zeros(c, dtype=np.int64)
        self._head_items: np.ndarray | None = None  # head_items(), until a head changes
        self.in_head = np.zeros((0, c), dtype=bool)
        self.counts = np.zeros((0, c))
        self.total = np.zeros(c)
        self.ref = np.zeros(c)  # per column: the clock value counts are relative to
        self.started = False
        self.events = 0  # positives counted so far (the event clock)
        self.n = 0

    @property
    def columns(self) -> int:
        return len(self.rates)

    def grow(self, n: int) -> None:
        """Make room for ``n`` items (new items have zero counts)."""
        if n > self.n:
            self.counts = ensure_capacity(self.counts, n)
            self.in_head = ensure_capacity(self.in_head, n, False)
            self.n = n

    def clocks(self, t: float) -> np.ndarray:
        """Each column's clock at event time ``t`` and the current event count."""
        return np.where(self.is_time, t, float(self.events))

    def add(self, idx: int, t: float, weight: float = 1.0) -> None:
        """Count ``weight`` positives on item ``idx`` at event time ``t`` (unix s); the event
        clock advances by one."""
        self.grow(idx + 1)
        self.events += 1
        clock = self.clocks(t)
        if not self.started:
            self.ref = clock.copy()
            self.started = True
        exponent = self.rates * (clock - self.ref)
        if exponent.max() > _REBASE_EXPONENT:
            self._rebase(clock)
            exponent = self.rates * (clock - self.ref)
        inc = weight * np.exp(exponent)
        self.counts[idx] += inc
        self.total += inc
        self._enter_heads(idx)

    def _enter_heads(self, idx: int) -> None:
        """Put ``idx`` into every column head it now belongs to (see the class docstring):
        in a full head it replaces the smallest member (the first on ties) when it now has
        more; all full columns at once."""
        outside = np.flatnonzero(~self.in_head[idx])
        if not len(outside):
            return
        m = self.head_size
        filling = self.head_fill[outside] < m
        if filling.any():
            self._head_items = None
        for c in outside[filling].tolist():  # a head still filling up (the stream's first items)
            self.heads[c, self.head_fill[c]] = idx
            self.head_fill[c] += 1
            self.in_head[idx, c] = True
        full = outside[~filling]
        if not len(full):
            return
        members = self.heads[full]  # (columns, m)
        vals = self.counts[members, full[:, None]]
        slot = vals.argmin(axis=1)
        enter = vals[np.arange(len(full)), slot] < self.counts[idx, full]
        if enter.any():
            cols, slot = full[enter], slot[enter]
            self._head_items = None
            self.in_head[members[enter, slot], cols] = False
            self.heads[cols, slot] = idx
            self.in_head[idx, cols] = True

    def log_shares(self, idx: np.ndarray, t: float) -> np.ndarray:
        """``log`` of each item's share of the decayed positives, per column, with half a
        positive of additive smoothing (so an item never clicked is half a click below one
        clicked once, at every scale): shape (len(idx), columns)."""
        if not self.started:
            return np.zeros((len(idx), self.columns))
        unit = np.exp(np.clip(self.rates * (self.clocks(t) - self.ref), None, 700.0))  # one positive now
        return np.log(self.counts[idx] + 0.5 * unit) - np.log(self.total + 0.5 * unit)

    def head_items(self) -> np.ndarray:
        """Every item in any column's head (sorted, unique): the trending candidates. Kept
        until a head changes; callers must not modify it."""
        if self._head_items is None:
            self._head_items = np.unique(self.heads[self.heads >= 0])
        return self._head_items

    def _rebase(self, clock: np.ndarray) -> None:
        factor = np.exp(-self.rates * (clock - self.ref))
        self.counts[: self.n] *= factor
        self.total *= factor
        self.ref = clock.copy()

    # ------------------------------------------------------------------ snapshots
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays (views of the live ones) and JSON metadata for a snapshot."""
        return ({"pop_counts": self.counts[: self.n], "pop_total": self.total, "pop_ref": self.ref,
                 "pop_heads": self.heads, "pop_head_fill": self.head_fill},
                {"started": self.started, "events": self.events})

    def load(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Restore from ``state()`` output."""
        counts = arrays["pop_counts"]
        self.n = 0
        self.counts = np.zeros((0, self.columns))
        self.grow(len(counts))
        self.counts[: len(counts)] = counts
        self.total = arrays["pop_total"].copy()
        self.ref = arrays["pop_ref"].copy()
        self.heads = arrays["pop_heads"].copy()
        self._head_items = None
        self.head_fill = arrays["pop_head_fill"].copy()
        self.in_head = np.zeros((0, self.columns), dtype=bool)
        self.in_head = ensure_capacity(self.in_head, self.n, False)
        for c in range(self.columns):
            members = self.heads[c][self.heads[c] >= 0]
            self.in_head[members, c] = True
        self.started = meta["started"]
        self.events = meta["events"]


def column_names(half_lives_s, half_lives_events, all_time: bool = True) -> list[str]:
    """Feature names of a bank's columns: ``pop_1h``, ``pop_256ev``, ``pop_all``, ..."""
    return ([f"pop_{_fmt_s(float(h))}" for h in half_lives_s] + [f"pop_{int(h)}ev" for h in half_lives_events]
            + (["pop_all"] if all_time else []))


def _fmt_s(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
