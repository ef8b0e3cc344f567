"""Is off-policy evaluation accurate where the truth is known? The synthetic world
(``simulators.synthetic``) logs exactly what serving logs, so every estimate can be checked
against the target policy run on-policy.

Per seed: the engine learns the world for ``warm`` slate requests (greedy), then is frozen
(it serves, it learns nothing more, so every policy below is stationary). ``logged`` slates
are served with epsilon-greedy exploration (``epsilon`` per slot), each logged with its
per-slot propensities, the probabilities three target policies give the same slots
(``engine.core.slates.probabilities``) and the world's position-biased clicks:

* ``greedy``: the same ranker, no exploration (exploitation only);
* ``reweighted``: the same ranker with other weights (its popularity weights halved, its
  co-occurrence and factor weights doubled), greedy;
* ``uniform``: a uniformly random slate of the candidates.

Each target is then estimated from the log (IPS, SNIPS, DR with a position click-rate
reward model; 95 % bootstrap intervals) with four kinds of weights: ``iips`` (per slot, the
*marginal* probabilities of the item in its slot, ``exploration.logged_marginals``: the
position-based estimator of Li et al. 2018, unbiased here because the world's clicks
depend only on the item and its slot), ``slot`` (per slot, probabilities given the logged
slots above: biased for a target whose slates differ from the logged prefix), ``prefix``
(cascade) and ``slate`` (whole slate). The truth is the target run on-policy on ``truth``
fresh requests: the mean of their expected clicks. Pass: with ``iips`` weights, SNIPS and DR
within 10 % of the truth in every seed for every target, and the truth inside the 95 %
interval in >= 9 of 10 seeds.

    python -m simulators.ope_experiment [--seeds 10] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.core.exploration import ExplorationPolicy
from engine.core.model import stable_hash
from engine.core.ope import LoggedSlates, estimate
from engine.core.slates import draw, probabilities
from simulators.synthetic import K, Simulation, World, WorldConfig

POLICIES = {"greedy": ExplorationPolicy(), "reweighted": ExplorationPolicy(), "uniform": ExplorationPolicy("epsilon", 1.0)}
REWEIGHT = {"popularity": 0.5, "co-occurrence": 2.0, "transitions": 2.0, "factors": 2.0}
QUICK = dict(n_users=600, n_items=400, n_genres=10)


class _Reweighted:
    """Score with the ranker's weights reweighted by group (``REWEIGHT``) while in use."""

    def __init__(self, rec, on: bool) -> None:
        self.ranker, self.on = rec.ranker, on

    def __enter__(self):
        if self.on:
            self.ranker.reweight = REWEIGHT
            self.ranker._cache.clear()

    def __exit__(self, *exc):
        if self.on:
            self.ranker.reweight = None
            self.ranker._cache.clear()


def _click_probs(sim: Simulation, row: int, items: list[str]) -> np.ndarray:
    """The world's click probability of each slot (item appeal x position bias)."""
    w = sim.w
    idx = np.array([w.item_index[i] for i in items], dtype=np.int64)
    return w.click_prob(row, idx) * sim.pos_bias[: len(idx)]


VARIANTS = ("iips", "slot", "prefix", "slate")  # iips: the slot variant with marginal propensities


def run_seed(seed: int, warm: int = 12_000, logged: int = 50_000, truth: int = 20_000, epsilon: float = 0.1,
             world: dict | None = None, progress: bool = True) -> dict:
    """One seed: the estimates of every target against its on-policy truth (the mean over
    ``truth`` fresh on-policy slates of their expected clicks, so the truth carries no click
    noise)."""
    cfg = WorldConfig(**{**(world or {})})
    w = World(cfg, seed)
    sim = Simulation(w, guard=False)
    sim.normal_traffic(warm, w.established)
    rec = sim.g.recommender
    logging_policy = ExplorationPolicy("epsilon", epsilon)
    users = sim.draw_users(w.established, logged + 3 * truth)
    cond = {name: [] for name in POLICIES}
    marg = {name: [] for name in POLICIES}
    rewards, logs, log_marg = [], [], []
    for n, row in enumerate(tqdm(users[:logged].tolist(), desc=f"seed {seed} logging", disable=not progress,
                                 mininterval=1.0, leave=False)):
        user = w.user_ids[row]
        excluded = rec.excluded(user)
        d = draw(rec, user, K, excluded, None, logging_policy, stable_hash(f"{seed}:{n}"))
        items = [rec.catalogue.ids[r] for r in d.rows.tolist()]
        rewards.append((w.rng.random(len(items)) < _click_probs(sim, row, items)).astype(np.float64))
        logs.append(d.propensities)
        log_marg.append(probabilities(rec, user, d.rows, excluded, None, logging_policy)[1])
        for name, policy in POLICIES.items():
            with _Reweighted(rec, name == "reweighted"):
                c, m = probabilities(rec, user, d.rows, excluded, None, policy)
            cond[name].append(c)
            marg[name].append(m)
    R, L, LM = np.array(rewards), np.array(logs), np.array(log_marg)
    ctr = R.mean(axis=0)  # the reward model of DR: click rate by position
    rhat = np.broadcast_to(ctr, R.shape)
    out = {"seed": seed, "logged_clicks_per_slate": round(float(R.sum(axis=1).mean()), 4), "targets": {}}
    for k, (name, policy) in enumerate(POLICIES.items()):
        on = users[logged + k * truth: logged + (k + 1) * truth]
        expected = []
        with _Reweighted(rec, name == "reweighted"):
            for m_, row in enumerate(on.tolist()):
                user = w.user_ids[row]
                d = draw(rec, user, K, rec.excluded(user), None, policy, stable_hash(f"{seed}:truth:{name}:{m_}"))
                expected.append(_click_probs(sim, row, [rec.catalogue.ids[r] for r in d.rows.tolist()]).sum())
        true = float(np.mean(expected))
        logs_by_variant = {
            "iips": LoggedSlates(rewards=R, logging=LM, target=np.array(marg[name]), rhat=rhat, target_rhat=rhat),
            "cond": LoggedSlates(rewards=R, logging=L, target=np.array(cond[name]), rhat=rhat, target_rhat=rhat)}
        rows = {}
        for est in ("ips", "snips", "dr"):
            for variant in VARIANTS:
                log = logs_by_variant["iips" if variant == "iips" else "cond"]
                e = estimate(log, est, "slot" if variant == "iips" else variant, seed=seed).to_dict()
                rows[f"{est}/{variant}"] = {"value": e["value"], "low": e["low"], "high": e["high"], "ess": e["ess"],
                                            "rel_error": round(abs(e["value"] - true) / true, 4) if true else None,
                                            "covered": bool(e["low"] <= true <= e["high"])}
        out["targets"][name] = {"truth": round(true, 4), "estimates": rows}
    return out


def summarise(runs: list[dict], variant: str = "iips") -> dict:
    """Per target and estimator: median relative error, seeds within 10 %, coverage. Pass:
    with ``variant``'s weights, SNIPS and DR within 10 % of the truth in every seed for
    every target, and the truth inside the 95 % interval in >= 90 % of the seeds."""
    table = {}
    for name in POLICIES:
        for est in ("ips", "snips", "dr"):
            for var in VARIANTS:
                key = f"{est}/{var}"
                errs = [r["targets"][name]["estimates"][key]["rel_error"] for r in runs]
                cov = sum(r["targets"][name]["estimates"][key]["covered"] for r in runs)
                table[f"{name} {key}"] = {"median_rel_error": round(float(np.median(errs)), 4),
                                          "max_rel_error": round(float(np.max(errs)), 4),
                                          "within_10pct": sum(e <= 0.10 for e in errs), "covered": cov,
                                          "seeds": len(runs)}
    passed = all(table[f"{name} {est}/{variant}"]["within_10pct"] == len(runs)
                 and table[f"{name} {est}/{variant}"]["covered"] >= 0.9 * len(runs)
                 for name in POLICIES for est in ("snips", "dr"))
    return {"variant_judged": variant, "table": table, "passed": passed}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="a small world and 5k logged slates (smoke run)")
    p.add_argument("--epsilon", type=float, default=0.1)
    p.add_argument("--out", default="freshrec-out/ope_experiment")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    kw = dict(warm=3_000, logged=5_000, truth=3_000, world=QUICK) if a.quick else {}
    t0 = time.perf_counter()
    runs = []
    for seed in range(a.seeds):
        runs.append(run_seed(seed, epsilon=a.epsilon, **kw))
        r = runs[-1]
        print(f"[{time.perf_counter() - t0:.0f}s] seed {seed}: " + ", ".join(
            f"{n} truth {t['truth']:.3f} snips/iips {t['estimates']['snips/iips']['value']:.3f} "
            f"dr/iips {t['estimates']['dr/iips']['value']:.3f}" for n, t in r["targets"].items()), flush=True)
    summary = summarise(runs)
    print(f"\n{'target estimator/variant':<28}{'median rel err':>15}{'max':>8}{'<=10 %':>8}{'covered':>9}")
    for key, row in summary["table"].items():
        print(f"{key:<28}{row['median_rel_error']:>15.4f}{row['max_rel_error']:>8.3f}{row['within_10pct']:>6}/"
              f"{row['seeds']}{row['covered']:>6}/{row['seeds']}")
    print(f"judged by {summary['variant_judged']} weights: {'PASS' if summary['passed'] else 'FAIL'}")
    (out / "ope_experiment.json").write_text(json.dumps({"runs": runs, "summary": summary}, indent=2))
    print(f"wrote {out / 'ope_experiment.json'}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
