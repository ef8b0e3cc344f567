"""What a ``Recommender`` holds about one user: ``profile`` (``GET /users/{id}``) and
``erase`` (``DELETE /users/{id}``, the right to erasure).

Per-user state, all of it keyed by the user id or by the user's row in the factor mirror:
the River latent vector and bias (and their mirror row), the history of recent positives,
the set of items seen (excluded from slates), pending impressions and their expiry
entries, the tag profile, the last-activity entry (eviction order), the user's rows of the
interaction log, and the id itself in the packed user ids a snapshot holds.

``erase`` removes every one of them: the mirror row stays (rows are never reused) but is
zeroed, marked dead and its id overwritten with NULs (``PackedIds.scrub``), and the
interaction-log rows go at once, so neither serving nor any snapshot taken afterwards
holds the id or anything keyed by it. What is *not* undone is the user's anonymous
contribution to shared item parameters (popularity counters, co-occurrence counts, item
factors and biases, the ranker's weights): like any aggregate of many users, they are not
personal data of one, and unlearning them exactly would need a replay of the whole history
without the user. A later event for the same id starts a fresh user (its seeded initial
latent vector is a function of the id alone, ``engine.core.model.SeededLatents``).
The same event stream gives the same erasure, so replays and replicas agree.
"""

from __future__ import annotations

import heapq

import numpy as np

from engine.core.eviction import compact, forget

MAX_RECENT = 20  # the longest history a model is guaranteed to hold (its co-occurrence window)


def knows(rec, user: str) -> bool:
    """Whether ``rec`` holds any state keyed by ``user`` (history, factors, pending
    impressions, tag profile or activity)."""
    return (user in rec.seen or user in rec.model.user_index or user in rec._shown
            or user in rec.activity.last or user in rec.tags.users)


def _rows(rec, user: str) -> list[int]:
    """Every row of the factor mirror that carries ``user``'s id: the live one and rows of
    earlier incarnations forgotten by eviction but not yet compacted away."""
    live = rec.model.user_index.get(user)
    rows = [] if live is None else [live]
    if rec.dead_users.any():
        dead = rec.dead_users
        rows += [r for r, u in enumerate(rec.model.user_ids) if u == user and r != live and r < len(dead) and dead[r]]
    return rows


def _interactions(rec, row: int) -> tuple[int, int]:
    """(interactions, positives) of one user row in the interaction log: O(log) numpy."""
    n = rec._log_n
    mine = rec._log_user[:n] == row
    return int(np.count_nonzero(mine)), int(np.count_nonzero(rec._log_pos[:n][mine]))


def profile(rec, user: str, recent: int = 10) -> dict | None:
    """What ``rec`` knows about ``user``, or None when it holds nothing of them.

    Returns:
        ``recent_positives`` (item ids, newest first, at most ``min(recent, MAX_RECENT)``),
        ``positives`` and ``interactions`` (positives + negatives learned, from the
        interaction log), ``seen_items`` (distinct items excluded from their slates),
        ``pending_impressions``, ``last_active`` (event time of the last non-impression
        event, unix s, or None), ``tag_profile`` (tags counted) and ``factors`` (whether the
        factor model holds a latent vector). Creates no state; cost O(interaction log).
    """
    if not knows(rec, user):
        return None
    row = rec.model.user_index.get(user)
    interactions, positives = _interactions(rec, row) if row is not None else (0, 0)
    history = rec.positives.get(user, [])
    ids = rec.catalogue.ids
    take = max(0, min(recent, MAX_RECENT))
    return {
        "recent_positives": [ids[i] for i in reversed(history[max(0, len(history) - take):])],
        "positives": positives,
        "interactions": interactions,
        "seen_items": len(rec.seen.get(user, ())),
        "pending_impressions": len(rec._shown.get(user, ())),
        "last_active": rec.activity.last.get(user),
        "tag_profile": len(rec.tags.users.get(user, ())),
        "factors": user in rec.model.mf.u_latents,
    }


def erase(rec, user: str) -> dict:
    """Remove everything ``rec`` holds about ``user`` (see the module docstring); a no-op
    for an unknown user. Deterministic: a replay applying the same erasure at the same
    point of the stream reaches the same state (a compaction may follow, as after
    evictions).

    Returns:
        what was removed: ``known`` (bool), ``interactions``, ``positives``,
        ``seen_items``, ``pending_impressions``, ``tag_profile``, ``rows`` (mirror rows
        scrubbed).
    """
    report = {"known": knows(rec, user), "interactions": 0, "positives": 0,
              "seen_items": len(rec.seen.get(user, ())), "pending_impressions": len(rec._shown.get(user, ())),
              "tag_profile": len(rec.tags.users.get(user, ())), "rows": 0}
    if not report["known"] and not rec.dead_users.any():
        return report
    rows = _rows(rec, user)
    model = rec.model
    if rows:
        n = rec._log_n
        drop = np.isin(rec._log_user[:n], rows)
        report["interactions"] = int(np.count_nonzero(drop))
        report["positives"] = int(np.count_nonzero(rec._log_pos[:n][drop]))
        if report["interactions"]:
            keep = ~drop  # new arrays: rollback points holding views of the old ones stay intact
            rec._log_user, rec._log_item, rec._log_pos = (rec._log_user[:n][keep], rec._log_item[:n][keep],
                                                          rec._log_pos[:n][keep])
            rec._log_n = len(rec._log_user)
    forget(rec, user, evicted=False)  # id-keyed state; marks the live row dead
    rec.activity.last.pop(user, None)
    if any(entry[1] == user for entry in rec._expiry):
        rec._expiry = [entry for entry in rec._expiry if entry[1] != user]
        heapq.heapify(rec._expiry)
    for row in rows:
        model.user_ids[row] = model.user_packed.scrub(row)
    report["rows"] = len(rows)
    if report["known"]:
        rec.erased_users += 1
    compact(rec)
    return report
