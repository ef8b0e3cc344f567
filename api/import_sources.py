"""The events of a historical log, for ``freshrec import``: the ``replay`` formats
(MovieTweetings ``ratings.dat``, CSV with ``--columns`` / ``--delimiter`` /
``--event-column``) and JSON lines of ``POST /feedback`` bodies, read into engine events and
checked against the deployment's event schema, with errors that name the line and the field.

Ratings become ``rating`` events (value, event time); a CSV row becomes an event of the type
its ``--event-column`` names, or of ``--event`` (every row that type: an implicit log of
clicks or views, whose header has no rating column); a JSON line is validated exactly like a
``/feedback`` body (``api.schemas.FeedbackRequest``) and then by the schema
(``Semantics.validate``). Every event is marked ``unvetted``: a historical log joins no
slate this deployment served, which is how ``/feedback`` would classify it on a fresh
server, and a fixed trust makes the import learn the same whatever the learner's state.
Rating logs are stable-sorted by timestamp (as ``freshrec replay`` does); JSON lines keep
their file order. Reading is pure apart from the file itself: nothing touches Redis.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from api.schemas import FeedbackRequest
from engine.core.events import Event, InvalidEvent, Semantics
from engine.core.trust import UNVETTED
from simulators.datasets import TIME_UNITS, BadRow, csv_columns, detect_time_unit, iter_csv, iter_movietweetings

FORMATS = ("auto", "movietweetings", "csv", "jsonl")
_BY_SUFFIX = {".dat": "movietweetings", ".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "jsonl"}


@dataclass(frozen=True)
class Source:
    """How to read one log: ``path``, ``format`` (``movietweetings``, ``csv``, ``jsonl``),
    and for CSV the ``columns`` (user, item, rating, timestamp header names; rating None:
    no value column), ``delimiter``, ``time_unit`` of numeric timestamps (``s``, ``ms``,
    ``us``, ``ns``: resolved, never ``auto``; ``source_of`` detects it), ``event_column``
    (the column naming each row's event type) or ``event`` (the type of every row)."""

    path: Path
    format: str
    columns: tuple[str, str, str | None, str] = ("user_id", "item_id", "rating", "timestamp")
    delimiter: str = ","
    time_unit: str = "s"
    event_column: str | None = None
    event: str = "rating"

    def options(self) -> dict:
        """The parse options that decide the event sequence (part of the source id; an
        option at its default is left out, so a source keeps the id it had before the
        option existed)."""
        out = {"format": self.format}
        if self.format == "csv":
            out.update(columns=list(self.columns), delimiter=self.delimiter)
            if self.time_unit != "s":  # seconds: the id of a source read before units existed
                out.update(time_unit=self.time_unit)
            if self.event_column is not None:
                out.update(event_column=self.event_column)
            if self.event != "rating":
                out.update(event=self.event)
        return out


def source_of(path: str | Path, fmt: str = "auto", columns: str | None = None, delimiter: str = ",",
              time_unit: str = "auto", event_column: str | None = None, event: str | None = None) -> Source:
    """A ``Source`` from command-line values; ``auto`` picks the format by the file's suffix
    (``.dat`` MovieTweetings, ``.csv`` / ``.tsv`` CSV, ``.jsonl`` / ``.ndjson`` / ``.json``
    JSON lines). ``columns``: four names (user,item,rating,timestamp), three (no value
    column) or None (``simulators.datasets.csv_columns``: by the header).

    Raises:
        ValueError: an unknown format, a suffix ``auto`` cannot place, not three or four
            column names, an unknown ``time_unit`` (``auto`` or ``TIME_UNITS``; ``auto``
            reads a CSV's first rows, ``simulators.datasets.detect_time_unit``), both
            ``event_column`` and ``event``, either of them outside CSV, or a CSV without a
            value column and neither of them (what type would its rows be?).
        OSError: the CSV cannot be read.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = _BY_SUFFIX.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"--format: cannot tell the format of {path.name} by its suffix; give --format "
                             "movietweetings, csv or jsonl")
    if time_unit != "auto" and time_unit not in TIME_UNITS:
        raise ValueError(f"--time-unit {time_unit}: expected auto or one of {', '.join(TIME_UNITS)}")
    if event_column is not None and event is not None:
        raise ValueError("--event-column and --event: give one (a column naming each row's type, or the type of "
                         "every row)")
    if fmt != "csv":
        if event_column is not None or event is not None:
            raise ValueError("--event-column and --event need a CSV log (--format csv)")
        return Source(path, fmt)
    cols = csv_columns(path, columns, delimiter)
    if cols[2] is None and event_column is None and event is None:
        raise ValueError(f"{path.name} has no rating column: an implicit log; say what its rows are with --event "
                         "TYPE (every row, e.g. click) or --event-column NAME")
    if time_unit == "auto":
        time_unit = detect_time_unit(path, cols[3], delimiter)
    return Source(path, fmt, cols, delimiter, time_unit, event_column, event or "rating")


def source_id(source: Source) -> tuple[str, str]:
    """(id, sha256 hex) of a source: the id is a digest of the file's bytes and its parse
    options, so the same file read the same way resumes, and anything else starts anew.

    Raises:
        OSError: the file cannot be read.
    """
    content = hashlib.sha256()
    with open(source.path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            content.update(block)
    whole = hashlib.sha256(content.digest() + json.dumps(source.options(), sort_keys=True).encode())
    return whole.hexdigest()[:32], content.hexdigest()


def load_events(source: Source, semantics: Semantics) -> list[Event]:
    """Every event of ``source``, in the order they will enter the stream, validated
    against ``semantics`` (the deployment's event schema).

    Raises:
        simulators.datasets.BadRow: a line that cannot be read or that the schema refuses
            (``"<path>:<line>: <field>: <what>"``); nothing is imported then.
        KeyError: a CSV header without one of the named columns.
    """
    if source.format == "jsonl":
        return list(_jsonl(source.path, semantics))
    rows = (iter_movietweetings(source.path) if source.format == "movietweetings"
            else iter_csv(source.path, source.columns, source.delimiter, source.time_unit, source.event_column))
    names = dict(zip(("user_id", "item_id", "value", "timestamp"),
                     source.columns if source.format == "csv" else ("user", "item", "rating", "timestamp")))
    names["event"] = source.event_column or ("--event" if source.event != "rating" else "event")
    no_value = source.format == "csv" and source.columns[2] is None
    events = []
    for line, r in rows:
        kind = r.event if source.event_column else source.event
        value = None if no_value and source.event_column is None else r.value  # implicit: iter_csv's 1.0 is no value
        event = Event(user_id=r.user_id, item_id=r.item_id, kind=kind, value=value, timestamp=r.timestamp,
                      trust=UNVETTED)
        events.append((r.timestamp, _checked(semantics, event, source.path, line, names)))
    events.sort(key=lambda pair: pair[0])  # stable: ties keep file order
    return [e for _, e in events]


def _jsonl(path: Path, semantics: Semantics):
    with open(path, encoding="utf-8-sig") as fh:  # utf-8-sig: a BOM (Excel) is dropped
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                body = FeedbackRequest.model_validate_json(line)
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"]) or "body"
                raise BadRow(path, n, field, err["msg"]) from None
            event = Event(user_id=body.user_id, item_id=body.item_id, kind=body.event, value=body.value,
                          timestamp=body.timestamp, recommendation_id=body.recommendation_id,
                          context=body.context or None, trust=UNVETTED)
            yield _checked(semantics, event, path, n)


def _checked(semantics: Semantics, event: Event, path, line: int, names: dict | None = None) -> Event:
    try:
        return semantics.validate(event)
    except InvalidEvent as exc:
        field = (names or {}).get(exc.field, exc.field)
        raise BadRow(path, line, field, str(exc).partition(": ")[2]) from None
