"""Per-candidate features of the learned ranker: the one function serving and learning use.

``features(rec, user, items)`` -> (len(items), d) float64, columns ``feature_names(rec.config)``:

==================  ===========================================================================
group               columns
==================  ===========================================================================
popularity          ``pop_*``: log share of the decayed positives per bank column
                    (``engine.core.popularity``), several time and event scales
co-occurrence       ``cooc_1``, ``cooc_3``, ``cooc_10``, ``cooc_20``: the cosine co-occurrence
                    score with the user's last 1 / 3 / 10 / 20 positives (Sarwar et al. 2001),
                    so the ranker weighs recent items against older ones
transitions         ``trans_1``, ``trans_3``: the share of transitions from the user's last 1 / 3
                    positives to the item, over all users (what people act on next)
factors             ``mf``: ``b_i + <p_u, q_i>`` of River's BiasedMF (``engine.core.model``)
age                 ``age``: log(1 + positives counted since the item entered the catalogue)
history             ``cooc_x_history``, ``mf_x_history``: the two personal scores times
                    log(1 + the user's interactions), so how much they count can grow with
                    what the model knows of the user
context             ``ctx_lift``: how much better the item does in the request's context
                    (``engine.core.context``)
metadata            ``tag_affinity``: the user's taste for the item's tags (``engine.core.tags``)
==================  ===========================================================================

Groups named in ``EngineConfig.ranker_ablate`` are computed as 0 (an ablation: the ranker
cannot use them). The same function computes the features of the items a slate is drawn from and of the
examples the ranker learns from (before the event is applied), so there is no train/serve
skew by construction (``tests/test_ranker.py`` checks both paths agree).
"""

from __future__ import annotations

import numpy as np

from engine.core.popularity import column_names

HISTORY_SPANS = (1, 3, 10, 20)
GROUPS = {
    "co-occurrence": tuple(f"cooc_{h}" for h in HISTORY_SPANS),
    "transitions": ("trans_1", "trans_3"),
    "factors": ("mf",),
    "age": ("age",),
    "history": ("cooc_x_history", "mf_x_history"),
    "context": ("ctx_lift",),
    "metadata": ("tag_affinity",),
}


def feature_groups(config) -> dict[str, tuple[str, ...]]:
    """Feature groups of an ``EngineConfig`` (ablations, explanations): name -> columns."""
    bank = column_names(tuple(h * 3600.0 for h in config.popularity_half_lives_h), config.popularity_half_lives_events)
    return {"popularity": tuple(bank), **GROUPS}


def feature_names(config) -> list[str]:
    """Column names of ``features`` for an ``EngineConfig`` (``pop_*`` first)."""
    return [name for group in feature_groups(config).values() for name in group]


def features(rec, user: str, items: np.ndarray, context: dict | None = None, t: float | None = None,
             cooc_hits: tuple | None = None, groups: frozenset[str] | None = None) -> np.ndarray:
    """Features of catalogue rows ``items`` (int array) for ``user`` in ``context`` at event
    time ``t`` (default: the model's clock), reading ``rec`` (a ``Recommender``) without
    changing it. ``cooc_hits``: ``recent_neighbours(rec, user)`` when the caller has it.
    ``groups``: the feature groups to compute (None: all); the other columns are 0.
    Serving passes the serving ranker's (``Ranker.serving_groups``), whose score gives the
    other columns weight 0, so a popularity-only ranker pays for no co-occurrence lookup.

    Returns:
        float64 array (len(items), len(feature_names(rec.config))).
    """
    t = rec.clock if t is None else t
    want = (lambda g: True) if groups is None else groups.__contains__
    b = rec.bank.columns
    out = (np.empty if groups is None else np.zeros)((len(items), b + len(HISTORY_SPANS) + 8))
    if want("popularity"):
        out[:, :b] = rec.bank.log_shares(items, t)
    history = rec.positives.get(user)
    c = b + len(HISTORY_SPANS)
    with_history = want("history")
    if want("co-occurrence") or with_history:
        out[:, b:c] = cooc_features(rec.cooc, history, items, cooc_hits) if history else 0.0
    if want("transitions"):
        out[:, c: c + 2] = neighbour_scores(rec.transitions, history, items, (1, 3), directed=True) if history else 0.0
    c += 2
    if want("factors") or with_history:
        out[:, c] = rec.model.item_scores(user, items)
    if want("age"):
        out[:, c + 1] = np.log1p(rec.bank.events - rec.added_at[items])
    if with_history:
        seen = rec.seen.get(user)
        activity = np.log1p(len(seen)) if seen else 0.0
        out[:, c + 2] = out[:, b + 2] * activity
        out[:, c + 3] = out[:, c] * activity
    if want("context"):
        out[:, c + 4] = rec.context_pop.lift(items, context)
    if want("metadata"):
        out[:, c + 5] = rec.tags.affinity(user, items)
    if rec.ablated is not None:
        out[:, rec.ablated] = 0.0
    return out


def cooc_features(cooc, history: list[int], items: np.ndarray, hits: tuple | None = None) -> np.ndarray:
    """Co-occurrence scores of ``items`` with the user's last 1, 3, 10 and 20 positives
    (``HISTORY_SPANS``): (len(items), 4)."""
    return neighbour_scores(cooc, history, items, HISTORY_SPANS, hits=hits)


def neighbour_scores(table, history: list[int], items: np.ndarray, spans: tuple[int, ...],
                     directed: bool = False, hits: tuple | None = None) -> np.ndarray:
    """For each span h, the summed neighbour weights (``CoOccurrence.neighbours``) of
    ``items`` from the user's last h positives: (len(items), len(spans)). ``hits``: the
    table's ``neighbours`` of the user's last ``spans[-1]`` (or more) positives, most recent
    first (``recent_neighbours``), when the caller already has them."""
    if hits is None:
        hits = table.neighbours(recent_history(history, spans[-1]), directed)
    owner, neighbour, weight = hits
    out = np.zeros((len(items), len(spans)))
    if not len(neighbour) or not len(items):
        return out
    # Which neighbours are among ``items``: one gather from a catalogue-sized bool mask (most
    # neighbours of a long history are not candidates), then a binary search of the hits only.
    listed = np.zeros(max(int(items.max()), int(neighbour.max())) + 1, dtype=bool)
    listed[items] = True
    hit = listed[neighbour]
    ordered = bool(np.all(items[:-1] <= items[1:]))
    order = None if ordered else np.argsort(items, kind="stable")
    loc = np.searchsorted(items if ordered else items[order], neighbour[hit])
    rows = loc if ordered else order[loc]
    weight = weight[hit]
    cuts = np.searchsorted(owner[hit], spans)  # owners are non-decreasing: each span is a prefix
    for col, cut in enumerate(cuts.tolist()):
        out[:, col] = np.bincount(rows[:cut], weights=weight[:cut], minlength=len(items))
    return out


def recent_history(history: list[int], n: int) -> np.ndarray:
    """The user's last ``n`` positives (rows), most recent first (int64)."""
    return np.asarray(history[-n:][::-1], dtype=np.int64)


def recent_neighbours(rec, user: str, n: int = HISTORY_SPANS[-1]) -> tuple | None:
    """``rec.cooc.neighbours`` of the user's last ``n`` positives (default
    ``HISTORY_SPANS[-1]``, what the co-occurrence features read), most recent first (owner =
    position from the most recent), or None for a user without positives: computed once per
    request, read by the co-occurrence candidate source (``engine.core.candidates``) and the
    co-occurrence features."""
    history = rec.positives.get(user)
    return rec.cooc.neighbours(recent_history(history, n)) if history else None


def serving_neighbours(rec, user: str, groups: frozenset[str] | None, source_history: int) -> tuple | None:
    """``recent_neighbours`` for a request whose ranker reads ``groups``: of the last
    ``HISTORY_SPANS[-1]`` positives when it reads a co-occurrence feature, else only of the
    last ``source_history`` (what the co-occurrence candidate source reads)."""
    if groups is None or "co-occurrence" in groups or "history" in groups:
        return recent_neighbours(rec, user)
    return recent_neighbours(rec, user, min(source_history, HISTORY_SPANS[-1]))
