"""A state written as its difference from another one: how snapshots carry the forgetting
guard's rollback points without doubling in size.

A rollback point (``Recommender.rollback_point``: the last good model, the cumulative
reference) differs from the live model only where the events learned since touched it: a
few thousand rows of the per-item and per-user arrays, a prefix of the append-only ones.
``diff`` writes a target array dict against a base one, name by name, as the cheapest of

- ``same``: byte for byte the base array;
- ``prefix n``: the base array's first ``n`` rows (append-only arrays);
- ``rows n``: the base's first ``min(n, len(base))`` rows with some of them replaced, plus
  the rows past the base's end (stored: the row numbers and the rows);
- ``full``: stored whole (a row patch would not be smaller than ``max_share`` of it, the
  dtype or row shape changed, or the base lacks it),

so a delta's size grows with the rows changed since the point was taken, not with the
model. Rows are compared as bytes (NaN-safe, exact), a block of rows at a time (temporaries
of a few MB). ``diff_meta`` / ``patch_meta`` do the same for JSON metadata (dicts key by key,
other values whole). Everything is pure numpy; ``patch(base, *diff(base, t)) == t`` exactly.
"""

from __future__ import annotations

import numpy as np

SAME, PREFIX, ROWS, FULL = "same", "prefix", "rows", "full"
_BLOCK_BYTES = 4 << 20


def diff(base: dict[str, np.ndarray], target: dict[str, np.ndarray], hints: dict[str, np.ndarray] | None = None,
         max_share: float = 0.5) -> tuple[dict[str, list], dict[str, np.ndarray]]:
    """``target`` as a patch of ``base``: ``(spec, arrays)``.

    ``spec`` (JSON-able) maps every target name to ``[SAME]``, ``[PREFIX, n]``,
    ``[ROWS, n]`` or ``[FULL]``; ``arrays`` holds the stored parts, ``"<name>@rows"``
    (int64 row numbers) and ``"<name>@data"`` (the rows: the replaced ones, then those past
    the base's end; or the whole array for ``FULL``). ``hints`` (optional, per name): the
    only rows of the common prefix that may differ (sorted int rows; e.g.
    ``CoOccurrence.changed_since``); rows outside them are taken as equal without being
    compared.
    """
    hints = hints or {}
    spec: dict[str, list] = {}
    out: dict[str, np.ndarray] = {}
    for name, t in target.items():
        t = np.asarray(t)
        b = base.get(name)
        kind = _compare(None if b is None else np.asarray(b), t, hints.get(name), max_share)
        if kind[0] == ROWS:
            changed, n = kind[1], len(t)
            m = min(n, len(b))
            out[f"{name}@rows"] = changed
            out[f"{name}@data"] = np.concatenate([t[changed], t[m:n]]) if m < n else t[changed]
            spec[name] = [ROWS, n]
        elif kind[0] == FULL:
            out[f"{name}@data"] = t
            spec[name] = [FULL]
        else:
            spec[name] = list(kind)
    return spec, out


def patch(base: dict[str, np.ndarray], spec: dict[str, list], arrays: dict[str, np.ndarray],
          views: frozenset[str] | set[str] = frozenset(), into: dict[str, np.ndarray] | None = None
          ) -> dict[str, np.ndarray]:
    """Inverse of ``diff``: the target arrays from ``base`` and the stored parts.

    Results are fresh arrays, except for names in ``views`` that are ``SAME`` or ``PREFIX``
    (then prefix views of the base, for arrays whose written rows never change) and names in
    ``into``, whose rows are written into the given destination arrays (at least as many rows
    as the target; the result is their prefix view).

    Raises:
        KeyError: a stored part or a base array the spec needs is missing.
    """
    out: dict[str, np.ndarray] = {}
    into = into or {}
    for name, (kind, *rest) in spec.items():
        if kind == FULL:
            data = arrays[f"{name}@data"]
            n = len(data) if data.ndim else None
            out[name] = _place(data, into.get(name), n)
            continue
        b = base[name]
        if kind == SAME:
            out[name] = b if name in views else _place(b, into.get(name), len(b) if b.ndim else None)
        elif kind == PREFIX:
            n = rest[0]
            out[name] = b[:n] if name in views else _place(b[:n], into.get(name), n)
        else:  # ROWS
            n = rest[0]
            changed, data = arrays[f"{name}@rows"], arrays[f"{name}@data"]
            m = min(n, len(b))
            dest = into.get(name)
            if dest is None:
                dest = np.empty((n,) + b.shape[1:], dtype=b.dtype)
            dest[:m] = b[:m]
            dest[changed] = data[: len(changed)]
            dest[m:n] = data[len(changed):]
            out[name] = dest[:n]
    return out


def diff_table(base: dict[str, np.ndarray], target: dict[str, np.ndarray],
               hint: np.ndarray | None = None) -> tuple[list, dict[str, np.ndarray]]:
    """Wide tables with the same rows in every array of ``target`` (e.g. co-occurrence
    ``keys`` (rows, K) and ``vals``), where an update changes a few slots of a row (a count
    bumped, a neighbour added): ``target`` as a patch of ``base`` that stores only the slots
    that differ in any of the arrays (``"@slots"``: flat slot numbers, int64; then
    ``"<name>@entries"``: the target's values there). Rows past the base's end count as
    zeros in the base. ``hint`` as in ``diff`` (rows outside it are taken as equal). Returns
    ``(spec, arrays)`` for ``patch_table``."""
    names = list(target)
    n, width = target[names[0]].shape
    m = min(n, len(base[names[0]]))
    rows = np.arange(m, dtype=np.int64) if hint is None else np.asarray(hint, dtype=np.int64)
    rows = rows[rows < m]
    block = max(1, _BLOCK_BYTES // max(1, width * 8))
    parts = []
    for start in range(0, len(rows), block):
        part = rows[start: start + block]
        ne = np.zeros((len(part), width), dtype=bool)
        for name in names:
            t, b = target[name][part], base[name][part]
            ne |= _as_ints(t) != _as_ints(b)
        r, c = np.nonzero(ne)
        parts.append(part[r] * width + c)
    if m < n:  # new rows: their non-zero slots
        ne = np.zeros((n - m, width), dtype=bool)
        for name in names:
            ne |= _as_ints(target[name][m:n]) != 0
        r, c = np.nonzero(ne)
        parts.append((r + m) * width + c)
    slots = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
    stored = {"@slots": slots}
    for name in names:
        stored[f"{name}@entries"] = np.ascontiguousarray(target[name][:n]).reshape(-1)[slots]
    return ["table", n], stored


def patch_table(base: dict[str, np.ndarray], spec: list, arrays: dict[str, np.ndarray],
                into: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of ``diff_table``: the target tables written into ``into`` (per name, at least
    ``spec[1]`` rows of the base's width); their prefix views."""
    n = spec[1]
    slots = arrays["@slots"]
    out = {}
    for name, dest in into.items():
        b = base[name]
        m = min(n, len(b))
        dest[:m] = b[:m]
        dest[m:n] = 0
        view = dest[:n]
        view.reshape(-1)[slots] = arrays[f"{name}@entries"]
        out[name] = view
    return out


def _as_ints(a: np.ndarray) -> np.ndarray:
    """The same bytes as unsigned integers of the same width (bitwise comparisons)."""
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.kind in "fcb" and a.dtype.itemsize in (1, 2, 4, 8) else a


def diff_meta(base, target):
    """``target`` (JSON-able) as a patch of ``base``: ``{"=": target}`` (replaced whole), or,
    for two dicts, ``{"d": {key: patch}, "x": [keys removed]}`` with unchanged keys left out;
    None when they are equal."""
    if base == target and type(base) is type(target):
        return None
    if isinstance(base, dict) and isinstance(target, dict):
        changed = {}
        for key, value in target.items():
            if key in base:
                sub = diff_meta(base[key], value)
                if sub is not None:
                    changed[key] = sub
            else:
                changed[key] = {"=": value}
        removed = [key for key in base if key not in target]
        return {"d": changed, "x": removed}
    return {"=": target}


def patch_meta(base, delta):
    """Inverse of ``diff_meta`` (a new object; ``base`` is not modified)."""
    if delta is None:
        return base
    if "=" in delta:
        return delta["="]
    out = {k: v for k, v in base.items() if k not in set(delta["x"])}
    for key, sub in delta["d"].items():
        out[key] = patch_meta(base.get(key), sub)
    return out


def stored_bytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of the stored parts of a delta."""
    return sum(int(a.nbytes) for a in arrays.values())


def _compare(b: np.ndarray | None, t: np.ndarray, hint: np.ndarray | None, max_share: float) -> tuple:
    """(SAME,) | (PREFIX, n) | (ROWS, changed rows) | (FULL,) for one array."""
    if b is None or b.dtype != t.dtype or b.ndim != t.ndim or b.shape[1:] != t.shape[1:] or t.ndim == 0:
        if b is not None and b.shape == t.shape and b.dtype == t.dtype and _bytes_equal(b, t):
            return (SAME,)
        return (FULL,)
    n, m = len(t), min(len(t), len(b))
    changed = _changed_rows(b[:m], t[:m], hint)
    if not len(changed) and n == m:
        return (SAME,) if len(b) == n else (PREFIX, n)
    row_bytes = t.itemsize * int(np.prod(t.shape[1:], dtype=np.int64))
    if (len(changed) + n - m) * row_bytes + 8 * len(changed) >= max_share * max(1, t.nbytes):
        return (FULL,)
    return (ROWS, changed)


def _changed_rows(b: np.ndarray, t: np.ndarray, hint: np.ndarray | None) -> np.ndarray:
    """Rows (int64, sorted) where ``b`` and ``t`` (same shape) differ as bytes; only ``hint``
    rows are compared when given."""
    if hint is not None:
        hint = np.asarray(hint, dtype=np.int64)
        hint = hint[hint < len(t)]
        if not len(hint):
            return hint
        return hint[(_row_bytes(b[hint]) != _row_bytes(t[hint])).any(axis=1)]
    n = len(t)
    if not n:
        return np.zeros(0, dtype=np.int64)
    row_bytes = max(1, t.nbytes // n)
    block = max(1, _BLOCK_BYTES // row_bytes)
    parts = []
    for start in range(0, n, block):
        end = min(n, start + block)
        ne = (_row_bytes(b[start:end]) != _row_bytes(t[start:end])).any(axis=1)
        parts.append(np.flatnonzero(ne) + start)
    return np.concatenate(parts).astype(np.int64)


def _row_bytes(a: np.ndarray) -> np.ndarray:
    """(rows, bytes per row) uint8 view of a block of rows."""
    a = np.ascontiguousarray(a)
    return a.reshape(len(a), -1).view(np.uint8) if a.size else np.zeros((len(a), 0), dtype=np.uint8)


def _bytes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _place(src: np.ndarray, dest: np.ndarray | None, n: int | None) -> np.ndarray:
    """A copy of ``src``, written into ``dest``'s first rows when given."""
    if dest is None or n is None:
        return np.array(src, copy=True)
    dest[:n] = src
    return dest[:n]
