"""Why an item is in a slate: the parts of its score, and a "because you liked X" hint where
co-occurrence drives it (``POST /recommend`` with ``explain: true``).

``learned`` ranker
    the serving candidate's score is a dot product over standardised features
    (``engine.core.ranker``), so its parts are the per-feature contributions
    ``w_f * (x_f - mu_f) / sigma_f`` (``Ranker.contributions``) over the features the serving
    candidate uses, plus ``tie_break`` (the deterministic per-item tie-breaker < 1e-6 that
    serving adds): they sum to the served score, to float rounding (~1e-7 relative at
    worst: the factor feature is a float32 product whose last bits depend on the batch of
    rows it was computed in).
``blend`` ranker
    the blend's three terms: ``trend`` (log decayed popularity), ``cooc``
    (``cooc_weight`` x co-occurrence with the user's last ``cooc_history`` positives) and
    ``mf`` (``mf_weight`` x (b_i + <p_u, q_i>)); they sum to the score (the factor term is
    a float32 dot product, so to ~1e-6 relative).

``because_you_liked``: the item of the user's recent positives (the last 20 for the learned
ranker, ``cooc_history`` for the blend) whose co-occurrence with the recommended item is the
largest (cosine-normalised co-count, ``CoOccurrence.neighbours``), given only when the
co-occurrence parts push the item's score up (their sum > 0); None otherwise. Deleted items
are never named.

Cost (``python load/bench_explain.py --items 10000 --ranker learned|blend``: in process,
k = 10, 300 calls, one run each on the shared 2-core machine under a load average of ~7, so
take the medians): explaining a slate takes p50 ~280 µs with the learned ranker (the
features of the k items are computed again, by the same function as serving, so the parts
match the served scores; plus one co-occurrence lookup of the history) and ~130 µs with the
blend, on top of a slate's p50 of ~760 / ~230 µs. Off by default.
"""

from __future__ import annotations

import numpy as np

from engine.core.features import HISTORY_SPANS, features
from engine.core.trend import jitter as tie_breaker

_COOC_PARTS = ("co-occurrence",)
_COOC_CROSS = "cooc_x_history"


def explain(rec, user: str, item_ids: list[str], context: dict | None = None) -> list[dict]:
    """One explanation per item of a served slate (same order): ``{"ranker": "learned" |
    "blend", "parts": {name: float}, "because_you_liked": item id | None}``. Reads ``rec``
    (a ``Recommender``) without changing it; unknown item ids get empty parts."""
    cat = rec.catalogue
    known = [cat.get(i) for i in item_ids]
    rows = np.array([-1 if r is None else r for r in known], dtype=np.int64)
    ok = rows >= 0
    out = [{"ranker": "learned" if rec.learned else "blend", "parts": {}, "because_you_liked": None}
           for _ in item_ids]
    if not ok.any():
        return out
    live = rows[ok]
    history = rec.positives.get(user) or []
    if rec.learned:
        parts, cooc_part = _learned_parts(rec, user, live, context)
        recent = history[-HISTORY_SPANS[-1]:]
    else:
        parts, cooc_part = _blend_parts(rec, user, live, history[-rec.config.cooc_history:])
        recent = history[-rec.config.cooc_history:]
    because = _because(rec, recent, live)
    for j, slot in enumerate(np.flatnonzero(ok).tolist()):
        out[slot]["parts"] = parts[j]
        if cooc_part[j] > 0 and because[j] is not None:
            out[slot]["because_you_liked"] = because[j]
    return out


def _learned_parts(rec, user: str, rows: np.ndarray, context: dict | None) -> tuple[list[dict], np.ndarray]:
    """Per-feature contributions of the serving candidate + the tie-breaker, and the summed
    co-occurrence contributions, per row."""
    ranker = rec.ranker
    contrib = ranker.contributions(features(rec, user, rows, context))
    cols = ranker.columns[ranker.serving]
    names = [ranker.names[c] for c in cols.tolist()]
    cooc_cols = [ranker.names.index(c) for g in _COOC_PARTS for c in ranker.groups.get(g, ())]
    if _COOC_CROSS in ranker.names:
        cooc_cols.append(ranker.names.index(_COOC_CROSS))
    cooc_part = contrib[:, cooc_cols].sum(axis=1) if cooc_cols else np.zeros(len(rows))
    parts = [dict(zip(names, values), tie_break=tie)
             for values, tie in zip(contrib[:, cols].tolist(), tie_breaker(rows).tolist())]
    return parts, cooc_part


def _matches(rec, recent: list[int], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The co-occurrence entries of the user's ``recent`` positives: (history rows,
    owner per entry, (len(rows), entries) weight where the entry's neighbour is the row, else 0)."""
    hist = np.asarray(recent, dtype=np.int64)
    owner, neighbour, weight = rec.cooc.neighbours(hist)
    return hist, owner, np.where(neighbour[None, :] == rows[:, None], weight[None, :], 0.0)


def _blend_parts(rec, user: str, rows: np.ndarray, recent: list[int]) -> tuple[list[dict], np.ndarray]:
    """The blend's trend, co-occurrence and factor terms per row."""
    c = rec.config
    trend = rec.trend.log_score[rows]
    mf = rec.model.item_scores(user, rows)
    if c.mf_weight != 1.0:
        mf = mf * c.mf_weight
    cooc = c.cooc_weight * _matches(rec, recent, rows)[2].sum(axis=1) if recent else np.zeros(len(rows))
    parts = [{"trend": a, "cooc": b, "mf": m} for a, b, m in zip(trend.tolist(), cooc.tolist(), mf.tolist())]
    return parts, cooc


def _because(rec, recent: list[int], rows: np.ndarray) -> list[str | None]:
    """Per row, the id of the (live) history item with the largest co-occurrence with it."""
    if not recent:
        return [None] * len(rows)
    hist, owner, w = _matches(rec, recent, rows)
    if not w.shape[1]:
        return [None] * len(rows)
    deleted = rec.catalogue.deleted
    if deleted:
        gone = np.array([h in deleted for h in hist.tolist()])
        w[:, gone[owner]] = 0.0
    best = np.argmax(w, axis=1)
    ids = rec.catalogue.ids
    found = w[np.arange(len(rows)), best] > 0
    return [ids[int(hist[owner[b]])] if ok else None for b, ok in zip(best.tolist(), found.tolist())]
