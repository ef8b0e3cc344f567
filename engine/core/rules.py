"""A request's business rules (filters, diversity cap, promotions) as one value, and their
compiled form: masks and tag ids resolved against one model's catalogue.

``Rules`` is what the API builds from a ``POST /recommend`` body; ``Rules.compile(catalogue)``
checks every name against the catalogue (``UnknownName`` for an unknown tag or field, the
API's 422) and builds the masks once per request. ``engine.core.ruled_slates`` fills a slate
under the compiled rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.core.diversity import CapSpec, Diversity, TagCap
from engine.core.filters import Filters
from engine.core.promotions import Promotion


@dataclass(frozen=True)
class Rules:
    """Filters, a diversity cap and promotions for one request (each optional)."""

    filters: Filters | None = None
    diversity: Diversity | None = None
    promotions: tuple[Promotion, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        """Whether any rule is set (without any, serving takes the unconstrained path)."""
        return bool((self.filters is not None and self.filters.active) or self.diversity is not None
                    or self.promotions)

    def compile(self, catalogue) -> "CompiledRules":
        """Masks over ``catalogue``'s rows and the cap's tag ids.

        Raises:
            UnknownName: a tag or field no item was ever PUT with (its location in the
                request body).
        """
        n = len(catalogue)
        attrs = catalogue.attributes
        eligible = self.filters.mask(attrs, n) if self.filters is not None and self.filters.active else None
        cap = self.diversity.compile(attrs) if self.diversity is not None else None
        promos = [(p.mask(catalogue, n, ("promotions", j)), p.slots) for j, p in enumerate(self.promotions)]
        return CompiledRules(n, attrs, eligible, cap, promos)


@dataclass
class CompiledRules:
    """``Rules`` resolved against a catalogue of ``n`` rows.

    Attributes:
        eligible: bool (n,) rows the filters admit, or None (no filter).
        cap: the diversity cap, or None.
        promotions: (bool (n,) promoted set, slots) per promotion, in request order.
    """

    n: int
    attrs: object
    eligible: np.ndarray | None
    cap: CapSpec | None
    promotions: list[tuple[np.ndarray, int]]

    def allowed(self, excluded: np.ndarray) -> np.ndarray:
        """Bool (n,) rows a slate may hold: admitted by the filters and not ``excluded``
        (int rows: hidden, seen, the request's ``exclude``). A fresh array."""
        out = np.ones(self.n, dtype=bool) if self.eligible is None else self.eligible.copy()
        if excluded.size:
            out[excluded] = False
        return out

    def start_cap(self) -> TagCap | None:
        """A fresh cap counter for one slate (None without a cap)."""
        return None if self.cap is None else self.cap.start(self.attrs, self.n)
