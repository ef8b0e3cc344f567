"""Import throughput: ``freshrec import`` of the bundled MovieTweetings log against the
learner's own rate, measured in one run so the ratio does not mix machine states.

Run::

    nice python load/bench_import.py [--events N] [--out freshrec-out/bench_import]

Rows, one after the other:

- ``bench_learner default``: ``load/bench_learner.py``'s ``default`` case as it is (60,000
  synthetic clicks XADDed first, then the in-process learner loop: XREADGROUP 1,024, apply,
  XACK, checkpoints);
- ``learner alone, MovieTweetings``: the same loop over the import's own events (the
  MovieTweetings ratings, read by ``api.import_sources``) appended first;
- ``freshrec import --wait``: a fresh embedded redis-server, a ``freshrec learner`` child
  process started and ready (its consumer group exists), then ``freshrec import ratings.dat
  --wait`` as a child process; its events/s = events / (first append until the learner's
  group has applied everything), its append rate alone beside it.

Prints a table and writes ``OUT/bench_import.json``; the acceptance ratio is the import's
learned events/s over the ``bench_learner default`` figure (>= 0.8).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the freshrec command and every child process run
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))

import redis  # noqa: E402

import bench_learner  # noqa: E402
from api.import_sources import load_events, source_of  # noqa: E402
from engine import EngineConfig  # noqa: E402
from engine.core.events import Semantics  # noqa: E402
from engine.roles.node import Node  # noqa: E402
from engine.storage.bulk_append import BulkAppender, learner_position  # noqa: E402
from engine.storage.keys import Keys  # noqa: E402
from engine.storage.redis_server import resolve  # noqa: E402
from simulators.datasets import BUNDLED  # noqa: E402
from simulators.harness import Child, project_env  # noqa: E402

LOG = BUNDLED / "ratings.dat"


def bench_learner_default(n: int = 60_000) -> dict:
    args = argparse.Namespace(events=n, users=10_000, items=100_000, batch=1024, profile=False)
    out = Path(tempfile.mkdtemp(prefix="freshrec-bench-import-"))
    try:
        row = asyncio.run(bench_learner.run_case("default", bench_learner.CASES["default"], args, out))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"row": "bench_learner default", "events": row["events"], "seconds": row["seconds"],
            "events_per_s": row["events_per_s"]}


async def _learner_alone(events) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="freshrec-bench-import-"))
    node = await Node.open(None, str(data_dir), engine=EngineConfig())
    try:
        await node.start()
        client = redis.Redis.from_url(node.target.url)
        appender = BulkAppender(client, Keys(), "bench")
        for first in range(0, len(events), 2000):
            appender.append(events[first: first + 2000], first)
        client.close()
        t0 = time.perf_counter()
        while node.recommender.events_learned < len(events):
            await node.role.step(block_ms=10, count=1024)
        wall = time.perf_counter() - t0
        await node.checkpointer.wait()
        return {"row": "learner alone, MovieTweetings", "events": len(events), "seconds": round(wall, 3),
                "events_per_s": round(len(events) / wall, 1), "errors": node.live.errors}
    finally:
        await node.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def learner_alone(events) -> dict:
    return asyncio.run(_learner_alone(events))


def freshrec_import(n: int, out: Path) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="freshrec-bench-import-"))
    target = resolve(None, data_dir / "redis")
    env = project_env(FRESHREC_SNAPSHOT_KEY=secrets.token_hex(16), FRESHREC_DATA_DIR=str(data_dir))
    learner = Child([sys.executable, "-m", "api.cli", "learner", "--redis-url", target.url],
                    log_path=out / "learner.log", env=env)
    client = redis.Redis.from_url(target.url)
    try:
        learner.wait_ready(lambda: learner_position(client, Keys()) is not None, 120, "running (consumer group)")
        summary_path = out / "import.json"
        cmd = [sys.executable, "-m", "api.cli", "import", str(LOG), "--redis-url", target.url, "--wait",
               "--no-progress", "--json", str(summary_path), "--limit", str(n)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"freshrec import failed: {done.stderr[-2000:]}")
        print(done.stdout)
        s = json.loads(summary_path.read_text())
        return {"row": "freshrec import --wait", "events": s["events"], "seconds": s["learned_s"],
                "events_per_s": s["learned_events_per_s"], "append_s": s["append_s"],
                "append_events_per_s": s["append_events_per_s"]}
    finally:
        client.close()
        learner.stop()
        target.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=None, help="import only the first N events (default: all 100,000)")
    p.add_argument("--bench-learner-events", type=int, default=60_000,
                   help="events of the bench_learner row (its default: 60,000)")
    p.add_argument("--out", default="freshrec-out/bench_import")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    events = load_events(source_of(LOG), Semantics(EngineConfig().events))
    if args.events:
        events = events[: args.events]
    rows = [bench_learner_default(args.bench_learner_events), learner_alone(events), freshrec_import(len(events), out)]
    base, alone, imported = (r["events_per_s"] for r in rows)
    print(f"\n{'row':<32}{'events':>9}{'seconds':>9}{'events/s':>11}")
    for r in rows:
        print(f"{r['row']:<32}{r['events']:>9}{r['seconds']:>9.2f}{r['events_per_s']:>11,.0f}")
    print(f"{'  (import: append alone)':<32}{'':>9}{rows[2]['append_s']:>9.2f}{rows[2]['append_events_per_s']:>11,.0f}")
    ratios = {"import_over_bench_learner": round(imported / base, 3),
              "import_over_learner_alone_same_events": round(imported / alone, 3)}
    print(f"\nimport / bench_learner default: {ratios['import_over_bench_learner']:.3f} (target >= 0.8)")
    print(f"import / learner alone on the same events: {ratios['import_over_learner_alone_same_events']:.3f}")
    result = {"rows": rows, "ratios": ratios, "target_ratio": 0.8}
    (out / "bench_import.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'bench_import.json'}")
    return 0 if ratios["import_over_bench_learner"] >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
