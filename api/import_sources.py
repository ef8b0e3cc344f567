"""The events of a historical log, for ``freshrec import``: the ``replay`` formats
(MovieTweetings ``ratings.dat``, CSV with ``--columns`` / ``--delimiter``) and JSON lines of
``POST /feedback`` bodies, read into engine events and checked against the deployment's
event schema, with errors that name the line and the field.

Ratings become ``rating`` events (value, event time); a JSON line is validated exactly like a
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
from simulators.datasets import TIME_UNITS, BadRow, detect_time_unit, iter_csv, iter_movietweetings

FORMATS = ("auto", "movietweetings", "csv", "jsonl")
_BY_SUFFIX = {".dat": "movietweetings", ".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "jsonl"}


@dataclass(frozen=True)
class Source:
    """How to read one log: ``path``, ``format`` (``movietweetings``, ``csv``, ``jsonl``),
    and for CSV the ``columns`` (user, item, rating, timestamp header names), ``delimiter``
    and ``time_unit`` of numeric timestamps (``s``, ``ms``, ``us``, ``ns``: resolved, never
    ``auto``; ``source_of`` detects it)."""

    path: Path
    format: str
    columns: tuple[str, str, str, str] = ("user_id", "item_id", "rating", "timestamp")
    delimiter: str = ","
    time_unit: str = "s"

    def options(self) -> dict:
        """The parse options that decide the event sequence (part of the source id)."""
        out = {"format": self.format}
        if self.format == "csv":
            out.update(columns=list(self.columns), delimiter=self.delimiter)
            if self.time_unit != "s":  # seconds: the id of a source read before units existed
                out.update(time_unit=self.time_unit)
        return out


def source_of(path: str | Path, fmt: str = "auto", columns: str = "user_id,item_id,rating,timestamp",
              delimiter: str = ",", time_unit: str = "auto") -> Source:
    """A ``Source`` from command-line values; ``auto`` picks the format by the file's suffix
    (``.dat`` MovieTweetings, ``.csv`` / ``.tsv`` CSV, ``.jsonl`` / ``.ndjson`` / ``.json``
    JSON lines).

    Raises:
        ValueError: an unknown format, a suffix ``auto`` cannot place, not four column
            names, or an unknown ``time_unit`` (``auto`` or ``TIME_UNITS``; ``auto`` reads a
            CSV's first rows, ``simulators.datasets.detect_time_unit``).
        OSError: ``auto`` and the CSV cannot be read.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = _BY_SUFFIX.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"--format: cannot tell the format of {path.name} by its suffix; give --format "
                             "movietweetings, csv or jsonl")
    cols = tuple(c.strip() for c in columns.split(","))
    if len(cols) != 4 or not all(cols):
        raise ValueError("--columns needs four names: user,item,rating,timestamp")
    if time_unit != "auto" and time_unit not in TIME_UNITS:
        raise ValueError(f"--time-unit {time_unit}: expected auto or one of {', '.join(TIME_UNITS)}")
    if fmt != "csv":
        time_unit = "s"
    elif time_unit == "auto":
        time_unit = detect_time_unit(path, cols[3], delimiter)
    return Source(path, fmt, cols, delimiter, time_unit)  # type: ignore[arg-type]


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
            else iter_csv(source.path, source.columns, source.delimiter, source.time_unit))
    names = dict(zip(("user_id", "item_id", "value", "timestamp"),
                     source.columns if source.format == "csv" else ("user", "item", "rating", "timestamp")))
    events = []
    for line, r in rows:
        event = Event(user_id=r.user_id, item_id=r.item_id, kind="rating", value=r.value, timestamp=r.timestamp,
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
