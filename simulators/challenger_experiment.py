"""Champion/challenger where the truth is known: is a truly better challenger promoted, and
a worse one never?

In the synthetic world (``simulators.synthetic``, default world) the engine serves with
epsilon-greedy logging (``explore_epsilon``, default 0.1; ``policies.share`` of every slot,
default 0.05, drawn from the challenger's policy, ``engine.core.mixture``) and runs a challenger in shadow
with ``auto_promote`` (``engine.core.champion.Arena``: the challenger's SNIPS estimate on
the champion's logged decisions must be higher and its 95 % lower bound above the
champion's, Personalizer's rule, and the paired test of its gain must pass at the level
``policies.spending`` gives the check, ``engine.core.improvement``; checked every
``check_every`` complete decisions). Two
arms per seed, roles swapped:

- ``better``: champion = popularity only (the blend with its co-occurrence and factor
  weights at 0), challenger = the learned River ranker (the default engine);
- ``worse``: champion = the learned ranker, challenger = popularity only.

Which of the two is truly better is measured, not assumed: each configuration also serves
the same seeded traffic alone (no challenger), and its cumulative CTR is the truth. Reported
per arm: how many seeds promoted, after how many slates / events / complete decisions (the
first promotion), and how often a promotion was followed by another swap.

    python -m simulators.challenger_experiment [--seeds 10] [--first-seed 0] [--steps 12000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

from engine.config import PolicyConfig
from simulators.synthetic import Simulation, World, WorldConfig

POPULARITY = {"ranker": "blend", "cooc_weight": 0.0, "mf_weight": 0.0}
LEARNED = {"ranker": "learned", "cooc_weight": 6.0, "mf_weight": 1.0}  # the defaults, stated: overrides of the champion
CONFIGS = {"popularity": POPULARITY, "learned": LEARNED}
ARMS = {"better": ("popularity", "learned"), "worse": ("learned", "popularity")}


def serve(seed: int, steps: int, champion: dict, challenger: dict | None, epsilon: float,
          label: str, progress: bool = True, spending: str = "information") -> dict:
    """``steps`` slates of seeded traffic served by ``champion`` (EngineConfig overrides)
    with ``challenger`` in shadow (None: alone; ``spending``: ``PolicyConfig.spending``);
    cumulative CTR and every swap."""
    w = World(WorldConfig(), seed)
    engine = {**champion, "explore": "epsilon", "explore_epsilon": epsilon}
    policies = PolicyConfig(challenger=challenger, auto_promote=True, spending=spending) if challenger else None
    sim = Simulation(w, guard=False, engine=engine, policies=policies)
    swaps: list[dict] = []
    arena = sim.g.arena
    seen = [0]

    def on_step() -> None:
        if len(arena.history) != seen[0]:
            for h in arena.history[seen[0]:]:
                if h["kind"] in ("promotion", "rollback"):
                    swaps.append({"step": sim.step_no, "events": sim.events, **h})
            seen[0] = len(arena.history)

    with tqdm(total=steps, desc=label, disable=not progress, mininterval=1.0, leave=False) as bar:
        sim.normal_traffic(steps, w.established, bar=bar, on_step=on_step)
    imps, clicks = sum(sim.est_imps), sum(sim.est_clicks)
    return {"ctr": clicks / imps if imps else None, "swaps": swaps,
            "checks": sum(1 for h in arena.history if h["kind"] == "check"),
            "last_estimates": arena.estimates(fresh=True) if challenger else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--steps", type=int, default=12_000, help="slates served per run")
    ap.add_argument("--epsilon", type=float, default=0.1)
    ap.add_argument("--spending", choices=("information", "none"), default="information",
                    help="policies.spending: alpha spent by decisions seen, or every check at alpha")
    ap.add_argument("--out", default="freshrec-out/challenger")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        truth = {name: serve(seed, args.steps, cfg, None, args.epsilon, f"seed {seed} {name} alone")["ctr"]
                 for name, cfg in CONFIGS.items()}
        for arm, (champion, challenger) in ARMS.items():
            r = serve(seed, args.steps, CONFIGS[champion], CONFIGS[challenger], args.epsilon, f"seed {seed} {arm}",
                      spending=args.spending)
            first = next((s for s in r["swaps"] if s["kind"] == "promotion"), None)
            rows.append({"seed": seed, "arm": arm, "truth_ctr": truth,
                         "challenger_truly_better": truth[challenger] > truth[champion],
                         "promoted": first is not None, "first_promotion": first, "swaps": len(r["swaps"]),
                         "checks": r["checks"], "ctr": r["ctr"]})
            print(f"seed {seed} {arm:6s} truth popularity {truth['popularity']:.4f} learned {truth['learned']:.4f}  "
                  f"promoted {first is not None} at step {first['step'] if first else '-'}  swaps {len(r['swaps'])}",
                  file=sys.stderr, flush=True)
    print("\narm     seeds  challenger truly better  promoted  first promotion: steps (median, max)  "
          "events (median)  swaps total")
    summary = {}
    for arm in ARMS:
        rs = [r for r in rows if r["arm"] == arm]
        firsts = [r["first_promotion"] for r in rs if r["promoted"]]
        steps = [f["step"] for f in firsts]
        events = [f["events"] for f in firsts]
        summary[arm] = {"seeds": len(rs), "truly_better": sum(r["challenger_truly_better"] for r in rs),
                        "promoted": len(firsts), "steps_median": statistics.median(steps) if steps else None,
                        "steps_max": max(steps) if steps else None,
                        "events_median": statistics.median(events) if events else None,
                        "swaps": sum(r["swaps"] for r in rs)}
        s = summary[arm]
        print(f"{arm:6s} {s['seeds']:6d}  {s['truly_better']:23d}  {s['promoted']:8d}  "
              f"{str(s['steps_median']):>18s}, {str(s['steps_max']):>6s}  {str(s['events_median']):>15s}  "
              f"{s['swaps']:11d}")
    ok = (summary["better"]["promoted"] == summary["better"]["truly_better"] == args.seeds
          and summary["worse"]["promoted"] == 0)
    print(f"verdict: {'PASS' if ok else 'FAIL'} (better: promoted in every seed; worse: never promoted)")
    (out / "challenger_experiment.json").write_text(json.dumps(
        {"args": vars(args), "summary": summary, "rows": rows, "wall_s": round(time.time() - t0, 1)}, indent=1,
        default=str))
    print(f"wrote {out / 'challenger_experiment.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
