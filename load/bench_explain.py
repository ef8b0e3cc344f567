"""What ``explain: true`` costs on ``POST /recommend``, in process (no HTTP).

Run::

    python load/bench_explain.py [--items 10000] [--users 1000] [--repeats 300] [--ranker learned]
                                 [--out freshrec-out/bench_explain]

Setup: ``load/bench_topk.build_recommender`` (seeded: tagged items, every item clicked once
plus Zipf-drawn clicks from log-normally active users). Timed per call with
``time.perf_counter`` (GC enabled, ``gc.collect()`` before each series), k = 10, rotating
through the users with histories:

    serve          ``Recommender.serve(user, 10)``: the slate alone
    serve_explain  the slate, then ``engine.core.explain.explain`` of its items (what the
                   serving function does with ``explain=True``)
    explain        ``explain`` alone, on a slate computed beforehand

Prints a table (calls, p50 / p99 / mean in µs) and the cost of explanations (mean and p50
of ``explain`` alone, and the difference of the means), and writes ``OUT/bench_explain.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_topk import build_recommender, time_calls  # noqa: E402
from engine.core.explain import explain  # noqa: E402

K = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cost of explain=true per request (µs), in process.")
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--factors", type=int, default=16)
    p.add_argument("--tags", type=int, default=20)
    p.add_argument("--repeats", type=int, default=300)
    p.add_argument("--ranker", choices=["learned", "blend"], default="learned")
    p.add_argument("--out", default="freshrec-out/bench_explain")
    return p.parse_args(argv)


def timed(fn, args: list) -> np.ndarray:
    """Per-call wall time in µs of ``fn(*a)`` for each ``a`` of ``args`` (5 warm-up calls;
    ``bench_topk.time_calls``)."""
    return time_calls(fn, args) * 1e3


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec, known, setup_s, n_events = build_recommender(args.items, args.factors, args.users, 1.0, args.tags,
                                                      args.ranker)
    print(f"\nsetup: {n_events} events in {setup_s:.1f} s; {len(rec.catalogue)} items; ranker {args.ranker}")
    users = [known[j % len(known)] for j in range(args.repeats)]
    slates = {u: rec.serve(u, K).item_ids for u in dict.fromkeys(users)}
    samples = {
        "serve": timed(lambda u: rec.serve(u, K), [(u,) for u in users]),
        "serve_explain": timed(lambda u: explain(rec, u, rec.serve(u, K).item_ids), [(u,) for u in users]),
        "explain": timed(lambda u: explain(rec, u, slates[u]), [(u,) for u in users]),
    }
    rows = []
    print(f"\n{'name':<14} {'calls':>6} {'p50_us':>9} {'p99_us':>9} {'mean_us':>9}")
    for name, us in samples.items():
        p50, p99 = np.percentile(us, [50, 99])
        rows.append({"name": name, "calls": int(us.size), "p50_us": round(float(p50), 1),
                     "p99_us": round(float(p99), 1), "mean_us": round(float(us.mean()), 1)})
        print(f"{name:<14} {us.size:>6} {p50:>9.1f} {p99:>9.1f} {us.mean():>9.1f}")
    by = {r["name"]: r for r in rows}
    diff = by["serve_explain"]["mean_us"] - by["serve"]["mean_us"]
    print(f"\nexplain costs {by['explain']['mean_us']:.0f} µs per request (mean; p50 {by['explain']['p50_us']:.0f} µs); "
          f"serve_explain - serve: {diff:.0f} µs (mean)")
    report = {"items": len(rec.catalogue), "users": len(known), "k": K, "ranker": args.ranker,
              "factors": args.factors, "rows": rows, "explain_mean_us": by["explain"]["mean_us"],
              "explain_p50_us": by["explain"]["p50_us"], "difference_of_means_us": round(diff, 1)}
    (out / "bench_explain.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'bench_explain.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
