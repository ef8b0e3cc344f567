"""Rating logs: the bundled MovieTweetings-100K snapshot and generic CSV files."""

from __future__ import annotations

import csv
import itertools
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

BUNDLED = Path(__file__).resolve().parent / "data" / "movietweetings-100k"

IMPLICIT_VALUE = 1.0
"""The value of every row of an implicit log (no rating column): a positive on the scale
0:1 with threshold 1, which is how ``freshrec replay`` declares such a log to its server."""

TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
"""Seconds per unit of a numeric timestamp column (``--time-unit``; ``auto``: ``time_unit_of``)."""
UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_UNIT_EDGES = ((1e17, "ns"), (1e14, "us"), (1e11, "ms"))
DETECT_ROWS = 10_000
"""Rows of a CSV that ``detect_time_unit`` reads."""


@dataclass(frozen=True, slots=True)
class Rating:
    """One row of a log: ids, value (None: an event without one, a view or a click), event
    time (unix s) and the event type (``rating`` unless the log names one per row)."""

    user_id: str
    item_id: str
    value: float | None
    timestamp: float
    event: str = "rating"


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


def _timestamp(path, line: int, field: str, text: str, scale: float) -> float:
    """Unix seconds of a timestamp cell: a number in the column's unit (``scale`` seconds
    per unit) or an ISO 8601 date-time (``2015-03-04``, ``2015-03-04 12:00:05``,
    ``2015-03-04T12:00:05Z``, ``...+02:00``; without an offset: UTC)."""
    try:
        value = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise BadRow(path, line, field, f"{text!r} is neither a number (unix time) nor an ISO 8601 date-time "
                                            "such as 2015-03-04T12:00:05Z") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    if value != value or value in (float("inf"), float("-inf")):
        raise BadRow(path, line, field, f"{text!r} is not a finite number")
    return value * scale


def time_unit_of(values) -> str:
    """The unit of numeric unix timestamps, by the median magnitude: ``"ns"`` from 1e17,
    ``"us"`` from 1e14, ``"ms"`` from 1e11, else ``"s"``. Unix seconds stay below 1e11
    until the year 5138, and milliseconds (microseconds, nanoseconds) of any time after
    1973-03 are above 1e11 (1e14, 1e17), so the edges separate the units for every date
    from 1973 to 5138; a log of relative times (seconds from 0) reads as seconds.
    Empty: ``"s"``."""
    mags = [abs(float(v)) for v in values]
    if not mags:
        return "s"
    median = statistics.median(mags)
    return next((unit for edge, unit in _UNIT_EDGES if median >= edge), "s")


def detect_time_unit(path: str | Path, column: str = "timestamp", delimiter: str = ",",
                     rows: int = DETECT_ROWS) -> str:
    """``time_unit_of`` the numeric cells of ``column`` in the first ``rows`` rows of a CSV
    with a header (ISO 8601 cells carry their own unit and are skipped; a missing column
    reads as ``"s"``, and reading the rows reports it)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: a BOM (Excel) is dropped
        values = []
        for r in itertools.islice(csv.DictReader(fh, delimiter=delimiter), rows):
            try:
                values.append(float(r.get(column) or "nan"))
            except ValueError:
                continue
        return time_unit_of(v for v in values if v == v and abs(v) != float("inf"))


def iter_movietweetings(path: str | Path = BUNDLED / "ratings.dat") -> Iterator[tuple[int, Rating]]:
    """``(line number, Rating)`` of ``user::item::rating::ts`` lines, in file order.

    Raises:
        BadRow: a line without four ``::``-separated fields, or a rating / timestamp that is
            not a finite number (the message names the line and the field).
    """
    with open(path, encoding="utf-8-sig") as fh:  # utf-8-sig: a BOM (Excel) is dropped
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


def iter_csv(path: str | Path, columns: tuple[str, str, str | None, str] = ("user_id", "item_id", "rating", "timestamp"),
             delimiter: str = ",", time_unit: str = "s", event_column: str | None = None) -> Iterator[tuple[int, Rating]]:
    """``(line number, Rating)`` of a CSV with a header naming the (user, item, rating,
    timestamp) columns, in file order. A rating column of ``None`` reads an implicit log
    (views, clicks, purchases without a value): every row gets the value ``IMPLICIT_VALUE``
    (1.0). ``event_column`` names a column holding each row's event type (``view``,
    ``purchase``, ...: the deployment's schema decides their roles); then an empty or absent
    rating cell is no value (None), not ``IMPLICIT_VALUE``. Timestamps are numbers in ``time_unit`` (``s``,
    ``ms``, ``us``, ``ns``, or ``auto``: ``detect_time_unit``) or ISO 8601 date-times, and
    come out in unix seconds.

    Raises:
        KeyError: a named column is missing from the header.
        ValueError: an unknown ``time_unit``.
        BadRow: a row without one of the columns, a rating that is not a finite number, or
            a timestamp that is neither a finite number nor an ISO 8601 date-time.
    """
    user, item, rating, ts = columns
    named = [c for c in (*columns, event_column) if c is not None]
    if time_unit == "auto":
        time_unit = detect_time_unit(path, ts, delimiter)
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time unit {time_unit!r}: expected auto or one of {', '.join(TIME_UNITS)}")
    scale = TIME_UNITS[time_unit]
    with open(path, newline="", encoding="utf-8-sig") as fh:  # utf-8-sig: a BOM (Excel) is dropped
        reader = csv.DictReader(fh, delimiter=delimiter)
        missing = [c for c in named if c not in (reader.fieldnames or [])]
        if missing:
            header = reader.fieldnames
            if header is None:
                raise KeyError(f"{path}: the file is empty (no header, no rows)")
            hint = next((f" (it looks {name}-separated: pass --delimiter {flag})" for sep, name, flag in
                         ((";", "semicolon", "';'"), ("\t", "tab", "tab"), ("|", "pipe", "'|'"))
                         if sep != delimiter and len(header) == 1 and sep in header[0]), "")
            raise KeyError(f"{path}: missing column(s) {missing}; header is {header}{hint}")
        for r in reader:
            n = reader.line_num
            for name in named:
                if r.get(name) is None:
                    raise BadRow(path, n, name, "missing (the row has fewer fields than the header)")
            if event_column is None:
                value = IMPLICIT_VALUE if rating is None else _number(path, n, rating, r[rating])
                event = "rating"
            else:
                cell = "" if rating is None else r[rating].strip()
                value = _number(path, n, rating, cell) if cell else None
                event = r[event_column].strip()
                if not event:
                    raise BadRow(path, n, event_column, "empty (an event type is needed)")
            yield n, Rating(str(r[user]), str(r[item]), value, _timestamp(path, n, ts, r[ts], scale), event)


def csv_columns(path, columns: str | None, delimiter: str) -> tuple[str, str, str | None, str]:
    """The (user, item, rating, timestamp) columns to read: ``--columns`` with four names, or
    three (user,item,timestamp: an implicit log); without ``--columns``, ``user_id,
    item_id,rating,timestamp``, or ``user_id,item_id,timestamp`` when the header has no
    ``rating`` column.

    Raises:
        ValueError: ``--columns`` with another number of names, or an empty one.
        OSError: no ``--columns`` and the file cannot be read.
    """
    if columns is None:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh, delimiter=delimiter), [])
        return ("user_id", "item_id", None if "rating" not in header and "user_id" in header else "rating",
                "timestamp")
    cols = tuple(c.strip() for c in columns.split(","))
    if len(cols) == 3 and all(cols):
        return cols[0], cols[1], None, cols[2]
    if len(cols) != 4 or not all(cols):
        raise ValueError("--columns needs four names, user,item,rating,timestamp, or three for a log without "
                         "values: user,item,timestamp")
    return cols  # type: ignore[return-value]


def load_csv(path: str | Path, columns: tuple[str, str, str | None, str] = ("user_id", "item_id", "rating", "timestamp"),
             delimiter: str = ",", time_unit: str = "s", event_column: str | None = None) -> list[Rating]:
    """Read a CSV with a header naming (user, item, rating, timestamp) columns (rating None:
    an implicit log; ``event_column``: each row's event type); stable-sorted by timestamp
    (unix seconds; ``time_unit`` as ``iter_csv``).

    Raises:
        KeyError: a named column is missing from the header.
        ValueError: an unknown ``time_unit``.
        BadRow: a malformed row (see ``iter_csv``).
    """
    rows = [r for _, r in iter_csv(path, columns, delimiter, time_unit, event_column)]
    rows.sort(key=lambda r: r.timestamp)
    return rows
