"""The forgetting guard's part of a snapshot: how its state is written beside the model's
arrays and read back, so a restarted (or resynced) process weighs, validates and rolls back
exactly like an uninterrupted one.

What the guard keeps, and how a snapshot holds it (arrays prefixed ``guard.``, metadata under
``meta["guard"]``):

============================  ===============================================  =====================
state                         decides                                          stored as
============================  ===============================================  =====================
accounts (vetted, trusted     intake's ``vetted`` / ``unvetted`` (an unjoined  4 arrays, views of
clicks per account)           event's weight), who is established              ``Accounts``
reservoir, its count, the     which pairs and users a validation scores        JSON (<= reservoir_size
generator's state                                                              pairs; PCG64 state)
the open window (events,      what the next validation judges and a rollback   JSON, <= window_events
weights, suspicious flags)    re-applies                                       stream entries
last good model, reference    what a failed window rolls back to, the          row deltas against the
model                         cumulative check                                 live arrays
counters, last 100 events     ``GET /model``'s guard stats, when a window      JSON
                              closes, when the reference is renewed
============================  ===============================================  =====================

Rollback points are written with ``engine.core.state_delta`` against the live model's
arrays in the form rollback points take (``point_base``: the co-occurrence table whole,
transitions gathered), so they cost the rows changed since they were taken, not another copy
of the model; the co-occurrence rows compared are only those changed since the point was
synced (``CoOccurrence.changed_since``). Reading them back needs the same base, rebuilt from
the restored live model, which ``Recommender.from_state`` reproduces bit for bit.

Not stored: the ADWIN alarm and the slates it waits on (fed by the serving path, not by the
stream, so no replay could reproduce them; a restarted alarm starts empty) and the lazily
rebuilt reference model (rebuilt from its state when a window needs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.core import state_delta
from engine.core.accounts import Accounts
from engine.core.cooccurrence import CoOccurrence
from engine.core.events import Event, from_fields, to_fields
from engine.core.recommender import APPEND_ONLY, Recommender

SECTION = "guard"
"""``meta[SECTION]``: the guard's metadata in a snapshot."""
PREFIX = "guard."
"""Array names of the guard's part of a snapshot start with this."""
VERSION = 1
EVENTS_KEPT = 100
"""Guard events (rollbacks, quarantines, alarms) a snapshot keeps; totals are counted."""
_TABLE = ("cooc_table_keys", "cooc_table_vals")


@dataclass
class Decoded:
    """A snapshot's guard state, decoded and not yet adopted
    (``GuardedRecommender.decode_state`` / ``adopt``)."""

    accounts: Accounts
    reservoir: list[tuple[str, str]]
    reservoir_seen: int
    rng: np.random.Generator
    window: list[tuple[Event, float, bool]]
    suspicious: int
    counters: dict[str, int]
    served: int | None
    events: list[dict]
    earlier_events: dict[str, int]
    good: tuple[dict, dict] | None = None
    reference: tuple[dict, dict] | None = None
    buffers: list = field(default_factory=lambda: [None, None])


def point_base(rec: Recommender, arrays: dict | None = None) -> dict[str, np.ndarray]:
    """The live model's arrays in the form a rollback point holds them (the base its delta is
    written against): ``rec.state(copy=False)`` (or ``arrays``, that output) without the
    co-occurrence entries, plus the co-occurrence table itself and the transitions gathered.
    Views of the live state, except the gathered transitions: finish with them before the
    model learns again."""
    arrays = rec.state(copy=False)[0] if arrays is None else arrays
    out = {}
    for name, value in arrays.items():
        if name in ("cooc_keys", "cooc_vals", "cooc_offset"):
            continue
        out[name] = value if isinstance(value, np.ndarray) else value.copy()  # a deferred gather
    cooc = rec.cooc
    n = cooc.n
    out.update(cooc_table_keys=cooc.keys[:n], cooc_table_vals=cooc.vals[:n], cooc_size=cooc.size[:n],
               cooc_counts=cooc.counts[:n])
    return out


def encode_point(point: tuple[dict, dict], buffer: CoOccurrence | None, rec: Recommender,
                 base: dict[str, np.ndarray], base_meta: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """A rollback point ``(arrays, meta)`` as ``(meta, arrays)`` of a delta against ``base``
    / ``base_meta`` (``point_base`` of ``rec`` and its ``state`` metadata). ``buffer``: the
    co-occurrence table the point's arrays view (``Recommender.rollback_point``), so only the
    rows ``rec`` changed since it was synced are compared; of the table only the slots that
    differ are stored (``state_delta.diff_table``)."""
    arrays, meta = point
    hint = rec.cooc.changed_since(buffer) if buffer is not None else None
    rest = {k: v for k, v in arrays.items() if k not in _TABLE}
    spec, stored = state_delta.diff(base, rest)
    table_spec, table = state_delta.diff_table(base, {k: arrays[k] for k in _TABLE}, hint)
    stored.update({f"table.{k}": v for k, v in table.items()})
    return {"arrays": spec, "table": table_spec, "meta": state_delta.diff_meta(base_meta, meta)}, stored


def decode_point(encoded: dict, stored: dict[str, np.ndarray], rec: Recommender, base: dict[str, np.ndarray],
                 base_meta: dict) -> tuple[tuple[dict, dict], CoOccurrence]:
    """Inverse of ``encode_point``: ``((arrays, meta), buffer)`` as
    ``Recommender.rollback_point`` returns it, against ``base`` (``point_base`` of the
    restored live model ``rec``) and ``base_meta``. Arrays that never change once written
    (``APPEND_ONLY``) are prefix views of the live ones; the co-occurrence table is written
    into a buffer of its own; everything else is copied."""
    arrays = state_delta.patch(base, encoded["arrays"], stored, views=APPEND_ONLY)
    n = encoded["table"][1]
    buffer = CoOccurrence(rec.cooc.window, rec.cooc.max_neighbours)
    buffer.grow(n)
    table = {k[len("table."):]: v for k, v in stored.items() if k.startswith("table.")}
    arrays.update(state_delta.patch_table(base, encoded["table"], table,
                                          into={"cooc_table_keys": buffer.keys, "cooc_table_vals": buffer.vals}))
    buffer.size[:n] = arrays["cooc_size"]
    buffer.counts[:n] = arrays["cooc_counts"]
    arrays.update(cooc_size=buffer.size[:n], cooc_counts=buffer.counts[:n])
    meta = state_delta.patch_meta(base_meta, encoded["meta"])
    return (arrays, meta), buffer


def encode_window(window: list[tuple[Event, float, bool]]) -> list[list]:
    """The open window as JSON: ``[stream fields (with "id"), weight, suspicious]`` per event."""
    out = []
    for event, weight, suspicious in window:
        fields = to_fields(event)
        if event.event_id is not None:
            fields["id"] = event.event_id
        out.append([fields, weight, bool(suspicious)])
    return out


def decode_window(rows: list[list]) -> list[tuple[Event, float, bool]]:
    """Inverse of ``encode_window``.

    Raises:
        KeyError, ValueError: a malformed entry.
    """
    out = []
    for fields, weight, suspicious in rows:
        fields = dict(fields)
        event_id = fields.pop("id", None)
        out.append((from_fields(event_id, fields), float(weight), bool(suspicious)))
    return out


def accounts_arrays(accounts: Accounts) -> dict[str, np.ndarray]:
    """The accounts' arrays under their snapshot names (views)."""
    return {f"{PREFIX}accounts.{k}": v for k, v in accounts.state().items()}


def load_accounts(arrays: dict[str, np.ndarray]) -> Accounts:
    """The accounts of a snapshot (empty when it has none)."""
    prefix = f"{PREFIX}accounts."
    mine = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    return Accounts.load(mine) if mine else Accounts()


def sub_arrays(arrays: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """The stored parts of rollback point ``name`` (``"good"``, ``"reference"``), unprefixed."""
    prefix = f"{PREFIX}{name}."
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def prefixed(arrays: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """``arrays`` under rollback point ``name``'s snapshot names."""
    return {f"{PREFIX}{name}.{k}": v for k, v in arrays.items()}
