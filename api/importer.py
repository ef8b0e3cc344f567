"""``freshrec import LOG``: learn a historical log at the learner's full speed.

The import is a client of the stream, not of the HTTP API: it reads the log
(``api.import_sources``: MovieTweetings, CSV, JSON lines of ``/feedback`` bodies, every line
checked before anything is appended), checks the event schema stored beside the stream
(the one ``freshrec serve`` refuses to differ from), and appends the events in pipelined
batches (``engine.storage.bulk_append``: one MULTI/EXEC of XADDs per batch, committed with
the source's resume marker). The learner of that Redis (``freshrec serve`` or ``freshrec
learner``, running or started later) learns them like any other entries. An interrupted
import (Ctrl-C, ``kill -9``, a Redis restart) re-run with the same file and options
continues after the last committed batch; a finished one appends nothing.

With ``--wait`` it waits until the learner has applied everything (its consumer group:
delivered that far, nothing unacknowledged) and prints events/s appended and learned.
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import time
from pathlib import Path

import redis
from redis.exceptions import RedisError
from tqdm import tqdm

from api.arg_types import delimiter, positive_int
from api.import_sources import FORMATS, load_events, source_id, source_of
from api.settings import Settings, from_args_or_exit
from engine.core.events import Semantics, stream_id_key
from engine.storage.bulk_append import BulkAppender, ConcurrentImport, ensure_schema, last_entry, learner_position
from engine.storage.feedback_log import SchemaMismatch
from engine.storage.keys import Keys
from engine.storage.redis_server import resolve
from simulators.datasets import TIME_UNITS, BadRow

WAIT_POLL_S = 0.2  # how often --wait asks the learner's group how far it got


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The import's own flags (the settings flags come from ``api.settings.add_flags``)."""
    p.add_argument("log", help="the log: MovieTweetings ratings.dat, CSV, or JSON lines of /feedback bodies")
    p.add_argument("--format", choices=FORMATS, default="auto", help="default: by the file's suffix")
    p.add_argument("--columns", default=None,
                   help="CSV header names for user,item,rating,timestamp, or user,item,timestamp for a log without "
                        "values; default user_id,item_id,rating,timestamp, without rating when the header has none")
    p.add_argument("--event-column", default=None, metavar="NAME",
                   help="a CSV column naming each row's event type (view, purchase, ...: the deployment's "
                        "engine.events declares their roles)")
    p.add_argument("--event", default=None, metavar="TYPE",
                   help="the event type of every CSV row (an implicit log of clicks or views: --event click)")
    p.add_argument("--delimiter", type=delimiter, default=",", help="CSV delimiter: one character, or \\t / tab")
    p.add_argument("--time-unit", choices=["auto", *TIME_UNITS], default="auto",
                   help="unit of a CSV's numeric timestamps (default auto: by their magnitude; ISO 8601 "
                        "date-times are read as they are)")
    p.add_argument("--batch", type=int, default=2000, help="events per pipelined transaction")
    p.add_argument("--allow-no-positives", action="store_true",
                   help="append a log even when none of its events is a positive under the schema (by default "
                   "refused: the schema is stored with the stream at the first append)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="import only the first N events")
    p.add_argument("--wait", action="store_true", help="wait until the learner has learned everything")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="S", help="--wait: give up after S seconds")
    p.add_argument("--json", dest="summary_json", default=None, metavar="FILE", help="write the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def import_log(args: argparse.Namespace, settings: Settings, before_batch=None) -> dict:
    """Run one import (see the module docstring); returns the summary.

    ``before_batch(start)`` (tests) is called before each batch is committed with the index
    of its first event.

    Raises:
        simulators.datasets.BadRow: a bad line (nothing appended).
        engine.storage.feedback_log.SchemaMismatch: the stream's schema differs.
        engine.storage.bulk_append.ConcurrentImport: another import of the same file runs.
        TimeoutError: ``--wait`` and the learner did not finish within ``--timeout``.
        redis.exceptions.RedisError: Redis unavailable (committed batches stay; re-run).
    """
    source = source_of(args.log, args.format, args.columns, args.delimiter, args.time_unit, args.event_column,
                       args.event)
    semantics = Semantics(settings.engine.events)
    t_read = time.perf_counter()
    events = load_events(source, semantics)
    whole = len(events)
    if args.limit is not None:
        events = events[: args.limit]
    read_s = time.perf_counter() - t_read
    positives = sum(semantics.is_positive(e.kind, e.value) for e in events)
    if events and not positives and not args.allow_no_positives:
        # the schema is stored with the stream at the first append: an import under the wrong
        # scale would fix it there and teach nothing, so refuse before anything is written
        values = [e.value for e in events if e.value is not None]
        seen = f"; its values range {min(values):g} to {max(values):g}" if values else ""
        kinds = {e.kind for e in events}
        declared = {k: v for k, v in semantics.describe().items() if k in kinds}
        raise ValueError(f"{source.path}: none of its {len(events):,} events is a positive under this deployment's "
                         f"schema {declared}{seen}: declare the data's scale (--rating-scale MIN:MAX "
                         "--positive-threshold X, or engine.events), or pass --allow-no-positives; nothing was "
                         "appended")
    sid, digest = source_id(source)
    keys = Keys(settings.key_prefix)
    target = resolve(settings.redis_url, settings.data_dir, settings.appendfsync)
    client = redis.Redis.from_url(target.url, socket_timeout=30, socket_connect_timeout=5)
    progress = not args.no_progress
    try:
        ensure_schema(client, keys, semantics)
        appender = BulkAppender(client, keys, sid, {"path": str(source.path), "format": source.format,
                                                     "sha256": digest})
        start = min(appender.appended(), len(events))
        t0 = time.perf_counter()
        bar = tqdm(total=len(events), initial=start, unit="ev", unit_scale=True, desc="append", disable=not progress,
                   mininterval=0.5, smoothing=0.1)
        marks: list[tuple[tuple[int, int], int]] = []  # (stream key of a batch's last entry, events appended)
        for first in range(start, len(events), max(1, args.batch)):
            chunk = events[first: first + args.batch]
            if before_batch is not None:
                before_batch(first)
            ids = appender.append(chunk, first)
            marks.append((stream_id_key(ids[-1]), first + len(chunk) - start))
            bar.update(len(chunk))
        bar.close()
        append_s = time.perf_counter() - t0
        if len(events) == whole:
            appender.finish(whole)
        appended = len(events) - start
        summary = {"source": str(source.path), "format": source.format, "sha256": digest, "source_id": sid,
                   "events": len(events), "appended": appended, "already_appended": start, "read_s": round(read_s, 3),
                   "append_s": round(append_s, 3),
                   "append_events_per_s": round(appended / append_s, 1) if appended and append_s else None,
                   "positives": positives,
                   "redis": "external" if settings.redis_url else f"embedded in {settings.data_dir}"}
        summary["learner"] = learner_position(client, keys) is not None
        if args.wait:
            summary.update(_wait_learned(client, keys, marks, t0, args.timeout, progress))
        return summary
    finally:
        client.close()
        target.close()


def _wait_learned(client: redis.Redis, keys: Keys, marks, t0: float, timeout_s: float, progress: bool) -> dict:
    """Wait until the learner's group has applied the stream up to its newest entry."""
    newest = last_entry(client, keys)
    if newest is None:
        return {"learned_s": 0.0, "learned_events_per_s": None}
    goal = stream_id_key(newest)
    total = marks[-1][1] if marks else 0
    bar = tqdm(total=total, unit="ev", unit_scale=True, desc="learn", disable=not progress, mininterval=0.5)
    deadline = time.monotonic() + timeout_s
    told = False
    ends = [m[0] for m in marks]
    while True:
        position = learner_position(client, keys)
        if position is None and not told:
            told = True
            tqdm.write("waiting for a learner on this Redis (freshrec serve or freshrec learner)", file=sys.stderr)
        if position is not None:
            delivered, pending = position
            done = marks[bisect.bisect_right(ends, delivered) - 1][1] if marks and delivered >= ends[0] else 0
            bar.update(done - bar.n)
            if delivered >= goal and pending == 0:
                break
        if time.monotonic() > deadline:
            bar.close()
            raise TimeoutError(f"the learner had not learned the import after {timeout_s:g} s")
        time.sleep(WAIT_POLL_S)  # a progress poll of another process, not synchronisation of ours
    bar.update(total - bar.n)
    bar.close()
    learned_s = time.perf_counter() - t0
    return {"learned_s": round(learned_s, 3),
            "learned_events_per_s": round(total / learned_s, 1) if total and learned_s else None}


def print_summary(s: dict) -> None:
    """The summary table."""
    rate = (lambda v: f"{v:,.0f} events/s" if v else "-")
    print()
    print(f"{'source':<16}{s['source']} ({s['format']}, sha256 {s['sha256'][:12]})")
    print(f"{'events':<16}{s['events']:,} ({s['positives']:,} positives), {s['appended']:,} appended now, "
          f"{s['already_appended']:,} already in the stream")
    print(f"{'append':<16}{s['append_s']:.2f} s{'':<4}{rate(s['append_events_per_s'])}")
    if "learned_s" in s:
        print(f"{'learned':<16}{s['learned_s']:.2f} s{'':<4}{rate(s['learned_events_per_s'])} "
              "(from the first append until the learner had applied everything)")
    if not s["learner"] and "learned_s" not in s:
        print("NOTE: no learner has read this stream yet: start freshrec serve (or freshrec learner) on the same "
              "--redis-url / --data-dir to learn it")
    if s["events"] and not s["positives"]:
        print("NOTE: no event is a positive under this deployment's schema (--rating-scale / --positive-threshold?)")


def main(args: argparse.Namespace, before_batch=None) -> int:
    """``freshrec import``: exit 0 when done, 2 on a bad log or option, 1 on other failures."""
    settings = from_args_or_exit(args)
    try:
        summary = import_log(args, settings, before_batch)
    except (BadRow, KeyError, ValueError) as exc:
        print(f"freshrec import: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    except (SchemaMismatch, ConcurrentImport, TimeoutError, RedisError) as exc:
        print(f"freshrec import: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    if args.summary_json:
        Path(args.summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary_json).write_text(json.dumps(summary, indent=2))
    return 0
