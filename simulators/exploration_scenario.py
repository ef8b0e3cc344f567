"""Does exploration pay where the feedback loop bites? New items keep arriving in the
synthetic world (``simulators.synthetic``), and many are better than the incumbents; an
engine that only shows what it already knows rarely learns that.

Setting: the default world with organic discovery turned down (``organic_rate`` 0.05, so
items mostly get clicks through the slates the engine serves), ``steps`` slate requests
(~200k events at the default 18,000), and every ``arrival_every`` steps a batch of
``batch`` new items (genres as the catalogue, popularity ``q ~ N(boost, 1)`` against the
incumbents' ``N(0, 1)``) registered through ``PUT``-like ``item`` events. The same seeded
traffic is served by the engine with each exploration setting; reported: cumulative CTR
(clicks / impressions over all slates), its ratio to no exploration, and how fast good new
items (an item in the true top-10 of at least one sampled user when it arrives) reach the
slate of such a user: the median number of steps from arrival to the first time, and the
share that ever do.

By default the engine hides an item from a user once an impression of it was ignored
(``EngineConfig.hide_ignored``): every slate moves on to items that user has not been
shown, which is exploration by elimination, so a policy's own exploration has less left to
find. ``--keep-ignored`` runs the engine that keeps ignored items as candidates (only the
negative is learned): the feedback loop at its strongest, an engine that shows its ranked
items again and again.

    python -m simulators.exploration_scenario [--seeds 3] [--steps 18000] [--keep-ignored] [--boost 1.0]
        [--settings none 'epsilon 0.1' ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.core.events import ITEM_KIND, Event
from simulators.synthetic import K, Simulation, World, WorldConfig

SETTINGS = {
    "none": {},
    "epsilon 0.05": {"explore": "epsilon", "explore_epsilon": 0.05},
    "epsilon 0.1": {"explore": "epsilon", "explore_epsilon": 0.1},
    "softmax T=0.25": {"explore": "softmax", "explore_temperature": 0.25},
    "new-item bonus 0.5": {"explore": "none", "explore_new_bonus": 0.5},
    "new-item bonus 1": {"explore": "none", "explore_new_bonus": 1.0},
}

def add_items(w: World, n: int, boost: float) -> list[int]:
    """Add ``n`` items to the world (random genres, ``q ~ N(boost, 1)``); their indices."""
    c, rng = w.cfg, w.rng
    genre = rng.integers(0, c.n_genres, n)
    Y = w.centres[genre] + c.sigma_item * rng.normal(size=(n, c.dim)) / np.sqrt(c.dim)
    start = len(w.item_ids)
    w.item_genre = np.concatenate([w.item_genre, genre])
    w.Y = np.vstack([w.Y, Y])
    w.q = np.concatenate([w.q, rng.normal(boost, 1.0, n)])
    new = list(range(start, start + n))
    w.item_ids.extend(f"i{j}" for j in new)
    w.item_index.update({f"i{j}": j for j in new})
    w.cfg.n_items = len(w.item_ids)
    return new


def run(setting: str, seed: int, steps: int = 18_000, arrival_every: int = 300, batch: int = 10,
        boost: float = 1.0, progress: bool = True, hide_ignored: bool = True) -> dict:
    """One engine setting on one seed; cumulative CTR and the reach of good new items
    (``hide_ignored``: ``EngineConfig.hide_ignored``)."""
    cfg = WorldConfig(organic_rate=0.05)
    w = World(cfg, seed)
    sim = Simulation(w, guard=False, engine={**SETTINGS[setting], "hide_ignored": hide_ignored})
    sample = np.sort(w.metric_rng.choice(w.established, 300, replace=False))
    imps = clicks = 0
    arrivals: dict[int, int] = {}  # good new item -> step it arrived
    fans: dict[int, set[str]] = {}  # good new item -> sampled users with it in their true top-10
    reached: dict[int, int] = {}
    users = sim.draw_users(w.established, steps)
    for step, row in enumerate(tqdm(users.tolist(), desc=f"{setting} seed {seed}", disable=not progress,
                                    mininterval=1.0, leave=False)):
        if step and step % arrival_every == 0:
            new = add_items(w, batch, boost)
            sim.refresh_popularity()
            for j in new:
                sim._apply(Event(user_id="", item_id=w.item_ids[j], kind=ITEM_KIND, timestamp=sim.now,
                                 received_at=sim.now))
            top = np.argsort(-w.affinity(sample), axis=1)[:, :K]
            for j in new:
                who = {w.user_ids[r] for r, t in zip(sample.tolist(), top) if j in t}
                if who:
                    arrivals[j], fans[j] = step, who
        before = len(sim.est_clicks)
        user = w.user_ids[row]
        slate_items = _served(sim, row)
        if len(sim.est_clicks) > before:
            imps += sim.est_imps[-1]
            clicks += sim.est_clicks[-1]
        for item in slate_items:
            j = w.item_index[item]
            if j in fans and j not in reached and user in fans[j]:
                reached[j] = step - arrivals[j]
        sim.step_no += 1
    delays = sorted(reached.values())
    return {"setting": setting, "seed": seed, "hide_ignored": hide_ignored, "ctr": clicks / imps if imps else 0.0,
            "good_new_items": len(arrivals),
            "reached_share": round(len(reached) / len(arrivals), 3) if arrivals else None,
            "median_steps_to_reach": float(statistics.median(delays)) if delays else None}


def _served(sim: Simulation, row: int) -> list[str]:
    """Serve one step (``Simulation.slate_step``) and return the slate's items."""
    got: list[str] = []
    original = sim.g.recommend

    def recording(*a, **k):
        slate = original(*a, **k)
        got.extend(slate.item_ids)
        return slate

    sim.g.recommend = recording
    try:
        sim.slate_step(row, True)
    finally:
        sim.g.recommend = original
    return got


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=18_000)
    p.add_argument("--keep-ignored", action="store_true",
                   help="the engine keeps ignored items as candidates (EngineConfig.hide_ignored off)")
    p.add_argument("--boost", type=float, default=1.0,
                   help="new items' popularity q ~ N(boost, 1) against the incumbents' N(0, 1)")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS), metavar="SETTING",
                   help="exploration settings to run ('none' always runs: the reference); default: all")
    p.add_argument("--out", default="freshrec-out/exploration")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    chosen = ["none"] + [s for s in a.settings if s != "none"]
    for seed in range(a.seeds):
        for setting in chosen:
            rows.append(run(setting, seed, a.steps, boost=a.boost, hide_ignored=not a.keep_ignored))
            r = rows[-1]
            print(f"[{time.perf_counter() - t0:.0f}s] seed {seed} {setting}: CTR {r['ctr']:.4f}, good new items reached "
                  f"{r['reached_share']} after a median {r['median_steps_to_reach']} steps", flush=True)
    summary = {}
    for setting in chosen:
        rs = [r for r in rows if r["setting"] == setting]
        summary[setting] = {"ctr": statistics.median(r["ctr"] for r in rs),
                            "reached_share": statistics.median(r["reached_share"] or 0 for r in rs),
                            "median_steps_to_reach": statistics.median(r["median_steps_to_reach"] or 0 for r in rs)}
    base = summary["none"]["ctr"]
    print(f"\n{'setting':<16}{'CTR':>8}{'x none':>8}{'reached':>9}{'steps':>8}")
    for setting, s in summary.items():
        s["ratio"] = round(s["ctr"] / base, 3) if base else None
        print(f"{setting:<16}{s['ctr']:>8.4f}{s['ratio']:>8.3f}{s['reached_share']:>9.3f}{s['median_steps_to_reach']:>8.0f}")
    best = max(summary, key=lambda k: summary[k]["ctr"])
    print(f"best: {best}, {summary[best]['ratio']}x no exploration (>= 1.1: {summary[best]['ratio'] >= 1.1})")
    (out / "exploration.json").write_text(json.dumps({"hide_ignored": not a.keep_ignored, "boost": a.boost, "rows": rows,
                                                       "summary": summary, "best": best}, indent=2))
    print(f"wrote {out / 'exploration.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
