"""The synthetic scenario suite: every scenario, guard on and off, on the same seeds.

``run_suite`` runs (stationary; bot_burst dose 500; bot_burst dose 4000; cohort;
viral_trend; drift) x (guard off, guard on) x ``seeds`` (seeds 0 .. seeds-1) through
``simulators.synthetic.run_scenario`` (in process, one run at a time), then

* prints one summary table: medians over seeds per (scenario, dose, guard);
* writes ``out/suite.json`` = ``{"rows": [...], "medians": [...]}``: ``rows`` are the
  per-run rows without ``extra`` (keys ``synthetic.ROW_KEYS``); ``medians`` have the same
  keys minus ``seed`` (numeric fields are medians over seeds, None when no seed has a
  value) plus ``seeds`` (number of runs), ``target_exposure_max``, ``ctr`` and the
  established-user reference recalls ``ref_random`` / ``ref_popularity`` / ``ref_oracle``;
* draws ``out/<scenario>[_<dose>].png``: established users' recall@10 over the event index
  (one line per run, guard off vs on), the scenario metric in a second panel, a dashed
  line where the scenario starts and a vertical line at every guard event of the
  guarded runs (colour by kind).

Cost on the 2-core dev machine: one default-size run takes ~4-5 s of wall time (guard
off; ~5.5 s with the guard on), one seed of the suite (12 runs) ~60 s, so the default
suite (3 seeds, 36 runs) takes ~3 minutes. ``quick=True`` shrinks the world (600 users x
400 items, 10 genres, 4,000 established requests) for a smoke run: ~18 s per seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from simulators import guard_replay
from simulators.synthetic import ROW_KEYS, format_row, run_scenario

SUITE = (("stationary", None), ("bot_burst", 500), ("bot_burst", 4000), ("cohort", None),
         ("viral_trend", None), ("drift", None))
QUICK_WORLD = dict(n_users=600, n_items=400, established_events=4_000, change_steps=1_000,
                   n_genres=10, measure_every=500)
METRIC_LABEL = {"bot_burst": "target exposure", "cohort": "cohort recall@10",
                "drift": "segment recall@10", "viral_trend": "trend recall"}
TABLE_COLS = (("scenario", 11), ("dose", 5), ("guard", 5), ("recall_before", 8), ("recall_after", 8),
              ("recall_loss", 8), ("target_exposure", 8), ("target_exposure_max", 8), ("cohort_recall", 8),
              ("segment_recall", 8), ("trend_recall", 8), ("rollbacks", 5), ("false_rollbacks", 5),
              ("validation_windows", 6), ("events_per_s", 8))
HEADERS = {"scenario": "scenario", "dose": "dose", "guard": "guard", "recall_before": "rec_bef",
           "recall_after": "rec_aft", "recall_loss": "loss", "target_exposure": "expo",
           "target_exposure_max": "expo_max", "cohort_recall": "cohort", "segment_recall": "segment",
           "trend_recall": "trend", "rollbacks": "rb", "false_rollbacks": "f_rb",
           "validation_windows": "windows", "events_per_s": "ev/s"}


def _name(scenario: str, dose: int | None) -> str:
    return scenario if dose is None else f"{scenario}_{dose}"


def _median(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def medians(results: list[dict]) -> list[dict]:
    """Median over seeds per (scenario, dose, guard) of every numeric row field (see module doc)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["scenario"], r["dose"], r["guard"]), []).append(r)
    out = []
    for (scenario, dose, guard), rs in groups.items():
        m = {"scenario": scenario, "dose": dose, "guard": guard, "seeds": len(rs)}
        for key in ROW_KEYS:
            if key not in m and key != "seed":
                m[key] = _median([r[key] for r in rs])
        x = [r.get("extra", {}) for r in rs]
        m["target_exposure_max"] = _median([e.get("target_exposure_max") for e in x])
        m["ctr"] = _median([e.get("ctr") for e in x])
        for ref in ("random", "popularity", "oracle"):
            m[f"ref_{ref}"] = _median([e.get("references", {}).get(ref) for e in x])
        out.append(m)
    return out


def format_table(rows: list[dict]) -> str:
    """Fixed-width table of result rows or median rows."""
    counts = ("rollbacks", "false_rollbacks", "validation_windows")

    def cell(v, width, col):
        if v is None:
            s = "-"
        elif isinstance(v, float) and col in counts and v.is_integer():
            s = str(int(v))
        elif isinstance(v, float):
            s = f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3f}"
        else:
            s = str(v)
        return s.rjust(width)
    lines = [" ".join(HEADERS[c].rjust(w) for c, w in TABLE_COLS)]
    for r in rows:
        rr = dict(r)
        rr.setdefault("target_exposure_max", rr.get("extra", {}).get("target_exposure_max"))
        lines.append(" ".join(cell(rr.get(c), w, c) for c, w in TABLE_COLS))
    return "\n".join(lines)


def plot_scenario(results: list[dict], path: Path) -> None:
    """PNG: established recall@10 (top) and the scenario metric (bottom) vs event index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenario, dose = results[0]["scenario"], results[0]["dose"]
    label = METRIC_LABEL.get(scenario)
    fig, axes = plt.subplots(2 if label else 1, 1, figsize=(10, 6.5 if label else 4), sharex=True, squeeze=False)
    ax_r, ax_m = axes[0][0], (axes[1][0] if label else None)
    colours = {"off": "tab:red", "on": "tab:blue"}
    kinds = {"rollback": ("tab:green", "-", 1.6), "quarantine": ("tab:orange", ":", 1.2),
             "alarm": ("tab:purple", "-.", 1.0)}
    seen_labels: set[str] = set()

    def lab(text: str) -> str | None:
        if text in seen_labels:
            return None
        seen_labels.add(text)
        return text

    for r in sorted(results, key=lambda r: (r["guard"], r["seed"])):
        x = r.get("extra", {})
        series = x.get("series", [])
        if not series:
            continue
        ev = [s[0] for s in series]
        c = colours.get(r["guard"], "gray")
        ax_r.plot(ev, [s[1] for s in series], color=c, alpha=0.8, lw=1.2, marker=".", ms=3,
                  label=lab(f"guard {r['guard']}"))
        if ax_m is not None:
            pts = [(s[0], s[2]) for s in series if s[2] is not None]
            if pts:
                ax_m.plot([p[0] for p in pts], [p[1] for p in pts], color=c, alpha=0.8, lw=1.2, marker=".", ms=3)
        for ax in (ax_r, ax_m):
            if ax is not None and x.get("change_at_event") is not None:
                ax.axvline(x["change_at_event"], color="gray", ls="--", lw=1,
                           label=lab("scenario start") if ax is ax_r else None)
        if r["guard"] == "on":
            for e in x.get("guard_events", []):
                at = e.get("at_event")
                if at is None:
                    continue
                kind = e.get("kind", "?")
                colour, style, width = kinds.get(kind, ("black", "-", 0.8))
                for ax in (ax_r, ax_m):
                    if ax is not None:
                        ax.axvline(at, color=colour, ls=style, lw=width, alpha=0.7,
                                   label=lab(f"guard {kind}") if ax is ax_r else None)
    ax_r.set_ylabel("established recall@10")
    ax_r.set_title(f"{_name(scenario, dose)}: guard on vs off ({len(results)} runs)")
    ax_r.legend(loc="lower left", fontsize=8)
    ax_r.grid(alpha=0.3)
    if ax_m is not None:
        ax_m.set_ylabel(label)
        ax_m.grid(alpha=0.3)
    (ax_m or ax_r).set_xlabel("events applied")
    # zoom on the change + recovery part, with some established history for context
    starts = [r["extra"]["change_at_event"] for r in results if r.get("extra", {}).get("change_at_event")]
    ends = [r["extra"]["series"][-1][0] for r in results if r.get("extra", {}).get("series")]
    if starts and ends:
        lo, hi = min(starts), max(ends)
        ax_r.set_xlim(max(0, lo - max(hi - lo, 0.15 * hi)), hi + 0.02 * (hi - lo + 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_suite(seeds: int = 3, out: Path = Path("freshrec-out/simulate"), quick: bool = False,
              progress: bool = True) -> dict:
    """Run the whole suite; write ``out/suite.json`` and one PNG per scenario.

    Args:
        seeds: number of seeds (0 .. seeds-1); every scenario runs guard off and on with each.
        out: output directory (created).
        quick: smaller world for a smoke run (``QUICK_WORLD``).
        progress: tqdm bars and one line per finished run.

    Returns:
        ``{"rows": [...], "medians": [...]}`` (the content of suite.json).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = QUICK_WORLD if quick else {}
    results: list[dict] = []
    t0 = time.perf_counter()
    n_runs = len(SUITE) * 2 * seeds
    for scenario, dose in SUITE:
        for seed in range(seeds):
            for guard in (False, True):
                r = run_scenario(scenario, dose, guard, seed, progress=progress, **world)
                results.append(r)
                if progress:
                    print(f"[{len(results)}/{n_runs} {time.perf_counter() - t0:.0f}s] seed {seed} {format_row(r)}",
                          flush=True)
    med = medians(results)
    replay = None if quick else guard_replay.compare(progress=progress)
    print(f"\nsynthetic suite: medians over {seeds} seed(s){' (quick world)' if quick else ''}")
    print(format_table(med))
    off = [r for r in results if r["guard"] == "off"]
    on = [r for r in results if r["guard"] == "on"]
    throughput = {"off": _median([r["events_per_s"] for r in off]), "on": _median([r["events_per_s"] for r in on])}
    throughput["ratio"] = round(throughput["on"] / throughput["off"], 3) if throughput["off"] else None
    print(f"learning throughput (median events/s): guard off {throughput['off']:.0f}, on {throughput['on']:.0f}, "
          f"ratio {throughput['ratio']}")
    if replay:
        print(f"MovieTweetings prequential replay (in-process): HR@10 guard off {replay['off']['hr@10']}, "
              f"on {replay['on']['hr@10']} (loss {replay['hr_loss']:.2%}), rollbacks {replay['on']['rollbacks']}")
    data = {"rows": [{k: r[k] for k in ROW_KEYS} for r in results], "medians": med, "throughput": throughput,
            "replay": replay}
    (out / "suite.json").write_text(json.dumps(data, indent=2, default=str))
    for scenario, dose in SUITE:
        group = [r for r in results if r["scenario"] == scenario and r["dose"] == dose]
        plot_scenario(group, out / f"{_name(scenario, dose)}.png")
    print(f"wrote {out / 'suite.json'} and {len(SUITE)} plots in {out} ({time.perf_counter() - t0:.0f} s)")
    return data


def _guard_flag(value) -> bool:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("on", "true", "1", "yes"):
            return True
        if v in ("off", "false", "0", "no"):
            return False
        raise ValueError(f"guard must be on/off, got {value!r}")
    return bool(value)


def main_simulate(args: argparse.Namespace) -> int:
    """``freshrec simulate``: one scenario run. ``args``: scenario, dose, guard (bool or
    "on"/"off"), seed, out (directory or None). Prints the result row; with ``out`` also
    writes ``out/<scenario>[_<dose>]_guard-<on|off>_seed<seed>.json`` (row incl. extra) and
    the plot of that run."""
    guard = _guard_flag(getattr(args, "guard", False))
    seed = int(getattr(args, "seed", 0) or 0)
    scenario = args.scenario
    dose = getattr(args, "dose", None)
    if scenario == "bot_burst" and dose is None:
        dose = 4000
    print(f"simulate {scenario}{'' if dose is None else f' dose {dose}'} guard={'on' if guard else 'off'} "
          f"seed {seed} ...", flush=True)
    t0 = time.perf_counter()
    world = {"time_scale": float(getattr(args, "time_scale", 1.0) or 1.0),
             "feedback": getattr(args, "feedback", "clicks") or "clicks",
             "context_effect": float(getattr(args, "context_effect", 0.0) or 0.0)}
    r = run_scenario(scenario, dose, guard, seed, progress=True, **world)
    print(f"done in {time.perf_counter() - t0:.1f} s: {format_row(r)}")
    print(format_table([r]))
    out = getattr(args, "out", None)
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{_name(scenario, r['dose'])}_guard-{r['guard']}_seed{seed}"
        (out / f"{stem}.json").write_text(json.dumps(r, indent=2, default=str))
        plot_scenario([r], out / f"{stem}.png")
        print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")
    return 0


def main_suite(args: argparse.Namespace) -> int:
    """``freshrec simulate --suite``: ``args``: seeds, out (and optionally quick)."""
    out = getattr(args, "out", None) or "freshrec-out/simulate"
    run_suite(int(getattr(args, "seeds", 3) or 3), Path(out), quick=bool(getattr(args, "quick", False)))
    return 0
