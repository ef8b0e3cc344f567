"""Champion/challenger end to end over HTTP: the synthetic world's users against a real
``freshrec serve`` (embedded Redis), with a challenger in shadow and automatic promotion.

The in-process experiment (``simulators.challenger_experiment``) drives the same
``GuardedRecommender`` the server runs, step by step on the world's event clock. Here
everything goes through the API a deployment uses: items are registered with ``PUT
/items``, every step is one ``POST /recommend`` for a user drawn by the world's activity and
one ``POST /feedback/batch`` with the world's position-biased clicks on that slate (each
carrying the slate's ``recommendation_id``) and, with the world's organic rate, an organic
click; the server logs its slates into the stream itself (``engine.log_slates``: served
items become impressions and logged decisions), learns in its own task, and decides
promotions by itself (``policies.auto_promote``). ``GET /policies`` is read every
``--poll`` steps. Times are the server's wall clock (the reward window is
``--reward-window-s``, 2 s: a slate's decision completes 2 s after it was served), and
recommendation ids are random, so a run is not reproducible draw for draw; the world's
users and clicks are seeded.

Arms as in the in-process experiment: ``better`` (champion popularity only, challenger the
learned ranker) stops at its first promotion; ``worse`` (roles swapped) runs all
``--steps`` and must not promote.

    python -m simulators.challenger_http [--seeds 1] [--first-seed 0] [--steps 24000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from tqdm import tqdm

from simulators.challenger_experiment import ARMS, CONFIGS
from simulators.server_process import ServerProcess
from simulators.synthetic import K, World, WorldConfig


def _flags(config: dict) -> list[str]:
    """``freshrec serve`` flags for EngineConfig overrides."""
    out = []
    for key, value in config.items():
        out += [f"--engine.{key.replace('_', '-')}", str(value)]
    return out


def run_arm(seed: int, arm: str, steps: int, epsilon: float, reward_window_s: float, poll: int,
            out: Path, progress: bool = True) -> dict:
    """One arm of one seed against a fresh server; the first promotion (step, events
    learned, complete decisions) and the swaps, checks and last estimates."""
    champion, challenger = (CONFIGS[name] for name in ARMS[arm])
    args = [*_flags(champion), "--engine.explore", "epsilon", "--engine.explore-epsilon", str(epsilon),
            "--engine.log-slates", "true", "--engine.reward-window-s", str(reward_window_s),
            "--policies.challenger", json.dumps(challenger), "--policies.auto-promote", "true"]
    w = World(WorldConfig(), seed)
    pos_bias = 1.0 / np.log2(np.arange(K) + 2.0)
    organic = np.exp(w.cfg.organic_skew * w.q - (w.cfg.organic_skew * w.q).max())
    rows = w.established
    p = w.activity[rows]
    users = rows[w.rng.choice(len(rows), size=steps, p=p / p.sum())]
    data = Path(tempfile.mkdtemp(prefix="freshrec-challenger-http-"))
    first, swaps = None, []
    t0 = time.perf_counter()
    with ServerProcess(data_dir=data, extra_args=args, log_path=out / f"server_{seed}_{arm}.log") as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as http:
        for item in w.item_ids:
            http.put(f"/items/{item}", json={}).raise_for_status()
        imps = clicks = 0
        bar = tqdm(total=steps, desc=f"seed {seed} {arm} (HTTP)", disable=not progress, mininterval=1.0,
                   leave=False)
        for step, row in enumerate(users.tolist()):
            user = w.user_ids[row]
            r = http.post("/recommend", json={"user_id": user, "k": K})
            r.raise_for_status()
            body = r.json()
            shown = [i["item_id"] for i in body["items"]]
            idx = np.array([w.item_index[i] for i in shown], dtype=np.int64)
            hit = w.rng.random(len(idx)) < w.click_prob(row, idx) * pos_bias[: len(idx)]
            events = [{"user_id": user, "item_id": shown[j], "event": "click",
                       "recommendation_id": body["recommendation_id"]} for j in np.flatnonzero(hit).tolist()]
            imps += len(shown)
            clicks += int(hit.sum())
            if w.rng.random() < w.cfg.organic_rate:
                q = organic * w.click_prob(row, None)
                j = min(int(np.searchsorted(np.cumsum(q), w.rng.random() * q.sum())), len(w.item_ids) - 1)
                events.append({"user_id": user, "item_id": w.item_ids[j], "event": "click"})
            if events:
                http.post("/feedback/batch", json={"events": events}).raise_for_status()
            bar.update(1)
            if (step + 1) % poll == 0 or step + 1 == steps:
                state = http.get("/policies").json()
                swaps = [h for h in state["history"] if h["kind"] in ("promotion", "rollback")]
                if swaps and first is None:
                    model = http.get("/model").json()
                    first = {"step": step + 1, "events_learned": model["events_learned"],
                             "decisions": swaps[0]["decisions"]}
                    if arm == "better":
                        break
        bar.close()
        state = http.get("/policies").json()
    shutil.rmtree(data, ignore_errors=True)
    return {"seed": seed, "arm": arm, "steps_served": step + 1, "promoted": first is not None, "first": first,
            "swaps": len(swaps), "checks": sum(1 for h in state["history"] if h["kind"] == "check"),
            "ctr_served": round(clicks / imps, 4) if imps else None, "decisions": state.get("decisions"),
            "estimates": state.get("estimates"),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=24_000, help="slates per arm (better stops at its promotion)")
    ap.add_argument("--epsilon", type=float, default=0.1)
    ap.add_argument("--reward-window-s", type=float, default=2.0)
    ap.add_argument("--poll", type=int, default=250, help="steps between GET /policies")
    ap.add_argument("--out", default="freshrec-out/challenger_http")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        for arm in ARMS:
            rows.append(run_arm(seed, arm, a.steps, a.epsilon, a.reward_window_s, a.poll, out))
            r = rows[-1]
            print(f"seed {seed} {arm:<6} promoted {r['promoted']} at "
                  f"{r['first'] if r['first'] else '-'}  swaps {r['swaps']}  checks {r['checks']}  "
                  f"served CTR {r['ctr_served']}  {r['seconds']} s", flush=True)
    print(f"\n{'seed':>4} {'arm':<7}{'promoted':>9}{'at slate':>10}{'events':>10}{'decisions':>10}{'checks':>8}"
          f"{'seconds':>9}")
    for r in rows:
        f = r["first"] or {}
        print(f"{r['seed']:>4} {r['arm']:<7}{str(r['promoted']):>9}{f.get('step', '-'):>10}"
              f"{f.get('events_learned', '-'):>10}{f.get('decisions', '-'):>10}{r['checks']:>8}{r['seconds']:>9}")
    better = [r for r in rows if r["arm"] == "better"]
    worse = [r for r in rows if r["arm"] == "worse"]
    print(f"better promoted {sum(r['promoted'] for r in better)}/{len(better)}, "
          f"worse promoted {sum(r['promoted'] for r in worse)}/{len(worse)}")
    (out / "challenger_http.json").write_text(json.dumps(rows, indent=2))
    print(f"wrote {out / 'challenger_http.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
