"""Does the engine tune itself to a stream it was not built with? Three variants of the
synthetic world (``simulators.synthetic``), the ``stationary`` scenario, on the same seeds:

1. **Time scales**: the world with every event time compressed 100x (``time_scale`` 0.01)
   and stretched 100x (100), and as is (1). At each scale the self-tuned engine (the
   learned ranker, default settings) is compared with the best *fixed-constant* engine for
   that scale: the old blend (``ranker = "blend"``) at each trend half-life of a grid that
   spans the scales (0.36 h ... 3,600 h), its best picked with hindsight. Pass: the
   self-tuned engine reaches >= 0.9x the best fixed one's recall@10 at every scale.
2. **Implicit feedback**: views (exposure), clicks and purchases (weight 3), no ratings
   (``feedback = "implicit"``, schema ``synthetic.IMPLICIT_EVENTS``). Pass: recall@10 >= 3x
   the popularity reference.
3. **Context**: tastes that differ by time of day (``context_effect`` 1.0, four dayparts);
   the engine told the daypart (``{"daypart": "d<k>"}`` on every request and event) against
   the same engine not told. Pass: recall with context >= 1.2x recall without.

Recall is established users' recall@10 against their true top-10 at the end of the
established period (``recall_before``), medians over seeds. Prints one table per part,
writes ``out/generality.json`` and ``out/generality.png``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from simulators.synthetic import run_scenario

SCALES = (0.01, 1.0, 100.0)
FIXED_HALF_LIVES_H = (0.36, 3.6, 36.0, 360.0, 3600.0)
QUICK = dict(n_users=600, n_items=400, established_events=4_000, n_genres=10, measure_every=1000,
             sample_users=200)


def _run(seed: int, world: dict, engine: dict | None, progress: bool) -> dict:
    r = run_scenario("stationary", None, False, seed, progress=progress, engine=engine,
                     **{"change_steps": 0, "recovery_steps": 1, **world})
    return {"recall": r["recall_before"], "ctr": r["extra"]["ctr_before"],
            "ref_popularity": r["extra"]["references"]["popularity"], "events_per_s": r["events_per_s"]}


def _median(rows: list[dict], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def run_generality(seeds: int = 3, out: Path = Path("freshrec-out/generality"), quick: bool = False,
                   progress: bool = True) -> dict:
    """Run the three parts (see the module docstring); returns the content of
    ``generality.json`` with ``passed`` per part."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = QUICK if quick else {}
    t0 = time.perf_counter()
    scales = []
    for scale in SCALES:
        world = {**base, "time_scale": scale}
        learned = [_run(s, world, None, progress) for s in range(seeds)]
        fixed = {h: [_run(s, world, {"ranker": "blend", "trend_half_life_h": h}, progress) for s in range(seeds)]
                 for h in FIXED_HALF_LIVES_H}
        best_h = max(fixed, key=lambda h: _median(fixed[h], "recall"))
        row = {"time_scale": scale, "self_tuned_recall": _median(learned, "recall"),
               "self_tuned_ctr": _median(learned, "ctr"),
               "fixed_recall": {str(h): round(_median(rows, "recall"), 4) for h, rows in fixed.items()},
               "best_fixed_half_life_h": best_h, "best_fixed_recall": _median(fixed[best_h], "recall"),
               "best_fixed_ctr": _median(fixed[best_h], "ctr")}
        row["ratio"] = round(row["self_tuned_recall"] / row["best_fixed_recall"], 3)
        scales.append(row)
        if progress:
            print(f"[{time.perf_counter() - t0:.0f}s] time scale {scale:g}: self-tuned {row['self_tuned_recall']:.3f}, "
                  f"best fixed {row['best_fixed_recall']:.3f} (half-life {best_h:g} h), ratio {row['ratio']}",
                  flush=True)
    implicit_rows = [_run(s, {**base, "feedback": "implicit"}, None, progress) for s in range(seeds)]
    implicit = {"recall": _median(implicit_rows, "recall"), "ref_popularity": _median(implicit_rows, "ref_popularity")}
    implicit["ratio"] = round(implicit["recall"] / implicit["ref_popularity"], 3)
    ctx = {told: [_run(s, {**base, "context_effect": 1.0, "use_context": told}, None, progress) for s in range(seeds)]
           for told in (True, False)}
    context = {"recall_with_context": _median(ctx[True], "recall"), "recall_without": _median(ctx[False], "recall")}
    context["ratio"] = round(context["recall_with_context"] / context["recall_without"], 3)
    data = {"seeds": seeds, "quick": quick, "time_scales": scales, "implicit": implicit, "context": context,
            "passed": {"time_scales": all(r["ratio"] >= 0.9 for r in scales), "implicit": implicit["ratio"] >= 3.0,
                       "context": context["ratio"] >= 1.2},
            "wall_s": round(time.perf_counter() - t0, 1)}
    (out / "generality.json").write_text(json.dumps(data, indent=2))
    _plot(data, out / "generality.png")
    print(format_tables(data))
    print(f"wrote {out / 'generality.json'} and {out / 'generality.png'} ({data['wall_s']} s)")
    return data


def format_tables(data: dict) -> str:
    """The three parts as fixed-width tables."""
    lines = [f"generality: medians over {data['seeds']} seed(s){' (quick world)' if data['quick'] else ''}",
             f"{'time scale':>10} {'self-tuned':>11} {'best fixed':>11} {'half-life':>10} {'ratio':>6}  fixed grid"]
    for r in data["time_scales"]:
        grid = " ".join(f"{h}h:{v:.3f}" for h, v in r["fixed_recall"].items())
        lines.append(f"{r['time_scale']:>10g} {r['self_tuned_recall']:>11.3f} {r['best_fixed_recall']:>11.3f} "
                     f"{r['best_fixed_half_life_h']:>9g}h {r['ratio']:>6.3f}  {grid}")
    i, c, p = data["implicit"], data["context"], data["passed"]
    lines.append(f"implicit feedback (view/click/purchase): recall {i['recall']:.3f}, popularity {i['ref_popularity']:.3f}, "
                 f"ratio {i['ratio']:.2f} (>= 3: {p['implicit']})")
    lines.append(f"context (dayparts): recall told {c['recall_with_context']:.3f}, not told {c['recall_without']:.3f}, "
                 f"ratio {c['ratio']:.2f} (>= 1.2: {p['context']})")
    lines.append(f"time scales >= 0.9x best fixed: {p['time_scales']}")
    return "\n".join(lines)


def _plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for r in data["time_scales"]:
        hs = [float(h) for h in r["fixed_recall"]]
        a.plot(hs, list(r["fixed_recall"].values()), marker="o", label=f"blend, time x{r['time_scale']:g}")
        a.axhline(r["self_tuned_recall"], ls="--", lw=1, color=a.lines[-1].get_color())
    a.set_xscale("log")
    a.set_xlabel("fixed trend half-life (h)")
    a.set_ylabel("recall@10 (dashed: self-tuned)")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    i, c = data["implicit"], data["context"]
    b.bar(["implicit", "popularity", "context told", "not told"],
          [i["recall"], i["ref_popularity"], c["recall_with_context"], c["recall_without"]],
          color=["tab:blue", "tab:gray", "tab:green", "tab:olive"])
    b.set_ylabel("recall@10")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
