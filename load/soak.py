"""Soak test: a long mixed run at a fixed fraction of measured capacity; errors and memory.

    python load/soak.py [--minutes 10] [--fraction 0.8] [--items 100000] [--users 32]
                        [--capacity-s 20] [--out freshrec-out/soak]

In one run, against ``freshrec serve`` (API + learner, embedded Redis in a fresh temp dir)
with a catalogue of ``--items`` items loaded as in ``load/bench.py``:

1. Capacity: the ``mix`` scenario (5 /recommend : 1 /feedback, ``load/scenarios.py``)
   closed-loop with ``--users`` users for ``--capacity-s`` seconds; capacity C = its req/s.
2. Soak: the same mix for ``--minutes`` at ``--fraction`` x C, as an open-ish load: every
   Locust user paced with ``constant_throughput`` so that users x pace = fraction x C.
3. Every 10 s: server RSS (``/proc/<pid>/status`` VmRSS, the serving process; the embedded
   redis-server's too), events learned, stream lag, requests and errors of the window, and
   p99 of the window. A progress line per sample.

Memory growth = RSS at the end vs RSS one minute in (after warm-up: allocator arenas
settle), in % (the pass criterion); also the same on the medians of a minute of samples
each (minute 2 vs the last minute), which one sample landing on a checkpoint cannot swing,
and the growth split into heap (RssAnon) and shared memory (RssShmem: the snapshot buffer
the checkpoint packs into, as large as the last snapshot). The summary also reports what
the model learned meanwhile (new co-occurrence entries and interactions, from
``GET /model`` sizes) and the RSS growth per new entry of each, to tell a leak from the
model's own growth. Target (issue 5): 0 errors and RSS growth <= 5 %. Prints a summary
table, writes ``OUT/soak.json`` and ``OUT/soak.png`` (RSS, p99 and req/s over time).

Cores: 2, shared and unpinned, as in ``load/bench.py`` (Locust in this process, the server
and its redis-server in their own).
"""

from __future__ import annotations

import bench  # (first: Locust/gevent monkey-patching, as bench.py does)

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402
from locust import constant_throughput  # noqa: E402
from locust.env import Environment  # noqa: E402

import scenarios  # noqa: E402
from simulators.harness import rss_mb  # noqa: E402
from simulators.server_process import ServerProcess  # noqa: E402

SAMPLE_S = 10.0


def soak(url: str, server_pid: int, redis: int | None, rate: float, users: int, minutes: float) -> dict:
    """Run the paced mix; returns per-sample records and the totals."""
    class PacedMix(scenarios.Mix):
        wait_time = constant_throughput(rate / users)

    env = Environment(user_classes=[PacedMix], host=url)
    window: list[tuple[float, bool]] = []

    def on_request(request_type, name, response_time, response_length, exception=None, **kw):
        window.append((response_time, exception is not None))

    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users * 4)
    t0 = time.monotonic()
    samples = []
    total = errors = 0
    all_ms: list[float] = []
    while time.monotonic() - t0 < minutes * 60.0:
        gevent.sleep(SAMPLE_S)
        batch, window[:] = list(window), []
        ms = [m for m, failed in batch if not failed]
        n_err = sum(1 for _, failed in batch if failed)
        total += len(batch)
        errors += n_err
        all_ms.extend(ms)
        info = bench.model_info(url)
        rec = {"t_s": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(server_pid), 1),
               "rss_anon_mb": round(rss_mb(server_pid, "RssAnon"), 1),
               "rss_shmem_mb": round(rss_mb(server_pid, "RssShmem"), 1),
               "redis_rss_mb": round(rss_mb(redis), 1) if redis else None,
               "requests": len(batch), "rps": round(len(batch) / SAMPLE_S, 1), "errors": n_err,
               "p99_ms": round(float(np.percentile(ms, 99)), 2) if ms else None,
               "events_learned": info.get("events_learned"), "stream_lag": info.get("stream_lag"),
               "cooc_entries": (info.get("size") or {}).get("cooc_entries"),
               "interactions": (info.get("size") or {}).get("interactions")}
        samples.append(rec)
        print(f"  {rec['t_s']:>6.0f} s  {rec['rps']:>7.1f} req/s  p99 {rec['p99_ms']:>7} ms  errors {errors:>4}  "
              f"RSS {rec['rss_mb']:>7.1f} MB  redis {rec['redis_rss_mb']} MB  learned {rec['events_learned']}  "
              f"lag {rec['stream_lag']}", flush=True)
    runner.quit()
    env.events.request.remove_listener(on_request)
    return {"samples": samples, "requests": total, "errors": errors,
            "p50_ms": round(float(np.percentile(all_ms, 50)), 2), "p99_ms": round(float(np.percentile(all_ms, 99)), 2)}


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(t, [s["rss_mb"] for s in samples], label="freshrec serve")
    if samples and samples[0]["redis_rss_mb"] is not None:
        axes[0].plot(t, [s["redis_rss_mb"] for s in samples], label="redis-server")
    axes[0].set_ylabel("RSS (MB)")
    axes[0].legend()
    axes[1].plot(t, [s["p99_ms"] for s in samples])
    axes[1].set_ylabel("p99 per 10 s (ms)")
    axes[2].plot(t, [s["rps"] for s in samples])
    axes[2].set_ylabel("req/s")
    axes[2].set_xlabel("minutes")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--fraction", type=float, default=0.8)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=32)
    p.add_argument("--capacity-s", type=float, default=20.0)
    p.add_argument("--out", default="freshrec-out/soak")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_users = max(1, args.items // 10)
    scenarios.configure(n_users, args.items)
    data_dir = tempfile.mkdtemp(prefix="freshrec-soak-")
    server = ServerProcess(data_dir=data_dir, log_path=out / "server.log").start()
    try:
        catalogue = bench.load_catalogue(server.url, args.items, n_users)
        print(f"capacity: mix, closed loop, {args.users} users, {args.capacity_s:g} s", flush=True)
        capacity = bench.run_row("mix", server.url, scenarios.Mix, args.users, args.capacity_s)["row"]
        rate = args.fraction * capacity["rps"]
        print(f"soak: {args.minutes:g} min at {args.fraction:g} x {capacity['rps']} = {rate:.0f} req/s", flush=True)
        result = soak(server.url, server.proc.pid, next(iter(bench.redis_pids(data_dir)), None), rate, args.users, args.minutes)
    finally:
        server.stop(timeout_s=120)
        shutil.rmtree(data_dir, ignore_errors=True)
    samples = result["samples"]
    warm = next((s for s in samples if s["t_s"] >= 60.0), samples[0])
    end = samples[-1]
    growth = round(100.0 * (end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"], 2)
    redis_growth = (round(100.0 * (end["redis_rss_mb"] - warm["redis_rss_mb"]) / warm["redis_rss_mb"], 2)
                    if warm.get("redis_rss_mb") else None)
    achieved = round(result["requests"] / (end["t_s"] or 1), 1)
    # what the model legitimately learned meanwhile (co-occurrence pairs, interactions), and
    # the RSS growth per new co-occurrence entry: model growth, not a leak, if it is ~100 B
    # the same comparison on medians of a minute of samples each (1-2 min vs the last minute),
    # which a sample landing on a checkpoint's transient cannot swing
    first = [s for s in samples if 60.0 <= s["t_s"] < 120.0] or [warm]
    last = [s for s in samples if s["t_s"] > end["t_s"] - 60.0]

    def median(rows, key):
        return float(np.median([r[key] for r in rows]))

    growth_median = round(100.0 * (median(last, "rss_mb") - median(first, "rss_mb")) / median(first, "rss_mb"), 2)
    new_pairs = (end["cooc_entries"] or 0) - (warm["cooc_entries"] or 0)
    new_interactions = (end["interactions"] or 0) - (warm["interactions"] or 0)
    per_pair = round((end["rss_mb"] - warm["rss_mb"]) * 2**20 / new_pairs, 1) if new_pairs > 0 else None
    summary = {"minutes": args.minutes, "fraction": args.fraction, "capacity_rps": capacity["rps"],
               "target_rps": round(rate, 1), "achieved_rps": achieved, "requests": result["requests"],
               "errors": result["errors"], "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
               "rss_mb_at_1min": warm["rss_mb"], "rss_mb_end": end["rss_mb"], "rss_growth_pct": growth,
               "rss_growth_pct_minute_medians": growth_median,
               "anon_mb_growth": round(end["rss_anon_mb"] - warm["rss_anon_mb"], 1),
               "shmem_mb_growth": round(end["rss_shmem_mb"] - warm["rss_shmem_mb"], 1),
               "redis_rss_growth_pct": redis_growth,
               "events_learned_end": end["events_learned"], "stream_lag_end": end["stream_lag"],
               "cooc_entries_new": new_pairs, "interactions_new": new_interactions,
               "rss_bytes_per_new_cooc_entry": per_pair,
               "rss_bytes_per_new_interaction": (round((end["rss_mb"] - warm["rss_mb"]) * 2**20 / new_interactions, 1)
                                                 if new_interactions > 0 else None),
               "pass_errors": result["errors"] == 0, "pass_rss_growth_le_5pct": growth <= 5.0}
    print(f"\n{'soak summary':<28}{'value':>14}")
    for key, value in summary.items():
        print(f"{key:<28}{str(value):>14}")
    (out / "soak.json").write_text(json.dumps({"summary": summary, "catalogue": catalogue, "capacity_row": capacity,
                                                "samples": samples}, indent=2))
    plot(samples, out / "soak.png")
    print(f"wrote {out / 'soak.json'} and {out / 'soak.png'}")
    return 0 if summary["pass_errors"] and summary["pass_rss_growth_le_5pct"] else 1


if __name__ == "__main__":
    sys.exit(main())
