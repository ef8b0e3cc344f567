"""Read a deployment's feedback stream and event schema from outside the server (the
``freshrec evaluate`` and export tools): synchronous redis-py, bounded batches, no consumer
group (reading never moves the learner's position)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from redis import Redis

from engine.config import EventType
from engine.core.events import Event, Semantics, from_fields
from engine.storage.keys import Keys


@dataclass
class StreamScan:
    """Counters of one ``events`` scan: entries read and entries that did not decode
    (skipped, as the learner dead-letters them)."""

    read: int = 0
    undecodable: int = 0


def stored_semantics(redis: Redis, keys: Keys) -> Semantics | None:
    """The event schema stored beside the stream (``FeedbackLog.ensure_schema``), or None
    when the deployment has not stored one yet."""
    raw = redis.get(keys.schema)
    if raw is None:
        return None
    return Semantics({name: EventType(**t) for name, t in json.loads(raw).items()})


def events(redis: Redis, keys: Keys, scan: StreamScan | None = None, start: str = "-",
           batch: int = 2000) -> Iterator[Event]:
    """Every event of the feedback stream from ``start`` (a stream id, inclusive), oldest
    first, read with ``XRANGE`` in batches of ``batch`` entries. Entries that do not decode
    are skipped and counted in ``scan``."""
    scan = scan if scan is not None else StreamScan()
    lo = start
    while True:
        entries = redis.xrange(keys.feedback, lo, "+", count=batch)
        if not entries:
            return
        for entry_id, fields in entries:
            scan.read += 1
            try:
                yield from_fields(entry_id, fields)
            except (KeyError, ValueError, TypeError, UnicodeDecodeError):
                scan.undecodable += 1
        last = entries[-1][0]
        last = last.decode() if isinstance(last, bytes) else last
        lo = "(" + last
        if len(entries) < batch:
            return
