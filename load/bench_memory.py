"""Memory per learned click, in-process, guard off and on: where the soak's RSS growth goes.

Run::

    python load/bench_memory.py [--items 100000] [--users 10000] [--clicks 150000]
                                [--zipf S] [--out freshrec-out/bench_memory]

For each case (``guard_off``, ``guard_on``) in a fresh child process (so RSS is not shared
between cases): a ``GuardedRecommender`` learns a warm-up like ``load/bench.py``'s
catalogue (item ``i<k>`` clicked by user ``u<k % users>``) plus 20,000 random clicks, then
``--clicks`` seeded random clicks (users uniform over ``--users``, items uniform over
``--items``, or Zipf(``--zipf``) popularity when given; all trusted, 1 s apart). Uniform
items are the worst case for co-occurrence growth: almost every click pairs items never
paired before. RSS (``/proc/self/status`` VmRSS) after a ``gc.collect()`` before
and after the measured clicks gives bytes of RSS per learned click; the model's own sizes
(co-occurrence entries, the size of its table, interactions, snapshot arrays) say what it
is made of. The co-occurrence table (and, guard on, its two rollback-point copies) is
reserved per item, so it is resident before the measured clicks and does not grow with them. Prints a table and writes ``OUT/bench_memory.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_case(guard: bool, items: int, users: int, clicks: int, zipf: float = 0.0) -> dict:
    import numpy as np

    from engine import EngineConfig, Event
    from engine.config import GuardConfig
    from engine.core.guard import GuardedRecommender
    from engine.core.trust import TRUSTED
    from simulators.harness import rss_mb

    g = GuardedRecommender(EngineConfig(), GuardConfig(enabled=guard))
    rng = np.random.default_rng(0)
    t = 1e9
    for k in range(items):
        g.apply(Event(f"u{k % users}", f"i{k}", "click", timestamp=t + k, trust=TRUSTED))
    t += items
    for k in range(20_000):
        g.apply(Event(f"u{rng.integers(users)}", f"i{rng.integers(items)}", "click", timestamp=t + k, trust=TRUSTED))
    t += 20_000
    gc.collect()
    r0, s0 = rss_mb(), g.recommender.stats()
    picks = (rng.zipf(zipf, clicks) - 1) % items if zipf else rng.integers(0, items, clicks)
    t0 = time.perf_counter()
    for k, item in enumerate(picks.tolist()):
        g.apply(Event(f"u{rng.integers(users)}", f"i{item}", "click", timestamp=t + k, trust=TRUSTED))
        if k % 25_000 == 0:
            print(f"\r  guard {'on' if guard else 'off'}: {k}/{clicks} clicks", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    gc.collect()
    r1, s1 = rss_mb(), g.recommender.stats()
    arrays = g.recommender.state(copy=False)[0]
    cooc = g.recommender.cooc
    return {
        "case": ("guard_on" if guard else "guard_off") + (f"_zipf{zipf}" if zipf else ""),
        "rss_mb_before": round(r0, 1), "rss_mb_after": round(r1, 1),
        "rss_bytes_per_click": round((r1 - r0) * 2**20 / clicks),
        "cooc_entries_new": s1["cooc_entries"] - s0["cooc_entries"],
        "cooc_entries": s1["cooc_entries"], "cooc_table_mb": round((cooc.keys[: cooc.n].nbytes + cooc.vals[: cooc.n].nbytes) / 2**20, 1),
        "interactions_new": s1["interactions"] - s0["interactions"],
        "snapshot_array_mb": round(sum(a.nbytes for a in arrays.values()) / 2**20, 1),
        "clicks_per_s": round(clicks / (time.perf_counter() - t0)),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--clicks", type=int, default=150_000)
    p.add_argument("--zipf", type=float, default=0.0, help="Zipf exponent of item popularity (default: uniform)")
    p.add_argument("--out", default="freshrec-out/bench_memory")
    p.add_argument("--case", choices=["guard_off", "guard_on"], help=argparse.SUPPRESS)  # child mode
    args = p.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case == "guard_on", args.items, args.users, args.clicks, args.zipf)))
        return 0
    rows = []
    for case in ("guard_off", "guard_on"):
        out = subprocess.run([sys.executable, __file__, "--case", case, "--items", str(args.items),
                              "--users", str(args.users), "--clicks", str(args.clicks), "--zipf", str(args.zipf)],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    cols = ["case", "rss_mb_before", "rss_mb_after", "rss_bytes_per_click", "cooc_entries_new", "cooc_entries",
            "cooc_table_mb", "interactions_new", "snapshot_array_mb", "clicks_per_s"]
    print("  ".join(f"{c:>20}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]:>20}" for c in cols))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_memory.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out_dir / 'bench_memory.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
