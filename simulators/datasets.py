"""Rating logs: the bundled MovieTweetings-100K snapshot and generic CSV files."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

BUNDLED = Path(__file__).resolve().parent / "data" / "movietweetings-100k"


@dataclass(frozen=True, slots=True)
class Rating:
    """One row of a rating log: ids, rating value and event time (unix s)."""

    user_id: str
    item_id: str
    value: float
    timestamp: float


def load_movietweetings(path: str | Path = BUNDLED / "ratings.dat") -> list[Rating]:
    """Read ``user::item::rating::ts`` lines, stable-sorted by timestamp.

    Raises:
        ValueError: a line does not have four ``::``-separated fields.
    """
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("::")
            if len(parts) != 4:
                raise ValueError(f"{path}:{n}: expected user::item::rating::timestamp")
            rows.append(Rating(parts[0], parts[1], float(parts[2]), float(parts[3])))
    rows.sort(key=lambda r: r.timestamp)
    return rows


def load_csv(path: str | Path, columns: tuple[str, str, str, str] = ("user_id", "item_id", "rating", "timestamp"),
             delimiter: str = ",") -> list[Rating]:
    """Read a CSV with a header naming (user, item, rating, timestamp) columns; stable-sorted
    by timestamp.

    Raises:
        KeyError: a named column is missing from the header.
    """
    user, item, rating, ts = columns
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise KeyError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        rows = [Rating(str(r[user]), str(r[item]), float(r[rating]), float(r[ts])) for r in reader]
    rows.sort(key=lambda r: r.timestamp)
    return rows
