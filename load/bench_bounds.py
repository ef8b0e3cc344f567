"""Bounded state under a flood of unknown ids (issue 14, acceptance 3): RSS, model sizes and
``/recommend`` latency before and after.

Run::

    python load/bench_bounds.py [--users 1000000] [--items 100000] [--max-users N] [--max-items N]
                                [--requests 2000] [--out freshrec-out/bench/bounds]

Acceptance: 1,000,000 distinct unknown user ids and 100,000 unknown item ids sent through
``/feedback/batch``: RSS stays within the configured bound, ``/recommend`` latency unchanged.

One ``freshrec serve`` child process (``simulators.server_process.ServerProcess``) on a
scratch embedded Redis (``load/bench.py``'s ``scratch_redis_dir``), started with the state
bounds ``--engine.max-users`` (default ``--users // 10``), ``--engine.max-items`` (default
``--items // 2``) and ``--engine.user-ttl-s`` (default 0: LRU cap only), read back from
``GET /model`` ``bounds`` and printed. Steps:

1. warm-up: the model is filled to its caps (``--warm-users``, default = max users;
   ``--warm-items``, default = max items): ``2 * max(warm users, warm items)`` clicks, user
   ``u<k % warm users>``, item ``i<k>`` for the first ``warm items`` clicks, then a seeded
   uniform warm item; all learned (``GET /model/learned``).
2. BEFORE: server RSS (``/proc/<pid>/status`` VmRSS and VmHWM, ``simulators.harness.rss_mb``),
   the embedded redis-server's RSS (information only: the stream is Redis's, not the
   server's), ``GET /model`` ``size`` and ``bounds``, and ``--requests`` sequential
   ``POST /recommend`` (k=10) for seeded warm users, server-side time from the
   ``Server-Timing`` header (as ``load/bench.py``) and client-side time.
3. flood: ``--users`` clicks, each from a distinct new user ``x-u<j>``; one click in every
   ``users // items`` is on a distinct new item ``x-i<n>`` (``--items`` of them), the rest on
   seeded uniform warm items (a click whose new item is refused creates no user either:
   ``Recommender.apply``). Sent through ``/feedback/batch`` (``--batch``, at most 1,000:
   ``api.schemas.FeedbackBatch``), then waited for until learned.
4. AFTER: the same measurements; ``/recommend`` for users the model holds now (seeded among
   the most recent ``max users // 2`` flood users, whose clicks were on warm items).
   ``GET /users/{id}`` checks that the probe users are held (before: warm users; after: flood
   users, and the warm probe users are gone).

Before each measurement the bench waits until the last snapshot covers every learned event
(``--snapshot-every-s``, default 10, is passed to the server so that takes seconds, not the
default 60), so no checkpoint runs during the latency rows.

The RSS bound: the server has no RSS setting; its bounds are counts (``max_users``,
``max_items``). ``--rss-bound-mib`` sets the bound; unset, it is RSS BEFORE x 4/3: the
warm-up fills the state to the caps, and ``engine.core.eviction`` compacts dead user rows
once they are a quarter of all rows, so memory stays within ~4/3 of the live state.

Outputs: a table (before, after, after/before), a verdict line (RSS after <= bound, sizes
within the caps, ``/recommend`` server p99 ratio <= ``--max-p99-ratio``), ``OUT/bench_bounds.json``
and ``OUT/server.log``. Exit code 0 whatever the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))

import bench  # noqa: E402  (imports Locust, which monkey-patches the standard library for gevent)
import httpx  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from simulators.harness import rss_mb  # noqa: E402
from simulators.server_process import ServerProcess  # noqa: E402

MAX_BATCH = 1000  # api.schemas.FeedbackBatch: 1..1000 events
K = 10


# --------------------------------------------------------------------------- shared helpers
# (load/bench_scrape.py imports these)

def post_events(client: httpx.Client, batches, n_events: int, desc: str) -> str | None:
    """POST every batch (a list of event dicts) of the iterable to ``/feedback/batch``;
    the id of the last event accepted."""
    last = None
    with tqdm(total=n_events, desc=desc, unit="ev", unit_scale=True, file=sys.stderr) as bar:
        for events in batches:
            r = client.post("/feedback/batch", json={"events": events})
            r.raise_for_status()
            last = r.json()["event_ids"][-1]
            bar.update(len(events))
    return last


def wait_learned(client: httpx.Client, event_id: str, desc: str, target: int | None = None,
                 timeout_s: float = 3600.0) -> float:
    """Long-poll ``GET /model/learned`` until ``event_id`` is learned, with a tqdm bar of
    ``events_learned`` up to ``target`` (the count expected once it is); seconds waited.

    Raises:
        RuntimeError: not learned within ``timeout_s``.
    """
    t0 = time.monotonic()
    start = client.get("/model").json()["events_learned"]
    with tqdm(total=max((target or start) - start, 1), desc=desc, unit="ev", unit_scale=True, file=sys.stderr) as bar:
        while time.monotonic() - t0 < timeout_s:
            r = client.get("/model/learned", params={"event_id": event_id, "timeout_ms": 1000})
            r.raise_for_status()
            body = r.json()
            done = max(0, body["events_learned"] - start)  # a guard rollback lowers events_learned
            bar.total = max(bar.total, done)
            bar.n = done
            bar.refresh()
            if body["learned"]:
                return time.monotonic() - t0
    raise RuntimeError(f"event {event_id} not learned after {timeout_s:.0f} s")


def wait_snapshot(client: httpx.Client, timeout_s: float) -> bool:
    """Wait until the last snapshot covers every learned event (so no checkpoint is due
    while latency is measured); whether it did within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = client.get("/model").json()
        snap = m.get("last_snapshot") or {}
        if snap.get("events_learned") == m["events_learned"]:
            return True
        time.sleep(0.5)
    return False


def server_ms(response: httpx.Response) -> float:
    """Server-side time (ms) from freshrec's ``Server-Timing: app;dur=<ms>`` header (NaN if absent)."""
    timing = response.headers.get("server-timing", "")
    return float(timing.split("dur=")[1]) if "dur=" in timing else float("nan")


def pct(values, q: float) -> float | None:
    a = np.asarray(values, dtype=float)
    a = a[~np.isnan(a)]
    return round(float(np.percentile(a, q)), 3) if a.size else None


def time_recommend(client: httpx.Client, users: list[str], desc: str, until=None) -> dict:
    """Sequential ``POST /recommend`` (k=10), one per user of ``users`` (and, with ``until``,
    going round them again until ``until()`` is true); per-request samples
    ``(wall start s, server ms, client ms)`` and their percentiles."""
    samples: list[tuple[float, float, float]] = []
    errors = 0
    j = 0
    with tqdm(total=len(users), desc=desc, unit="req", file=sys.stderr) as bar:
        while j < len(users) or (until is not None and not until()):
            user = users[j % len(users)]
            wall, t = time.time(), time.perf_counter()
            r = client.post("/recommend", json={"user_id": user, "k": K})
            ms = (time.perf_counter() - t) * 1000.0
            if r.status_code == 200:
                samples.append((wall, server_ms(r), ms))
            else:
                errors += 1
            j += 1
            bar.total = max(bar.total, j)
            bar.update(1)
    srv = [s[1] for s in samples]
    cli = [s[2] for s in samples]
    return {"requests": len(samples), "errors": errors,
            "server_p50_ms": pct(srv, 50), "server_p99_ms": pct(srv, 99),
            "client_p50_ms": pct(cli, 50), "client_p99_ms": pct(cli, 99), "samples": samples}


def print_table(headers: list[str], rows: list[list], first: int = 30, width: int = 14) -> None:
    """A plain fixed-width table: the first column ``first`` wide, the others ``width``."""
    def cell(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    print(f"{headers[0]:<{first}}" + "".join(f"{h:>{width}}" for h in headers[1:]))
    for row in rows:
        print(f"{cell(row[0]):<{first}}" + "".join(f"{cell(v):>{width}}" for v in row[1:]))


# --------------------------------------------------------------------------- this bench

def warm_batches(warm_users: int, warm_items: int, batch: int, rng: np.random.Generator):
    n = 2 * max(warm_users, warm_items)
    for start in range(0, n, batch):
        ks = range(start, min(start + batch, n))
        picks = rng.integers(0, warm_items, len(ks)).tolist()
        yield [{"user_id": f"u{k % warm_users}", "item_id": f"i{k if k < warm_items else p}", "event": "click"}
               for k, p in zip(ks, picks)]


def flood_stride(users: int, items: int) -> int:
    return max(1, users // items) if items else 0


def flood_batches(users: int, items: int, warm_items: int, batch: int, rng: np.random.Generator):
    """Click j: new user ``x-u<j>``; every ``stride``-th click a new item ``x-i<j // stride>``
    (``items`` of them), the others a seeded uniform warm item."""
    stride = flood_stride(users, items)
    for start in range(0, users, batch):
        js = range(start, min(start + batch, users))
        picks = rng.integers(0, warm_items, len(js)).tolist()
        yield [{"user_id": f"x-u{j}",
                "item_id": f"x-i{j // stride}" if stride and j % stride == 0 and j // stride < items else f"i{p}",
                "event": "click"}
               for j, p in zip(js, picks)]


def held(client: httpx.Client, users: list[str]) -> int:
    """How many of ``users`` the model holds (``GET /users/{id}``: 200, or 404 when not)."""
    return sum(client.get(f"/users/{u}", params={"recent": 0}).status_code == 200 for u in users)


def snapshot_state(client: httpx.Client, server: ServerProcess, data_dir: str) -> dict:
    m = client.get("/model").json()
    rpid = next(iter(bench.redis_pids(data_dir)), None)
    return {"rss_mib": round(rss_mb(server.proc.pid), 1), "peak_rss_mib": round(rss_mb(server.proc.pid, "VmHWM"), 1),
            "redis_rss_mib": round(rss_mb(rpid), 1) if rpid else None,
            "events_learned": m["events_learned"], "size": m["size"], "bounds": m["bounds"],
            "validation_windows": m["guard"]["validation_windows"], "stream_lag": m["stream_lag"]}


def measure(client, server, data_dir, probe_users, desc, args) -> dict:
    if not wait_snapshot(client, args.snapshot_every_s * 3 + 30):
        print("  note: the last snapshot still lags the learned events; measuring anyway", file=sys.stderr)
    state = snapshot_state(client, server, data_dir)
    state["recommend"] = time_recommend(client, probe_users, f"{desc}: /recommend")
    state["probe_users_held"] = held(client, probe_users[:200])
    state["probe_users_checked"] = min(200, len(probe_users))
    state["rss_mib_after_recommend"] = round(rss_mb(server.proc.pid), 1)
    state["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return state


def ratio(a, b):
    return round(b / a, 3) if a and b is not None else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=1_000_000, help="distinct unknown user ids in the flood")
    p.add_argument("--items", type=int, default=100_000, help="distinct unknown item ids in the flood")
    p.add_argument("--max-users", type=int, default=None, help="engine.max_users (default --users // 10)")
    p.add_argument("--max-items", type=int, default=None, help="engine.max_items (default --items // 2)")
    p.add_argument("--user-ttl-s", type=float, default=0.0, help="engine.user_ttl_s (default 0: cap only)")
    p.add_argument("--warm-users", type=int, default=None, help="users of the warm-up (default: max users)")
    p.add_argument("--warm-items", type=int, default=None, help="items of the warm-up (default: max items)")
    p.add_argument("--guard", choices=["on", "off"], default="on", help="the server's guard (default on, as serve)")
    p.add_argument("--snapshot-every-s", type=float, default=10.0, help="snapshots.every_s passed to the server")
    p.add_argument("--requests", type=int, default=2000, help="/recommend requests per measurement")
    p.add_argument("--batch", type=int, default=MAX_BATCH, help=f"events per /feedback/batch (<= {MAX_BATCH})")
    p.add_argument("--rss-bound-mib", type=float, default=None,
                   help="RSS bound (MiB); default RSS before x 4/3 (state filled to the caps)")
    p.add_argument("--max-p99-ratio", type=float, default=1.25, help="'unchanged': after/before server p99 <= this")
    p.add_argument("--learn-timeout-s", type=float, default=7200.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="freshrec-out/bench/bounds")
    args = p.parse_args(argv)
    if not 1 <= args.batch <= MAX_BATCH:
        p.error(f"--batch must be 1..{MAX_BATCH}")
    max_users = args.users // 10 if args.max_users is None else args.max_users
    max_items = args.items // 2 if args.max_items is None else args.max_items
    warm_users = args.warm_users or max_users or 10_000
    warm_items = args.warm_items or max_items or 10_000
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t_start = time.monotonic()
    serve_flags = ["--engine.max-users", str(max_users), "--engine.max-items", str(max_items),
                   "--engine.user-ttl-s", str(args.user_ttl_s), "--guard", args.guard,
                   "--snapshot-every-s", str(args.snapshot_every_s)]
    result: dict = {"args": vars(args), "serve_flags": serve_flags}
    with bench.scratch_redis_dir("freshrec-bench-bounds-") as data_dir:
        server = ServerProcess(data_dir=data_dir, extra_args=serve_flags, log_path=out / "server.log")
        print(f"freshrec serve {' '.join(serve_flags)} (embedded Redis in {data_dir})", flush=True)
        server.start(timeout_s=120)
        try:
            with httpx.Client(base_url=server.url, timeout=60.0) as c:
                bounds = c.get("/model").json()["bounds"]
                print("state bounds (GET /model bounds): "
                      + ", ".join(f"{k}={bounds[k]}" for k in ("max_users", "max_items", "user_ttl_s",
                                                               "items_from_feedback")), flush=True)
                result["bounds_config"] = bounds
                result["rss_mib_empty"] = round(rss_mb(server.proc.pid), 1)

                n_warm = 2 * max(warm_users, warm_items)
                t = time.monotonic()
                learned0 = c.get("/model").json()["events_learned"]
                last = post_events(c, warm_batches(warm_users, warm_items, args.batch, rng), n_warm,
                                   f"warm-up ({warm_users:,} users, {warm_items:,} items)")
                wait_learned(c, last, "warm-up learned", learned0 + n_warm, args.learn_timeout_s)
                result["warm_up"] = {"users": warm_users, "items": warm_items, "events": n_warm,
                                     "seconds": round(time.monotonic() - t, 1)}

                warm_probe = [f"u{int(u)}" for u in rng.integers(0, warm_users, args.requests)]
                before = measure(c, server, data_dir, warm_probe, "before", args)

                stride = flood_stride(args.users, args.items)
                t = time.monotonic()
                learned0 = c.get("/model").json()["events_learned"]
                last = post_events(c, flood_batches(args.users, args.items, warm_items, args.batch, rng), args.users,
                                   f"flood ({args.users:,} new users, {args.items:,} new items)")
                sent_s = time.monotonic() - t
                learn_s = wait_learned(c, last, "flood learned", learned0 + args.users, args.learn_timeout_s)
                result["flood"] = {"events": args.users, "new_users": args.users,
                                   "new_items": min(args.items, len(range(0, args.users, stride))) if stride else 0,
                                   "new_item_every": stride, "accept_s": round(sent_s, 1),
                                   "learned_s": round(time.monotonic() - t, 1), "wait_after_accept_s": round(learn_s, 1)}

                # users the model holds now: recent flood users whose click was on a warm item
                recent = max(1, max_users // 2) if max_users else args.users
                lo = max(0, args.users - recent)
                cand = rng.integers(lo, args.users, args.requests * 2)
                cand = [int(j) for j in cand if not (stride and j % stride == 0 and j // stride < args.items)]
                flood_probe = [f"x-u{j}" for j in cand[: args.requests]]
                after = measure(c, server, data_dir, flood_probe, "after", args)
                after["warm_probe_users_held"] = held(c, warm_probe[:200])
        finally:
            server.stop()

    bound = args.rss_bound_mib or round(before["rss_mib"] * 4 / 3, 1)
    bound_note = ("--rss-bound-mib" if args.rss_bound_mib else
                  "RSS before x 4/3 (the warm-up fills the state to the caps; eviction compacts dead rows at 1/4)")
    rb, ra = before["recommend"], after["recommend"]
    sb, sa = before["size"], after["size"]
    bb, ba = before["bounds"], after["bounds"]
    rows = [
        ["RSS MiB (VmRSS)", before["rss_mib"], after["rss_mib"], ratio(before["rss_mib"], after["rss_mib"])],
        ["peak RSS MiB (VmHWM)", before["peak_rss_mib"], after["peak_rss_mib"],
         ratio(before["peak_rss_mib"], after["peak_rss_mib"])],
        ["redis-server RSS MiB (info)", before["redis_rss_mib"], after["redis_rss_mib"],
         ratio(before["redis_rss_mib"], after["redis_rss_mib"])],
        ["events learned", before["events_learned"], after["events_learned"], None],
        ["users held", sb["users"], sa["users"], ratio(sb["users"], sa["users"])],
        ["model users", sb["model_users"], sa["model_users"], ratio(sb["model_users"], sa["model_users"])],
        ["items held", sb["items"], sa["items"], ratio(sb["items"], sa["items"])],
        ["interactions", sb["interactions"], sa["interactions"], ratio(sb["interactions"], sa["interactions"])],
        ["cooc entries", sb["cooc_entries"], sa["cooc_entries"], ratio(sb["cooc_entries"], sa["cooc_entries"])],
        ["evicted users", bb["evicted_users"], ba["evicted_users"], None],
        ["refused items (events)", bb["refused_items"], ba["refused_items"], None],
        ["guard validation windows", before["validation_windows"], after["validation_windows"], None],
        ["probe users held", f"{before['probe_users_held']}/{before['probe_users_checked']}",
         f"{after['probe_users_held']}/{after['probe_users_checked']}", None],
        ["recommend server p50 ms", rb["server_p50_ms"], ra["server_p50_ms"], ratio(rb["server_p50_ms"], ra["server_p50_ms"])],
        ["recommend server p99 ms", rb["server_p99_ms"], ra["server_p99_ms"], ratio(rb["server_p99_ms"], ra["server_p99_ms"])],
        ["recommend client p50 ms", rb["client_p50_ms"], ra["client_p50_ms"], ratio(rb["client_p50_ms"], ra["client_p50_ms"])],
        ["recommend client p99 ms", rb["client_p99_ms"], ra["client_p99_ms"], ratio(rb["client_p99_ms"], ra["client_p99_ms"])],
        ["recommend errors", rb["errors"], ra["errors"], None],
    ]
    print(f"\nbounds: max_users={max_users:,} max_items={max_items:,} user_ttl_s={args.user_ttl_s:g} "
          f"guard={args.guard}; RSS empty {result['rss_mib_empty']} MiB; flood {args.users:,} new users, "
          f"{result['flood']['new_items']:,} new items (one click in {stride}); machine load (1 min) before "
          f"{before['loadavg_1m']}, after {after['loadavg_1m']} on {os.cpu_count()} cores")
    print_table(["metric", "before", "after", "after/before"], rows)
    p99_ratio = ratio(rb["server_p99_ms"], ra["server_p99_ms"])
    checks = {
        "rss_within_bound": after["rss_mib"] <= bound,
        "peak_rss_within_bound": after["peak_rss_mib"] <= bound,
        "users_within_cap": not max_users or sa["users"] <= max_users,
        "items_within_cap": not max_items or sa["items"] <= max_items,
        "p99_unchanged": p99_ratio is not None and p99_ratio <= args.max_p99_ratio,
        "no_recommend_errors": rb["errors"] == 0 and ra["errors"] == 0,
    }
    ok = all(checks.values())
    word = lambda passed: "PASS" if passed else "FAIL"  # noqa: E731
    print(f"\n{word(checks['rss_within_bound'])}: RSS after {after['rss_mib']} MiB "
          f"{'<=' if checks['rss_within_bound'] else '>'} bound {bound} MiB ({bound_note}); "
          f"peak {after['peak_rss_mib']} MiB {'<=' if checks['peak_rss_within_bound'] else '>'} bound")
    print(f"{word(checks['users_within_cap'] and checks['items_within_cap'])}: users held {sa['users']:,} "
          f"(cap {max_users:,}), items held {sa['items']:,} (cap {max_items:,}); warm probe users still held after "
          f"the flood: {after['warm_probe_users_held']}/{min(200, len(warm_probe))}")
    print(f"{word(checks['p99_unchanged'] and checks['no_recommend_errors'])}: /recommend server p99 "
          f"{rb['server_p99_ms']} -> {ra['server_p99_ms']} ms, ratio after/before {p99_ratio} "
          f"({'<=' if checks['p99_unchanged'] else '>'} {args.max_p99_ratio}); p50 ratio "
          f"{ratio(rb['server_p50_ms'], ra['server_p50_ms'])}; errors {rb['errors']} / {ra['errors']}")
    for state in (before, after):
        state["recommend"].pop("samples")
    result.update({"before": before, "after": after, "rows": [{"metric": r[0], "before": r[1], "after": r[2],
                                                                "ratio": r[3]} for r in rows],
                   "rss_bound_mib": bound, "rss_bound_note": bound_note, "checks": checks, "pass": ok,
                   "p99_ratio": p99_ratio, "cores": os.cpu_count(),
                   "note": ("/recommend: sequential requests (one in flight), known users; server time from the "
                            "Server-Timing header. The machine's cores are shared with the bench and redis-server."),
                   "wall_s": round(time.monotonic() - t_start, 1)})
    (out / "bench_bounds.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'bench_bounds.json'} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
