"""Cooperative steps: long computations of the learning core written as generators that
yield between short units of work.

A *steps* generator does its work in pieces and yields ``None`` after each one (a piece is
well under a millisecond to ~2 ms at 100k items: one reservoir pair scored, a few thousand
rows of a Python loop, a few MB copied). It returns its result through ``StopIteration``
(``result = yield from steps`` inside another one). The core stays free of asyncio: the caller
decides what a yield means.

- ``run(steps)`` drives one to completion without pausing: in-process callers (simulators,
  tests, benchmarks) get the plain function they had.
- ``engine.roles.live_model.LiveModel`` drives the forgetting guard's validation under the
  learner's write lock and returns control to the event loop whenever a slice budget is
  spent, so requests keep being served while a validation runs.

Both run exactly the same code in the same order, so a result never depends on how it was
driven.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TypeVar

import numpy as np

T = TypeVar("T")
Steps = Generator[None, None, T]
"""A generator that yields ``None`` between pieces of work and returns a ``T``."""

ROWS_PER_STEP = 1024
"""Iterations of a per-row Python loop between two yields (~0.5-2 ms of simple Python)."""
BYTES_PER_STEP = 4 << 20
"""Bytes one copy step moves (~0.5-1 ms of memcpy)."""


def run(steps: Steps[T]) -> T:
    """Drive ``steps`` to completion without pausing; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def assign(dst: np.ndarray, src: np.ndarray, step_bytes: int = BYTES_PER_STEP) -> Steps[np.ndarray]:
    """``dst[:len(src)] = src`` in row blocks of about ``step_bytes``, yielding between them;
    returns ``dst``.

    Raises:
        ValueError: shapes that do not broadcast (as numpy assignment).
    """
    n = len(src)
    row_bytes = max(1, src.nbytes // max(1, n))
    block = max(1, step_bytes // row_bytes)
    for start in range(0, n, block):
        end = min(n, start + block)
        dst[start:end] = src[start:end]
        if end < n:
            yield
    return dst


def copy(src: np.ndarray, step_bytes: int = BYTES_PER_STEP) -> Steps[np.ndarray]:
    """A copy of ``src`` made in blocks (``assign``); returns it."""
    out = np.empty_like(src)
    if src.ndim == 0:
        out[()] = src
        return out
    return (yield from assign(out, src, step_bytes))
