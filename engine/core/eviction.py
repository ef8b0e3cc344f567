"""Bounded state: users leave the model when inactive (event time) or when there are more
than the configured cap (least recently active first); items enter it only by the
admission policy and up to a cap.

Public ids reach the model from anyone who can send feedback, so without bounds the state
grows with every new id. ``UserActivity`` keeps users in least-recently-active order (an
``OrderedDict``: O(1) per event); ``due`` names the users to evict at the engine's clock;
``forget`` drops one user's dict-held state at once (history, seen set, River latents,
pending impressions, tag profile) and marks their mirror row dead; ``compact`` rewrites the
row-indexed arrays (the factor mirror, the packed ids and the interaction log) without dead
rows once they are a quarter of all rows, so memory stays within ~4/3 of the live state and
the cost is amortised O(1) per evicted user. Decisions depend only on the event stream
(event times and counts), so a replay evicts exactly the same users.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from engine.core.arrays import PackedIds, ensure_capacity

_COMPACT_SHARE = 0.25  # compact once dead rows are this share of all user rows


class UserActivity:
    """Users in least-recently-active order, with the event time of their last event."""

    def __init__(self) -> None:
        self.last: OrderedDict[str, float] = OrderedDict()

    def touch(self, user: str, t: float) -> None:
        """``user`` acted at event time ``t`` (unix s)."""
        last = self.last
        if user in last:
            last.move_to_end(user)
        last[user] = t

    def due(self, now: float, ttl_s: float, cap: int) -> list[str]:
        """Users to evict at event time ``now`` (removed from the order): inactive for more
        than ``ttl_s`` (0: never), then the least recently active beyond ``cap`` (0: no
        cap)."""
        out = []
        last = self.last
        while last and ttl_s > 0 and next(iter(last.values())) < now - ttl_s:
            out.append(last.popitem(last=False)[0])
        while cap > 0 and len(last) > cap:
            out.append(last.popitem(last=False)[0])
        return out

    def state(self, rows: dict[str, int]) -> dict[str, np.ndarray]:
        """The order as arrays for a snapshot: user rows (``rows``: id -> row) and times."""
        return {"activity_rows": np.array([rows[u] for u in self.last], dtype=np.int64),
                "activity_time": np.array(list(self.last.values()), dtype=np.float64)}

    def load(self, arrays: dict[str, np.ndarray], user_ids: list[str]) -> None:
        """Inverse of ``state`` (``user_ids``: ids by row)."""
        self.last = OrderedDict((user_ids[r], t) for r, t in zip(arrays["activity_rows"].tolist(),
                                                                   arrays["activity_time"].tolist()))


def forget(rec, user: str) -> None:
    """Drop everything ``rec`` (a ``Recommender``) holds about ``user`` that is keyed by the
    id; their row in the factor mirror and their interaction-log rows stay until
    ``compact`` (marked dead, so neither serving nor a snapshot sees them)."""
    model = rec.model
    row = model.user_index.pop(user, None)
    if row is not None:
        rec.dead_users = ensure_capacity(rec.dead_users, row + 1, False)
        rec.dead_users[row] = True
        model.user_factors[row] = 0.0
        model.user_bias[row] = 0.0
    model.mf.u_latents.pop(user, None)
    model.mf.u_biases.pop(user, None)
    rec.seen.pop(user, None)
    rec.positives.pop(user, None)
    rec.tags.users.pop(user, None)
    for idx in rec._shown.pop(user, {}):
        rec.pending.pop((user, idx), None)
    rec.evicted_users += 1


def dead_rows(rec) -> np.ndarray:
    """Bool per user row of ``rec``'s factor mirror: forgotten, awaiting compaction."""
    n = len(rec.model.user_ids)
    out = np.zeros(n, dtype=bool)
    m = min(n, len(rec.dead_users))
    out[:m] = rec.dead_users[:m]
    return out


def compact(rec, force: bool = False) -> bool:
    """Rewrite the user rows without the dead ones when they are ``_COMPACT_SHARE`` of all
    rows (or ``force``); returns whether it did. Remaps the interaction log."""
    model = rec.model
    n = len(model.user_ids)
    dead = dead_rows(rec)
    n_dead = int(dead.sum())
    if not n_dead or (not force and n_dead < _COMPACT_SHARE * n):
        return False
    alive = ~dead
    new_row = np.cumsum(alive) - 1
    ids = [u for u, a in zip(model.user_ids, alive.tolist()) if a]
    factors, bias = model.user_factors[:n][alive].copy(), model.user_bias[:n][alive].copy()
    model._reset_users()
    packed = PackedIds()
    for u in ids:
        packed.append(u)
    model.user_ids = ids
    model.user_packed = packed
    model.user_index = {u: i for i, u in enumerate(ids)}
    model.user_factors = ensure_capacity(factors, len(ids))
    model.user_bias = ensure_capacity(bias, len(ids))
    m = rec._log_n
    keep = alive[rec._log_user[:m]]
    rec._log_user = new_row[rec._log_user[:m][keep]]
    rec._log_item = rec._log_item[:m][keep].copy()
    rec._log_pos = rec._log_pos[:m][keep].copy()
    rec._log_n = len(rec._log_user)
    rec.dead_users = np.zeros(0, dtype=bool)
    return True
