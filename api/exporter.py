"""``freshrec export``: slates for a list of users, as JSON lines in Amazon Personalize's batch
recommendations format or as CSV, from a running server or from the newest snapshot.

Users come from a file (one id a line) or from the model itself (``--users-from-model``).
Slates come either from a server (``--url``: ``POST /recommend`` per user, greedy, with
``--api-key`` for keyed servers; ``--users-from-model`` then pages through ``GET /users``,
which needs an admin key) or, without ``--url``, in process from the newest good snapshot in
Redis (``--redis-url`` / ``--data-dir`` and the snapshot key, as for ``freshrec serve``; no
server needed): the model as of that snapshot, minus any user erased after it.

Output lines (``--format jsonl``, Personalize's batch inference output)::

    {"input": {"userId": "u1"}, "output": {"recommendedItems": ["i9", "i2"], "scores": [1.2, 0.8]}, "error": null}

``--format csv``: ``user_id,rank,item_id,score``, one row per slot (rank from 1).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from engine.core.events import MAX_ID_CHARS

CONCURRENCY = 16  # requests in flight against a server


class NoSnapshot(LookupError):
    """The Redis holds no usable snapshot yet."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The export's own flags (the settings flags come from ``api.settings.add_flags``)."""
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", metavar="FILE", help="user ids, one a line")
    who.add_argument("--users-from-model", action="store_true", help="every user the model holds")
    p.add_argument("--url", default=None, help="a running freshrec server (default: the newest snapshot in Redis)")
    p.add_argument("--api-key", default=None, help="API key for --url (default: $FRESHREC_API_KEY)")
    p.add_argument("--k", type=int, default=10, help="items per slate (1..100)")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("--out", default="-", help="output file (default: standard output)")
    p.add_argument("--no-progress", action="store_true")


def read_users(path: str | Path) -> list[str]:
    """User ids of a file, one a line (surrounding whitespace and blank lines ignored).

    Raises:
        ValueError: an id longer than 128 characters (names the line).
    """
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            user = line.strip()
            if not user:
                continue
            if len(user) > MAX_ID_CHARS:
                raise ValueError(f"{path}:{n}: user_id: longer than {MAX_ID_CHARS} characters")
            out.append(user)
    return out


def personalize_line(user: str, items: list[str], scores: list[float], error: str | None = None) -> str:
    """One line of Amazon Personalize's batch recommendations output."""
    output = None if error else {"recommendedItems": items, "scores": [round(s, 6) for s in scores]}
    return json.dumps({"input": {"userId": user}, "output": output, "error": error}, separators=(",", ":"))


class Writer:
    """Writes slates as JSON lines or CSV rows to a text stream."""

    def __init__(self, fh, fmt: str) -> None:
        self.fh, self.fmt = fh, fmt
        self.csv = csv.writer(fh) if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow(["user_id", "rank", "item_id", "score"])

    def write(self, user: str, items: list[str], scores: list[float], error: str | None = None) -> None:
        if self.csv is None:
            self.fh.write(personalize_line(user, items, scores, error) + "\n")
        elif not error:
            self.csv.writerows([user, rank, item, round(score, 6)]
                               for rank, (item, score) in enumerate(zip(items, scores), 1))


# ------------------------------------------------------------------ from a snapshot

async def _snapshot_model(settings):
    """The newest good snapshot's model with the users erased after it erased; and its info."""
    from redis.asyncio import Redis

    from api.settings import secret
    from engine.core.recommender import Recommender, config_of
    from engine.storage.keys import Keys
    from engine.storage.redis_server import resolve
    from engine.storage.signing import load_key
    from engine.storage.snapshot_store import SnapshotStore
    from engine.storage.tombstones import Tombstones, erase_tombstoned

    target = resolve(settings.redis_url, settings.data_dir, settings.appendfsync)
    redis = Redis.from_url(target.url, socket_timeout=60)
    try:
        key = load_key(settings.data_dir, secret(settings.snapshot_key))
        keys = Keys(settings.key_prefix)
        loaded = await SnapshotStore(redis, keys, key).load_latest_good()
        if loaded is None:
            raise NoSnapshot("no snapshot in this Redis yet (the learner writes one every few thousand events, or "
                              "POST /snapshots)")
        info, arrays, meta = loaded
        rec = Recommender.from_state(arrays, meta, config_of(meta))
        stones = Tombstones(redis, keys, key)
        erase_tombstoned(rec, await stones.after(info.last_event_id), stones.digest)
        return rec, info
    finally:
        await redis.aclose()
        target.close()


def from_snapshot(settings, users: list[str] | None, k: int, writer: Writer, progress: bool) -> dict:
    """Write slates from the newest snapshot (in process); ``users`` None: every user it holds."""
    from engine.core.users import knows

    rec, info = asyncio.run(_snapshot_model(settings))
    users = users if users is not None else [u for u in rec.model.user_ids if rec.model.user_index.get(u) is not None]
    stats = {"source": f"snapshot v{info.version} ({info.events_learned} events, last entry {info.last_event_id})",
             "users": len(users), "unknown_users": 0, "errors": 0, "items": 0}
    for user in tqdm(users, unit="user", desc="export", disable=not progress, mininterval=0.5):
        ranked = rec.recommend(user, k)
        stats["unknown_users"] += not knows(rec, user)
        stats["items"] += len(ranked)
        writer.write(user, [r.item_id for r in ranked], [r.score for r in ranked])
    return stats


# ------------------------------------------------------------------ from a server

async def _server_users(http) -> list[str]:
    users, after = [], None
    while True:
        r = await http.get("/users", params={"limit": 10_000, **({"after": after} if after else {})})
        r.raise_for_status()
        page = r.json()
        users += page["users"]
        after = page["next"]
        if after is None:
            return users


async def _from_server(url: str, api_key: str | None, users: list[str] | None, k: int, writer: Writer,
                       progress: bool) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0,
                                 limits=httpx.Limits(max_connections=CONCURRENCY)) as http:
        if users is None:
            users = await _server_users(http)
        stats = {"source": url, "users": len(users), "unknown_users": None, "errors": 0, "items": 0}
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(user: str):
            async with gate:
                try:
                    r = await http.post("/recommend", json={"user_id": user, "k": k, "explore": {"kind": "none"}})
                except httpx.HTTPError as exc:
                    return user, None, f"{type(exc).__name__}: {exc}"
            if r.status_code != 200:
                return user, None, f"HTTP {r.status_code}: {r.text[:200]}"
            return user, r.json()["items"], None

        bar = tqdm(total=len(users), unit="user", desc="export", disable=not progress, mininterval=0.5)
        for start in range(0, len(users), 1000):  # in order, a thousand in flight at most
            for user, items, error in await asyncio.gather(*(one(u) for u in users[start: start + 1000])):
                stats["errors"] += error is not None
                items = items or []
                stats["items"] += len(items)
                writer.write(user, [i["item_id"] for i in items], [i["score"] for i in items], error)
                bar.update()
        bar.close()
        return stats


def export(args: argparse.Namespace, settings, out) -> dict:
    """Write the slates of ``args`` to the text stream ``out``; returns the summary.

    Raises:
        ValueError: a bad user file or ``--k``.
        NoSnapshot: no snapshot (without ``--url``).
        httpx.HTTPStatusError: ``GET /users`` refused (``--users-from-model`` needs an admin key).
    """
    if not 1 <= args.k <= 100:
        raise ValueError("--k: between 1 and 100")
    users = read_users(args.users) if args.users else None
    writer = Writer(out, args.format)
    progress = not args.no_progress
    t0 = time.perf_counter()
    if args.url:
        key = args.api_key or os.environ.get("FRESHREC_API_KEY")
        stats = asyncio.run(_from_server(args.url.rstrip("/"), key, users, args.k, writer, progress))
    else:
        stats = from_snapshot(settings, users, args.k, writer, progress)
    wall = time.perf_counter() - t0
    stats.update(wall_s=round(wall, 3), users_per_s=round(stats["users"] / wall, 1) if wall else None,
                 format=args.format, k=args.k)
    return stats


def print_summary(stats: dict, out: str, file=sys.stderr) -> None:
    """The summary table (on standard error, so standard output can carry the slates)."""
    print(f"\n{'source':<14}{stats['source']}", file=file)
    unknown = "" if stats["unknown_users"] is None else f", {stats['unknown_users']:,} unknown to the model " \
                                                        "(trending slates)"
    print(f"{'users':<14}{stats['users']:,}{unknown}, {stats['errors']:,} errors", file=file)
    print(f"{'items':<14}{stats['items']:,} ({stats['format']}, k={stats['k']}) -> {out}", file=file)
    print(f"{'wall':<14}{stats['wall_s']:.2f} s, {stats['users_per_s'] or 0:,.0f} users/s", file=file)


def main(args: argparse.Namespace) -> int:
    """``freshrec export``: exit 0, 2 on bad input, 1 when no model or server answers."""
    from api.settings import from_args

    settings = from_args(args)
    try:
        if args.out == "-":
            stats = export(args, settings, sys.stdout)
        else:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "w", newline="", encoding="utf-8") as fh:
                stats = export(args, settings, fh)
    except (ValueError, OSError) as exc:
        print(f"freshrec export: {exc}", file=sys.stderr)
        return 2
    except NoSnapshot as exc:
        print(f"freshrec export: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # httpx / redis failures: one line, not a traceback
        print(f"freshrec export: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print_summary(stats, args.out)
    return 0 if not stats["errors"] else 1
