"""Top-10 serving latency of the engine on a 100k-item catalogue, against two references.

Run::

    python load/bench_topk.py [--items 100000] [--factors 16] [--users 2000] [--repeats 1000]
                              [--river-calls 5] [--zipf 1.0] [--tags 20] [--out freshrec-out/bench_topk]

Setup (seeded, deterministic): an ``engine.recommender.Recommender`` learns from synthetic
``click`` events with increasing timestamps (1 s apart). Every catalogue item gets one click
(so all ``--items`` items are learned, i.e. have a River latent vector and a serving row),
plus as many again drawn from a Zipf popularity (``--zipf`` exponent, default 1.0), so the
trend and co-occurrence signals have heavy heads (the co-occurrence lists of head items
grow large, which is what the ``engine`` row pays for). Clicks come from ``--users`` users with
log-normally skewed activity, so every benchmark user has a history (seen items excluded
from the slate, co-occurrence term active). Before the clicks, every item is PUT (an
``item`` event) with 1 or 2 of ``--tags`` tags (seeded; ``--tags 0``: no item events and no
business-rule rows).

Timed (``time.perf_counter`` around each single call; all figures in milliseconds per
top-10 query; ``gc.collect()`` before each series, GC left enabled while timing):

    engine       ``Recommender.recommend(user, k=10)`` for known users, rotating through
                 the users with histories. The full production read path: trend +
                 co-occurrence + MF scores, exclusion of seen items, top-k.
    engine_all_features  the same calls with the ranker that reads every feature group
                 forced to serve (``Ranker.forced``): serving skips the factor candidate
                 source's catalogue scan when the serving ranker does not read the factor
                 score, so this row is the cost when it does.
    engine_cold  ``Recommender.recommend(unknown_user, k=10)``: cold start (trend + item
                 bias, no personal terms).
    engine_tag_filter  ``Recommender.serve(user, k=10, rules=...)`` with a tag filter
                 (``include_tags`` any of 5 of the ``--tags`` tags, ~40 % of the catalogue):
                 the serving path under business rules (``engine.core.ruled_slates``: the
                 filter mask, candidates restricted to it and refilled, greedy fill).
    engine_filter_cap  the same plus a diversity cap of 3 items per tag: the acceptance
                 row of issue 16 (target p99 <= 1.5 ms at 100k items, server side; this is
                 the engine's share, in process).
    numpy_limit  the bare floor of a matrix-factorisation top-k: ``s = V @ u`` with
                 ``V = model.item_factors[:n]`` (float64, (n, factors)) and a learned user
                 vector ``u``, then ``np.argpartition(s, n - 10)[n - 10:]`` and a sort of
                 those 10. No bias, trend, co-occurrence or exclusions.
    river_rank   River's own ``Ranker.rank(user, items)`` on the BiasedMF (one
                 ``predict_one`` per item in Python, then a full sort), top 10 taken from
                 the result. Only ``--river-calls`` calls (it takes ~0.5 s each) and on a
                 ``copy.deepcopy`` of the model, because ``predict_one`` inserts state for
                 unknown ids.

Outputs: a table on stdout (calls, p50/p95/p99/mean in ms), the ratios engine/numpy_limit
and river_rank/engine (p50 over p50), a PASS/FAIL line for the target engine p50 <= 2.0 ms
and one for engine_filter_cap p99 <= 1.5 ms,
``OUT/bench_topk.json`` and ``OUT/bench_topk.png`` (box plot per method, log scale).
The exit code is 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the freshrec command runs (api/cli.py)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.core.events import Event  # noqa: E402
from engine.core.recommender import Recommender  # noqa: E402

K = 10
TARGET_MS = 2.0
RULES_TARGET_P99_MS = 1.5  # engine_filter_cap (issue 16)
FILTER_TAGS = 5  # tags of the include_tags filter (of --tags)
MAX_PER_TAG = 3
T0 = 1_700_000_000.0  # first event time, unix s


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Top-10 latency benchmark (ms per query).")
    p.add_argument("--items", type=int, default=100_000, help="catalogue size")
    p.add_argument("--factors", type=int, default=16, help="MF latent dimension")
    p.add_argument("--users", type=int, default=2000, help="users with click histories")
    p.add_argument("--repeats", type=int, default=1000,
                   help="timed calls per fast method (1000: a p99 is the 10th slowest call, not the 2nd)")
    p.add_argument("--river-calls", type=int, default=5, help="timed calls of River's rank()")
    p.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of item popularity")
    p.add_argument("--tags", type=int, default=20, help="tags items are PUT with, 1-2 each (0: none, no rule rows)")
    p.add_argument("--out", default="freshrec-out/bench_topk", help="output directory")
    return p.parse_args(argv)


def synthetic_clicks(n_items: int, n_users: int, zipf: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(user_idx, item_idx) arrays of clicks: every item once + the same number Zipf-drawn."""
    popularity_rank = rng.permutation(n_items)  # item -> its popularity rank
    p_item = (popularity_rank + 1.0) ** -zipf
    p_item /= p_item.sum()
    items = np.concatenate([rng.permutation(n_items), rng.choice(n_items, size=n_items, p=p_item)])
    rng.shuffle(items)
    activity = rng.lognormal(0.0, 1.0, n_users)
    activity /= activity.sum()
    users = rng.choice(n_users, size=items.size, p=activity)
    users[:n_users] = np.arange(n_users)  # every user clicks at least once
    return users, items


def put_tagged_items(rec: Recommender, n_items: int, n_tags: int, rng: np.random.Generator) -> None:
    """PUT items i0..i{n-1}, each with 1 or 2 distinct tags t0..t{n_tags-1} (uniform)."""
    first = rng.integers(n_tags, size=n_items)
    second = (first + 1 + rng.integers(max(1, n_tags - 1), size=n_items)) % n_tags
    two = rng.random(n_items) < 0.5
    for i, (a, b, both) in enumerate(zip(first.tolist(), second.tolist(), two.tolist())):
        tags = [f"t{a}", f"t{b}"] if both and n_tags > 1 else [f"t{a}"]
        rec.apply(Event("", f"i{i}", "item", meta={"title": None, "tags": tags}))


def build_recommender(n_items: int, n_factors: int, n_users: int, zipf: float = 1.0,
                      n_tags: int = 0, ranker: str = "learned") -> tuple[Recommender, list[str], float, int]:
    """A Recommender (``ranker``) that has learned every item (PUT with tags first when
    ``n_tags``); returns (rec, known users, setup s, events)."""
    from engine.config import EngineConfig

    rng = np.random.default_rng(0)
    rec = Recommender(EngineConfig(n_factors=n_factors, seed=42, ranker=ranker))
    if n_tags:
        put_tagged_items(rec, n_items, n_tags, np.random.default_rng(1))
    users, items = synthetic_clicks(n_items, n_users, zipf, rng)
    n_events = items.size
    start = time.perf_counter()
    step = max(1, n_events // 50)
    for j, (u, i) in enumerate(zip(users.tolist(), items.tolist())):
        rec.apply(Event(f"u{u}", f"i{i}", "click", timestamp=T0 + j))
        if j % step == 0 or j == n_events - 1:
            el = time.perf_counter() - start
            print(f"\rlearning events {j + 1:>8}/{n_events}  {el:6.1f} s", end="", flush=True)
    print()
    setup_s = time.perf_counter() - start
    n = len(rec.catalogue)
    learned = rec.model.n_items
    if n != n_items or learned != n_items:
        raise RuntimeError(f"expected {n_items} learned items, catalogue={n} learned={learned}")
    known = [u for u in (f"u{k}" for k in range(n_users)) if rec.knows_user(u)]
    return rec, known, setup_s, n_events


def time_calls(fn, args_list: list, warmup: int = 5) -> np.ndarray:
    """Per-call wall time in ms of ``fn(*args)`` for each entry of ``args_list``."""
    for a in args_list[:warmup]:
        fn(*a)
    gc.collect()
    out = np.empty(len(args_list))
    clock = time.perf_counter
    for j, a in enumerate(args_list):
        t = clock()
        fn(*a)
        out[j] = clock() - t
    return out * 1e3


def numpy_top10(V: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The floor: scores by one mat-vec, argpartition, sort of the k candidates."""
    n = V.shape[0]
    s = V @ u
    cand = np.argpartition(s, n - K)[n - K:]
    return cand[np.argsort(-s[cand])]


def summarise(name: str, ms: np.ndarray) -> dict:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"name": name, "calls": int(ms.size), "p50_ms": round(float(p50), 4),
            "p95_ms": round(float(p95), 4), "p99_ms": round(float(p99), 4),
            "mean_ms": round(float(ms.mean()), 4)}


def print_table(rows: list[dict]) -> None:
    print(f"{'name':<18} {'calls':>6} {'p50_ms':>10} {'p95_ms':>10} {'p99_ms':>10} {'mean_ms':>10}")
    for r in rows:
        print(f"{r['name']:<18} {r['calls']:>6} {r['p50_ms']:>10.3f} {r['p95_ms']:>10.3f} "
              f"{r['p99_ms']:>10.3f} {r['mean_ms']:>10.3f}")


def plot(samples: dict[str, np.ndarray], path: Path, n_items: int, n_factors: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.boxplot([samples[k] for k in names], whis=(1, 99), showfliers=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
    ax.set_yscale("log")
    ax.axhline(TARGET_MS, color="tab:red", ls="--", lw=1, label=f"target {TARGET_MS} ms (engine p50)")
    ax.set_ylabel("top-10 latency per call (ms, log scale)")
    ax.set_title(f"Top-10 latency, {n_items:,} items, {n_factors} factors (whiskers p1-p99)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"numpy {np.__version__}; items={args.items} factors={args.factors} users={args.users}")

    rec, known, setup_s, n_events = build_recommender(args.items, args.factors, args.users, args.zipf, args.tags)
    n = len(rec.catalogue)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    pairs = rec.cooc.entries()
    print(f"setup: {n_events} events in {setup_s:.1f} s; {n} items, {len(known)} users with history; "
          f"{pairs} co-occurrence entries; peak RSS {rss_mb:.0f} MB")

    samples: dict[str, np.ndarray] = {}
    reps = args.repeats
    samples["engine"] = time_calls(rec.recommend, [(known[j % len(known)], K) for j in range(reps)])

    # the same requests with the ranker that reads every feature group forced to serve: the cost
    # when the stream's selection picks a ranker that reads the factor score (serving then also
    # scans the whole catalogue for the factor candidate source)
    serving = rec.ranker.serving
    rec.ranker.forced = len(rec.ranker.models) - 1
    samples["engine_all_features"] = time_calls(rec.recommend, [(known[j % len(known)], K) for j in range(reps)])
    rec.ranker.forced = None
    rec.ranker._cache.clear()
    print(f"serving ranker: candidate {serving} (groups {rec.ranker.weights()['candidates'][serving]['groups']})")

    cold = [(f"cold-{j}", K) for j in range(reps)]
    samples["engine_cold"] = time_calls(rec.recommend, cold)
    if any(rec.knows_user(u) for u, _ in cold) or rec.model.n_users != len(known):
        print("WARNING: recommend() created state for unknown users")

    if args.tags:
        from engine.core.diversity import Diversity
        from engine.core.filters import Filters, TagFilter
        from engine.core.rules import Rules

        tag_filter = Filters(include_tags=TagFilter(tuple(f"t{j}" for j in range(min(FILTER_TAGS, args.tags)))))
        rules = {"engine_tag_filter": Rules(filters=tag_filter),
                 "engine_filter_cap": Rules(filters=tag_filter, diversity=Diversity(MAX_PER_TAG))}
        for name, r in rules.items():
            samples[name] = time_calls(lambda user, k, r=r: rec.serve(user, k, rules=r),
                                       [(known[j % len(known)], K) for j in range(reps)])
        short = [len(rec.serve(u, K, rules=rules["engine_filter_cap"]).item_ids) for u in known[:20]]
        if min(short) < K:
            print(f"WARNING: a filtered, capped slate held fewer than {K} items ({min(short)})")

    V = rec.model.item_factors[:n]
    assert V.dtype == np.float64 and V.flags.c_contiguous and V.shape == (n, args.factors)
    vecs = [rec.model.user_vector(known[j % len(known)]) for j in range(reps)]
    samples["numpy_limit"] = time_calls(numpy_top10, [(V, u) for u in vecs])

    if args.river_calls > 0:  # --river-calls 0 skips the (slow) River row
        mf = copy.deepcopy(rec.model.mf)
        item_ids = list(rec.catalogue.ids)
        river_args = [(known[j % len(known)], item_ids) for j in range(args.river_calls)]
        print(f"river_rank: {args.river_calls} calls over {len(item_ids)} items ...", flush=True)
        samples["river_rank"] = time_calls(lambda user, items: mf.rank(user, items)[:K], river_args, warmup=1)

    rows = [summarise(name, ms) for name, ms in samples.items()]
    by = {r["name"]: r for r in rows}
    print()
    print_table(rows)
    engine_p50 = by["engine"]["p50_ms"]
    print(f"\nratio engine/numpy_limit (p50): {engine_p50 / by['numpy_limit']['p50_ms']:.1f}x")
    if "river_rank" in by:
        print(f"ratio river_rank/engine  (p50): {by['river_rank']['p50_ms'] / engine_p50:.0f}x")
    passed = engine_p50 <= TARGET_MS
    print(f"{'PASS' if passed else 'FAIL'}: engine p50 {engine_p50:.3f} ms (target <= {TARGET_MS} ms)")
    rules_pass = None
    if "engine_filter_cap" in by:
        p99 = by["engine_filter_cap"]["p99_ms"]
        rules_pass = p99 <= RULES_TARGET_P99_MS
        print(f"ratio engine_filter_cap/engine (p50): {by['engine_filter_cap']['p50_ms'] / engine_p50:.2f}x")
        print(f"{'PASS' if rules_pass else 'FAIL'}: engine_filter_cap p99 {p99:.3f} ms "
              f"(target <= {RULES_TARGET_P99_MS} ms at 100k items; in process, the engine's share of the server time)")

    report = {
        "items": n,
        "factors": args.factors,
        "users": len(known),
        "events": n_events,
        "zipf": args.zipf,
        "cooc_entries": pairs,
        "peak_rss_mb_after_setup": round(rss_mb),
        "setup_s": round(setup_s, 2),
        "serving_ranker": serving,
        "rows": rows,
        "engine_median_ms": engine_p50,
        "target_ms": TARGET_MS,
        "pass": bool(passed),
        "tags": args.tags,
        "rules_target_p99_ms": RULES_TARGET_P99_MS,
        "rules_pass": rules_pass,
    }
    (out / "bench_topk.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(samples, out / "bench_topk.png", n, args.factors)
    print(f"wrote {out / 'bench_topk.json'} and {out / 'bench_topk.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
