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
reward model; 95 % bootstrap intervals; with ``iips`` weights also DR with two reward models
fitted on the log, ``engine.core.click_model``: ``dr_pbm`` the position-based click model,
``dr_cal`` the logging ranker's score calibrated per slot, whose target term for an item
outside the logged slate uses the frozen ranker's score of it) with four kinds of weights:
``iips`` (per slot, the *marginal* probabilities of the item in its slot, ``exploration.logged_marginals``: the
position-based estimator of Li et al. 2018, unbiased here because the world's clicks
depend only on the item and its slot), ``slot`` (per slot, probabilities given the logged
slots above: biased for a target whose slates differ from the logged prefix), ``prefix``
(cascade), ``slate`` (whole slate) and ``pbm`` (the position-based estimator of Li et al.
2018: a logged item weighted by its examination-weighted exposure over all slots under the
target against the logger's, ``engine.core.ope``'s ``pbm`` variant, with the examination
``theta`` harvested from the log: the (user, item) pairs that the logger's exploration showed
in two slots give each slot's examination relative to the top one, whatever the user's
appeal (``engine.core.position_bias``, Agarwal et al. 2019; the item-level EM of
``click_model`` confounds personal relevance with position and makes ``theta`` fall too
steeply, reported as ``examination.em_item_appeal`` beside the harvested and the world's
``theta``); it sees a target that puts the logger's top items in low slots, which per-slot
weights cannot, and is as good as that ``theta``. Its DR rows use reward models of the
PBM form with that ``theta`` held (``dr_pbm``) or the calibrated score (``dr_cal``)).

The truth is the target run on-policy, exactly: the model is frozen and a request's user is
drawn with probability proportional to the world's activity weights, so the target's value
is the activity-weighted mean over the established users of the expected clicks of the
target's slate for that user (the world's click probabilities times the position bias;
for ``uniform`` the expectation over its slates as well). It has no sampling noise: a
truth sampled from fresh requests does, about as much as the estimates' intervals are wide
(0.004 clicks per slate, 0.9 %, for 20k requests against a 95 % half-width of about 0.008
for the greedy target in seed 0), so it made the intervals look too narrow. The target
run on ``truth`` fresh requests (``truth_sampled``, with its standard error) and its exact
value on the logged requests themselves (``same_requests``: what the estimates would
equal without click and exploration noise) are reported next to it.

The logger draws from the champion's best ``explore_pool`` candidates (with ``--support``
joined by the reweighted target's pool, over which it then explores uniformly: full support
for that target, at small probabilities); ``uniform`` is uniform over the champion's own pool.
``support`` splits each target's value by the logging policy's marginal probability of the
(item, slot) pairs it comes from (``SUPPORT_BINS``), with the logged clicks expected on
those pairs in the whole log. IIPS is unbiased only where the logger can show the pair: the
part outside the logging pool (without ``--support``, the reweighted ranker's best
candidates that the logger's ``explore_pool`` leaves out) is missing from every estimate,
and the part at marginals
below about 1e-4 has a fraction of a click expected in 50k slates (epsilon-greedy almost
never puts its top items in the bottom slots: the best item reaches the sixth slot with
probability 8e-6, where a uniform slate puts it with 1 / 50), so a typical log misses it
and no interval computed from the log widens for it. Pass: with ``iips``
weights, SNIPS and DR within 10 % of the truth in every seed for every target, and the
truth inside the 95 % interval in >= 9 of 10 seeds (also judged with ``pbm`` weights; the
summary lists every estimator/weights row that meets the bar on its own).

    python -m simulators.ope_experiment [--seeds 10] [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from engine.core.click_model import fit_calibrated_score, fit_position_based
from engine.core.features import features
from engine.core.exploration import ExplorationPolicy, draw_slate, logged_marginals, slot_probabilities
from engine.core.model import stable_hash
from engine.core.ope import LoggedSlates, estimate, pbm_exposure
from engine.core.position_bias import harvest_examination
from engine.core.slates import draw, mixed_pool, pool_and_scores, probabilities
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


def _logging_pool(rec, user: str, excluded: np.ndarray, support: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The logging policy's pool (sorted rows), its scores, and the champion's own pool
    (its best ``explore_pool``, the uniform target's pool). With ``support`` the reweighted
    target's pool joins the logging pool (``engine.core.slates.mixed_pool``) and the
    epsilon-greedy logger explores uniformly over both: every item that target can show is
    then one the logger can show, at a small probability."""
    if not support:
        pool, scores = pool_and_scores(rec, user, excluded, None)
        return pool, scores, pool
    with _Reweighted(rec, True):
        extra = pool_and_scores(rec, user, excluded, None)[0]
    pool, scores, own = mixed_pool(rec, user, excluded, None, 0.0, extra)
    return pool, scores, pool[own]


SUPPORT_EDGES = (1e-4, 1e-3, 1e-2)
SUPPORT_BINS = ("outside the logging pool", "< 1e-4", "1e-4 to 1e-3", "1e-3 to 0.01", ">= 0.01")
"""Bins of the logging policy's marginal probability of an (item, slot) pair, for ``support``."""


@cache
def _rank_marginals(n: int, k: int, policy: ExplorationPolicy) -> np.ndarray:
    """(n, min(k, n)) marginal probability that an epsilon-greedy ``policy`` puts the pool's
    rank-``r`` item in slot ``j``: it depends on the ranks only, not on the scores."""
    scores, m = -np.arange(n, dtype=np.float64), min(k, n)
    return np.array([logged_marginals(scores, np.full(m, r), policy) for r in range(n)]).reshape(n, m)


def _expected_by_user(sim: Simulation, name: str, policy: ExplorationPolicy, seed: int,
                      logging_policy: ExplorationPolicy, support: bool = False
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each established user (the model is frozen, so a user's slate distribution is
    fixed): the expected clicks of target ``name``'s slate (a greedy target's one slate,
    drawn as served by ``draw``; the uniform target's expectation over its slates: every slot
    holds each pool item with probability 1 / pool size), (users,); and that value split by
    the logging policy's marginal probability of the (item, slot) pairs it comes from
    (``SUPPORT_BINS``), with the logging policy's expected clicks on those pairs per request,
    (users, bins) each."""
    w, rec = sim.w, sim.g.recommender
    value = np.zeros(len(w.established))
    split, logged_clicks = np.zeros((len(value), len(SUPPORT_BINS))), np.zeros((len(value), len(SUPPORT_BINS)))
    for n, row in enumerate(w.established.tolist()):
        user = w.user_ids[row]
        excluded = rec.excluded(user)
        pool, scores, own = _logging_pool(rec, user, excluded, support)  # the logging policy's pool
        rank = np.empty(len(pool), dtype=np.int64)
        rank[np.argsort(-scores, kind="stable")] = np.arange(len(pool))
        mu = _rank_marginals(len(pool), K, logging_policy)[rank]  # (pool, slots)
        bias = sim.pos_bias[: mu.shape[1]]
        with _Reweighted(rec, name == "reweighted"):
            if policy.kind == "none":
                rows = draw(rec, user, K, excluded, None, policy, stable_hash(f"{seed}:exact:{name}:{n}")).rows
                target_pool, pi = rows, np.eye(len(rows), len(bias))  # item j in slot j
            else:
                assert policy.kind == "epsilon" and policy.epsilon == 1.0, "an exact value only for greedy or uniform"
                target_pool = own
                pi = np.full((len(target_pool), len(bias)), 1.0 / max(len(target_pool), 1))
        c = w.click_prob(row, np.array([w.item_index[rec.catalogue.ids[r]] for r in target_pool.tolist()],
                                       dtype=np.int64))
        contrib = pi * c[:, None] * bias[None, :]  # (target pool, slots): the target's expected clicks
        value[n] = contrib.sum()
        index = {r: i for i, r in enumerate(pool.tolist())}
        at = np.array([index.get(r, -1) for r in target_pool.tolist()], dtype=np.int64)
        inside = at >= 0
        split[n, 0] = contrib[~inside].sum()
        m = mu[at[inside]]  # the logging marginals of the target's pairs
        bins = 1 + np.digitize(m, SUPPORT_EDGES)
        np.add.at(split[n], bins.ravel(), contrib[inside].ravel())
        pool_c = w.click_prob(row, np.array([w.item_index[rec.catalogue.ids[r]] for r in pool.tolist()],
                                            dtype=np.int64))
        reach = (pi[inside] > 0)  # the pairs the target uses, and what the logger clicks there
        np.add.at(logged_clicks[n], bins[reach], (m * pool_c[at[inside]][:, None] * bias[None, :])[reach])
    return value, split, logged_clicks

VARIANTS = ("iips", "slot", "prefix", "slate", "pbm")  # iips: the slot variant with marginal propensities
ROWS = [(e, v) for e in ("ips", "snips", "dr") for v in VARIANTS] + [("dr_pbm", "iips"), ("dr_cal", "iips"),
                                                                     ("dr_pbm", "pbm"), ("dr_cal", "pbm")]
"""(estimator, weights) pairs reported. DR's reward model: ``dr`` the click rate by position;
``dr_pbm`` the position-based click model fitted on the log, ``dr_cal`` the logging ranker's
score calibrated per slot on the log (both ``engine.core.click_model``)."""


def run_seed(seed: int, warm: int = 12_000, logged: int = 50_000, truth: int = 20_000, epsilon: float = 0.1,
             world: dict | None = None, progress: bool = True, support: bool = False) -> dict:
    """One seed: the estimates of every target against its exact on-policy value (see the
    module docstring), with the target run on ``truth`` fresh requests and on the logged
    requests alongside. ``support``: the reweighted target's pool joins the logger's (the
    logger explores over both); False (the default, as freshrec serves without a
    challenger) logs from the champion's own pool."""
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
    log_all, target_all = [], {name: [] for name in POLICIES}  # (K, K): logged item j's marginal at every slot
    shown, pools, target_rows = [], [], {"greedy": [], "reweighted": []}  # for the click models' DR
    score_of = {"logged": [], "greedy": [], "reweighted": [], "uniform": []}  # the logging ranker's scores
    for n, row in enumerate(tqdm(users[:logged].tolist(), desc=f"seed {seed} logging", disable=not progress,
                                 mininterval=1.0, leave=False)):
        user = w.user_ids[row]
        excluded = rec.excluded(user)
        pool, scores, own = _logging_pool(rec, user, excluded, support)  # serves the logger and two targets
        d = draw_slate(scores, K, logging_policy, stable_hash(f"{seed}:{n}"))
        rows = pool[d.positions]
        items = [rec.catalogue.ids[r] for r in rows.tolist()]
        rewards.append((w.rng.random(len(items)) < _click_probs(sim, row, items)).astype(np.float64))
        logs.append(d.propensities)
        log_marg.append(logged_marginals(scores, d.positions, logging_policy))
        shown.append(rows)
        pools.append(own)  # the uniform target's pool
        best = np.argsort(-scores, kind="stable")[:K]  # the greedy draw's slate
        target_rows["greedy"].append(pool[best])
        with _Reweighted(rec, True):
            target_rows["reweighted"].append(draw(rec, user, K, excluded, None, POLICIES["reweighted"], 0).rows)
        rank = np.empty(len(pool), dtype=np.int64)
        rank[np.argsort(-scores, kind="stable")] = np.arange(len(pool))
        log_all.append(_rank_marginals(len(pool), K, logging_policy)[rank[d.positions]])
        for name, slate in (("greedy", pool[best]), ("reweighted", target_rows["reweighted"][-1])):
            target_all[name].append((rows[:, None] == slate[None, :K]).astype(np.float64))  # one-hot at its slot
        in_own = np.isin(rows, own)
        target_all["uniform"].append(np.where(in_own[:, None], 1.0 / len(own), 0.0) * np.ones((1, K)))
        score_of["logged"].append(scores[d.positions])
        score_of["greedy"].append(scores[best])
        score_of["reweighted"].append(rec.ranker.score(features(rec, user, target_rows["reweighted"][-1])))
        own_at = np.isin(pool, own)
        score_of["uniform"].append(scores[own_at])
        for name, policy in POLICIES.items():
            if name == "reweighted":
                with _Reweighted(rec, True):
                    c, m = probabilities(rec, user, rows, excluded, None, policy)
            elif name == "uniform":  # uniform over the champion's own pool
                where = {r: j for j, r in enumerate(own.tolist())}
                at = np.array([where.get(r, -1) for r in rows.tolist()], dtype=np.int64)
                c, m = (slot_probabilities(scores[own_at], at, policy),
                        logged_marginals(scores[own_at], at, policy))
            else:
                c, m = (slot_probabilities(scores, d.positions, policy),
                        logged_marginals(scores, d.positions, policy))
            cond[name].append(c)
            marg[name].append(m)
    R, L, LM = np.array(rewards), np.array(logs), np.array(log_marg)
    ctr = R.mean(axis=0)  # the reward model of DR: click rate by position
    rhat = np.broadcast_to(ctr, R.shape)
    # the reward models fitted on the log: the position-based click model and the calibrated score
    S = np.array(shown)
    pbm = fit_position_based(S.ravel(), np.tile(np.arange(K), len(S)), R.ravel() > 0, len(rec.catalogue), K)
    pbm_rhat = pbm.slate(S)
    pbm_target = {name: pbm.slate(np.array(target_rows[name])) for name in target_rows}
    pbm_target["uniform"] = pbm.examination[None, :K] * pbm.mean_appeal(pools)[:, None]  # every pool item at every slot
    slot = np.arange(K)[None, :]
    cal = fit_calibrated_score(np.array(score_of["logged"]).ravel(), np.tile(np.arange(K), len(S)), R.ravel() > 0, K)
    cal_rhat = cal.predict(np.array(score_of["logged"]), slot)
    cal_target = {name: cal.predict(np.array(score_of[name]), slot) for name in ("greedy", "reweighted")}
    cal_target["uniform"] = np.array([cal.predict(sc[:, None], slot).mean(axis=0) for sc in score_of["uniform"]])
    # the position-based weights' examination, harvested from the (user, item) pairs the logger's
    # exploration moved between slots (engine.core.position_bias), and the PBM reward model of
    # their DR fitted with that theta held (the form the pbm DR is unbiased for)
    pair_keys = users[:logged, None].astype(np.int64) * len(rec.catalogue) + S
    try:
        theta = harvest_examination(pair_keys.ravel(), np.tile(np.arange(K), len(S)), R.ravel() > 0, K).examination
    except ValueError:  # a slot the log never moves a clicked pair through (a tiny log): the item-level EM's
        theta = pbm.examination[:K] / pbm.examination[0]
    pbm_h = fit_position_based(S.ravel(), np.tile(np.arange(K), len(S)), R.ravel() > 0, len(rec.catalogue), K,
                               examination=theta)
    pbm_h_target = {name: pbm_h.slate(np.array(target_rows[name])) for name in target_rows}
    pbm_h_target["uniform"] = theta[None, :] * pbm_h.mean_appeal(pools)[:, None]
    log_exposure = pbm_exposure(np.array(log_all), theta)
    world_theta = sim.pos_bias[:K] / sim.pos_bias[0]
    out = {"seed": seed, "logged_clicks_per_slate": round(float(R.sum(axis=1).mean()), 4),
           "examination": {"world": np.round(world_theta, 4).tolist(), "harvested": np.round(theta, 4).tolist(),
                           "em_item_appeal": np.round(pbm.examination[:K] / pbm.examination[0], 4).tolist()},
           "targets": {}}
    act = w.activity[w.established] / w.activity[w.established].sum()  # P(a request is from each user)
    for k, (name, policy) in enumerate(POLICIES.items()):
        per_user, split, logged_clicks = _expected_by_user(sim, name, policy, seed, logging_policy, support)
        true = float(act @ per_user)  # the target's exact on-policy value over the request distribution
        support = {b: {"value_share": round(float(act @ split[:, i]) / true, 4) if true else None,
                       "logged_clicks": round(float(logged * (act @ logged_clicks[:, i])), 1)}
                   for i, b in enumerate(SUPPORT_BINS)}
        on = users[logged + k * truth: logged + (k + 1) * truth]
        expected = []
        with _Reweighted(rec, name == "reweighted"):
            for m_, row in enumerate(tqdm(on.tolist(), desc=f"seed {seed} truth {name}", disable=not progress,
                                          mininterval=1.0, leave=False)):
                user = w.user_ids[row]
                d = draw(rec, user, K, rec.excluded(user), None, policy, stable_hash(f"{seed}:truth:{name}:{m_}"))
                expected.append(_click_probs(sim, row, [rec.catalogue.ids[r] for r in d.rows.tolist()]).sum())
        sampled = {"value": round(float(np.mean(expected)), 4),
                   "se": round(float(np.std(expected, ddof=1) / np.sqrt(len(expected))), 4), "requests": len(expected)}
        oracle = float(per_user[users[:logged]].mean())  # the target on the logged requests themselves
        logs_by_variant = {
            "iips": LoggedSlates(rewards=R, logging=LM, target=np.array(marg[name]), rhat=rhat, target_rhat=rhat),
            "cond": LoggedSlates(rewards=R, logging=L, target=np.array(cond[name]), rhat=rhat, target_rhat=rhat),
            "pbm": LoggedSlates(rewards=R, logging=LM, target=np.array(marg[name]), rhat=pbm_rhat,
                                target_rhat=pbm_target[name]),
            "cal": LoggedSlates(rewards=R, logging=LM, target=np.array(marg[name]), rhat=cal_rhat,
                                target_rhat=cal_target[name])}
        exposure = dict(logging_exposure=log_exposure, examination=theta,
                        target_exposure=pbm_exposure(np.array(target_all[name]), theta))
        logs_by_variant["pbmw"] = LoggedSlates(rewards=R, logging=LM, target=np.array(marg[name]), rhat=rhat,
                                               target_rhat=rhat, **exposure)
        logs_by_variant["pbmw_pbm"] = LoggedSlates(rewards=R, logging=LM, target=np.array(marg[name]),
                                                   rhat=pbm_h.slate(S), target_rhat=pbm_h_target[name], **exposure)
        logs_by_variant["pbmw_cal"] = LoggedSlates(rewards=R, logging=LM, target=np.array(marg[name]),
                                                   rhat=cal_rhat, target_rhat=cal_target[name], **exposure)
        rows = {}
        for est, variant in ROWS:
            model = est.partition("_")[2]  # the click model of dr_pbm / dr_cal
            if variant == "pbm":
                log = logs_by_variant[f"pbmw_{model}" if model else "pbmw"]
            else:
                log = logs_by_variant[model or ("iips" if variant == "iips" else "cond")]
            e = estimate(log, "dr" if model else est, "slot" if variant == "iips" else variant, seed=seed).to_dict()
            rows[f"{est}/{variant}"] = {"value": e["value"], "low": e["low"], "high": e["high"], "ess": e["ess"],
                                        "rel_error": round(abs(e["value"] - true) / true, 4) if true else None,
                                        "covered": bool(e["low"] <= true <= e["high"])}
        out["targets"][name] = {"truth": round(true, 4), "truth_sampled": sampled,
                                "same_requests": round(oracle, 4), "support": support, "estimates": rows}
    return out


def summarise(runs: list[dict], variant: str = "iips") -> dict:
    """Per target and estimator: median relative error, seeds within 10 %, coverage. Pass:
    with ``variant``'s weights, SNIPS and DR within 10 % of the truth in every seed for
    every target, and the truth inside the 95 % interval in >= 90 % of the seeds."""
    table = {}
    for name in POLICIES:
        for est, var in ROWS:
            key = f"{est}/{var}"
            errs = [r["targets"][name]["estimates"][key]["rel_error"] for r in runs]
            cov = sum(r["targets"][name]["estimates"][key]["covered"] for r in runs)
            table[f"{name} {key}"] = {"median_rel_error": round(float(np.median(errs)), 4),
                                      "max_rel_error": round(float(np.max(errs)), 4),
                                      "within_10pct": sum(e <= 0.10 for e in errs), "covered": cov,
                                      "seeds": len(runs)}
    def passes(dr: str) -> bool:  # SNIPS and this DR within 10 % in every seed, covered in >= 90 %
        return all(table[f"{name} {est}/{variant}"]["within_10pct"] == len(runs)
                   and table[f"{name} {est}/{variant}"]["covered"] >= 0.9 * len(runs)
                   for name in POLICIES for est in ("snips", dr))

    def row_passes(key: str) -> bool:  # this estimator/weights within 10 % in every seed, covered in >= 90 %
        return all(table[f"{name} {key}"]["within_10pct"] == len(runs)
                   and table[f"{name} {key}"]["covered"] >= 0.9 * len(runs) for name in POLICIES)

    rows_passing = [f"{est}/{var}" for est, var in ROWS if row_passes(f"{est}/{var}")]
    passed = passes("dr")
    by_model = {dr: passes(dr) for dr in ("dr_pbm", "dr_cal") if (dr, variant) in ROWS}
    support = {name: {b: {"value_share": round(float(np.mean([r["targets"][name]["support"][b]["value_share"]
                                                               for r in runs])), 4),
                          "logged_clicks": round(float(np.mean([r["targets"][name]["support"][b]["logged_clicks"]
                                                                for r in runs])), 1)}
                      for b in SUPPORT_BINS} for name in POLICIES}
    return {"variant_judged": variant, "table": table, "passed": passed, "passed_with": by_model,
            "rows_passing": rows_passing, "support": support}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="a small world and 5k logged slates (smoke run)")
    p.add_argument("--epsilon", type=float, default=0.1)
    p.add_argument("--support", action="store_true",
                   help="the reweighted target's pool joins the logger's, which explores uniformly over both "
                        "(default: the logger's own best explore_pool candidates, as freshrec serves without a "
                        "challenger)")
    p.add_argument("--out", default="freshrec-out/ope_experiment")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    kw = dict(warm=3_000, logged=5_000, truth=3_000, world=QUICK) if a.quick else {}
    t0 = time.perf_counter()
    runs = []
    for seed in range(a.seeds):
        runs.append(run_seed(seed, epsilon=a.epsilon, support=a.support, **kw))
        r = runs[-1]
        print(f"[{time.perf_counter() - t0:.0f}s] seed {seed}: " + ", ".join(
            f"{n} truth {t['truth']:.3f} (sampled {t['truth_sampled']['value']:.3f}, same requests "
            f"{t['same_requests']:.3f}) snips/iips {t['estimates']['snips/iips']['value']:.3f} "
            f"dr/iips {t['estimates']['dr/iips']['value']:.3f} dr_pbm/iips {t['estimates']['dr_pbm/iips']['value']:.3f} "
            f"dr_cal/iips {t['estimates']['dr_cal/iips']['value']:.3f}"
            for n, t in r["targets"].items())
              + f"; theta at slot {K} harvested {r['examination']['harvested'][-1]:.3f}, "
              f"item-level EM {r['examination']['em_item_appeal'][-1]:.3f}, world {r['examination']['world'][-1]:.3f}",
              flush=True)
    summary = summarise(runs)
    by_pbm = summarise(runs, "pbm")
    print(f"\n{'target estimator/variant':<28}{'median rel err':>15}{'max':>8}{'<=10 %':>8}{'covered':>9}")
    for key, row in summary["table"].items():
        print(f"{key:<28}{row['median_rel_error']:>15.4f}{row['max_rel_error']:>8.3f}{row['within_10pct']:>6}/"
              f"{row['seeds']}{row['covered']:>6}/{row['seeds']}")
    print("\nshare of each target's value by the logging policy's marginal probability of the (item, slot), "
          "and the logged clicks expected there (mean over seeds)")
    print(f"{'target':<12}" + "".join(f"{b:>26}" for b in SUPPORT_BINS))
    for name, bins in summary["support"].items():
        print(f"{name:<12}" + "".join(f"{v['value_share']:>16.4f} ({v['logged_clicks']:>7.1f})" for v in bins.values()))
    print(f"judged by {summary['variant_judged']} weights, SNIPS and DR (position click rate): "
          f"{'PASS' if summary['passed'] else 'FAIL'}; " + "; ".join(
              f"SNIPS and {dr}: {'PASS' if ok else 'FAIL'}" for dr, ok in summary["passed_with"].items()))
    print(f"judged by pbm weights (theta harvested from the log), SNIPS and DR (position click rate): "
          f"{'PASS' if by_pbm['passed'] else 'FAIL'}; " + "; ".join(
              f"SNIPS and {dr}: {'PASS' if ok else 'FAIL'}" for dr, ok in by_pbm["passed_with"].items()))
    print("estimators within 10 % in every seed and covered in >= 90 % of the seeds for every target: "
          + (", ".join(summary["rows_passing"]) or "none"))
    (out / "ope_experiment.json").write_text(json.dumps({"runs": runs, "summary": summary, "summary_pbm": by_pbm},
                                                        indent=2))
    print(f"wrote {out / 'ope_experiment.json'}")
    return 0 if summary["passed"] or by_pbm["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
