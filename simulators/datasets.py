"""Rating logs: the bundled MovieTweetings-100K snapshot and generic CSV files."""

from __future__ import annotations

import csv
from collections.abc import Iterator
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


class BadRow(ValueError):
    """A line of a log that cannot be read: ``path``, ``line`` (1-based) and ``field`` name
    it (the message is ``"<path>:<line>: <field>: <what is wrong>"``)."""

    def __init__(self, path, line: int, field: str, message: str) -> None:
        super().__init__(f"{path}:{line}: {field}: {message}")
        self.path, self.line, self.field = str(path), line, field


def _number(path, line: int, field: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRow(path, line, field, f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise BadRow(path, line, field, f"{text!r} is not a finite number")
    return value


def iter_movietweetings(path: str | Path = BUNDLED / "ratings.dat") -> Iterator[tuple[int, Rating]]:
    """``(line number, Rating)`` of ``user::item::rating::ts`` lines, in file order.

    Raises:
        BadRow: a line without four ``::``-separated fields, or a rating / timestamp that is
            not a finite number (the message names the line and the field).
    """
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("::")
            if len(parts) != 4:
                raise BadRow(path, n, "line", "expected user::item::rating::timestamp")
            yield n, Rating(parts[0], parts[1], _number(path, n, "rating", parts[2]),
                            _number(path, n, "timestamp", parts[3]))


def load_movietweetings(path: str | Path = BUNDLED / "ratings.dat") -> list[Rating]:
    """Read ``user::item::rating::ts`` lines, stable-sorted by timestamp.

    Raises:
        BadRow: a malformed line (see ``iter_movietweetings``).
    """
    rows = [r for _, r in iter_movietweetings(path)]
    rows.sort(key=lambda r: r.timestamp)
    return rows


def iter_csv(path: str | Path, columns: tuple[str, str, str, str] = ("user_id", "item_id", "rating", "timestamp"),
             delimiter: str = ",") -> Iterator[tuple[int, Rating]]:
    """``(line number, Rating)`` of a CSV with a header naming the (user, item, rating,
    timestamp) columns, in file order.

    Raises:
        KeyError: a named column is missing from the header.
        BadRow: a row without one of the columns, or a rating / timestamp that is not a
            finite number.
    """
    user, item, rating, ts = columns
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise KeyError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        for r in reader:
            n = reader.line_num
            for name in columns:
                if r.get(name) is None:
                    raise BadRow(path, n, name, "missing (the row has fewer fields than the header)")
            yield n, Rating(str(r[user]), str(r[item]), _number(path, n, rating, r[rating]),
                            _number(path, n, ts, r[ts]))


def load_csv(path: str | Path, columns: tuple[str, str, str, str] = ("user_id", "item_id", "rating", "timestamp"),
             delimiter: str = ",") -> list[Rating]:
    """Read a CSV with a header naming (user, item, rating, timestamp) columns; stable-sorted
    by timestamp.

    Raises:
        KeyError: a named column is missing from the header.
        BadRow: a malformed row (see ``iter_csv``).
    """
    rows = [r for _, r in iter_csv(path, columns, delimiter)]
    rows.sort(key=lambda r: r.timestamp)
    return rows
