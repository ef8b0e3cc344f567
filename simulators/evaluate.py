"""``freshrec evaluate``: off-policy estimates of target policies from a decision log.

Decision log: JSON lines, one served slate per line (the server and the simulators write
exactly this)::

    {"recommendation_id": str, "user_id": str, "t": float (unix s),
     "context": {...} | null,
     "items":   [item ids, best slot first],
     "logging": [per-slot propensity of the logged item under the serving policy, in (0, 1]],
     "rewards": [0/1 per slot: clicked?],
     "rhat":    [per-slot reward-model value of the logged item] | null,
     "targets": {"<policy name>": {"p":    [per-slot probability the target puts the logged item there],
                                   "rhat": [per-slot expected reward-model value under the target] | null}}}

``items``, ``logging``, ``rewards`` and every ``p`` / ``rhat`` have one entry per slot. The
propensities are conditional on the slots above (``engine.core.exploration``). The serving
policy is always evaluated too, as the target ``logging`` (``p = logging``; the name is
reserved). A target is evaluated on the decisions that carry it (a warning says when that
is not all of them); DR runs for a target only when every such decision has both ``rhat``
and the target's ``rhat``.

Output: a table (policy x estimator x variant: expected clicks per slate, per-slot CTR,
95 % interval, ESS, clicks, warnings) on stdout, ``DIR/evaluate.json`` and
``DIR/evaluate.png`` (estimates with their intervals).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from engine.core.ope import VARIANTS, LoggedSlates, estimate_all

LOGGING = "logging"
REQUIRED = ("recommendation_id", "user_id", "t", "items", "logging", "rewards", "targets")


def check_decision(d: dict, where: str = "decision") -> dict:
    """``d`` if it is a well-formed decision-log entry (module docstring).

    Raises:
        ValueError: naming ``where`` and the field: a missing key, items that are not id
            strings, a time that is not a finite number, per-slot lists of different
            lengths, a reward not 0/1, a propensity outside its range, a target
            named ``logging``.
    """
    if not isinstance(d, dict):
        raise ValueError(f"{where}: not a JSON object")
    missing = [key for key in REQUIRED if key not in d]
    if missing:
        raise ValueError(f"{where}: missing {missing}")
    if not isinstance(d["items"], list) or not all(isinstance(i, str) and i for i in d["items"]):
        raise ValueError(f"{where}: items must be a list of item ids (non-empty strings)")
    k = len(d["items"])
    if k == 0:
        raise ValueError(f"{where}: items is empty")
    t = d["t"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise ValueError(f"{where}: t must be the event time in unix seconds, not {t!r}")

    def slots(name: str, values, low: float, high: float, low_open: bool = False) -> None:
        if not isinstance(values, list) or len(values) != k:
            raise ValueError(f"{where}: {name} must be a list of {k} numbers (one per item)")
        for v in values:
            bad = not isinstance(v, (int, float)) or not math.isfinite(v)
            if bad or v > high or v < low or (low_open and v == low):
                raise ValueError(f"{where}: {name} has {v!r}, outside {'(' if low_open else '['}{low}, {high}]")

    slots("logging", d["logging"], 0.0, 1.0, low_open=True)
    slots("rewards", d["rewards"], 0.0, 1.0)
    if d.get("rhat") is not None:
        slots("rhat", d["rhat"], -math.inf, math.inf)
    if not isinstance(d["targets"], dict):
        raise ValueError(f"{where}: targets must be an object")
    for name, target in d["targets"].items():
        if name == LOGGING:
            raise ValueError(f"{where}: the target name {LOGGING!r} is reserved for the serving policy")
        if not isinstance(target, dict) or "p" not in target:
            raise ValueError(f"{where}: targets[{name!r}] must be an object with p")
        slots(f"targets[{name!r}].p", target["p"], 0.0, 1.0)
        if target.get("rhat") is not None:
            slots(f"targets[{name!r}].rhat", target["rhat"], -math.inf, math.inf)
    return d


def read_decisions(path: str | Path, window: int | None = None) -> list[dict]:
    """The decisions of a JSON-lines log (blank lines skipped), the last ``window`` of them
    when given.

    Raises:
        ValueError: a line that is not JSON or not a decision (``check_decision``), naming
            its line number; ``window`` < 1.
    """
    if window is not None and window < 1:
        raise ValueError("--window must be >= 1")
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from None
            out.append(check_decision(obj, f"{path}:{n}"))
    return out[-window:] if window else out


def policies(decisions: list[dict]) -> list[str]:
    """``logging`` first, then every target named in the log (sorted)."""
    return [LOGGING] + sorted({name for d in decisions for name in d["targets"]})


def logged_slates(decisions: list[dict], policy: str) -> LoggedSlates | None:
    """The decisions that carry ``policy`` as (n, k) arrays (k = the longest slate, shorter
    ones masked), or None when none carries it. ``rhat`` is filled only when every one of
    them has both the logged and the target's reward-model values."""
    rows = decisions if policy == LOGGING else [d for d in decisions if policy in d["targets"]]
    if not rows:
        return None
    n, k = len(rows), max(len(d["items"]) for d in rows)
    arrays = {name: np.zeros((n, k)) for name in ("rewards", "logging", "target", "rhat", "target_rhat")}
    mask = np.zeros((n, k), dtype=bool)
    with_model = True
    for i, d in enumerate(rows):
        m = len(d["items"])
        mask[i, :m] = True
        arrays["rewards"][i, :m] = d["rewards"]
        arrays["logging"][i, :m] = d["logging"]
        target = {"p": d["logging"], "rhat": None} if policy == LOGGING else d["targets"][policy]
        arrays["target"][i, :m] = target["p"]
        if d.get("rhat") is None or target.get("rhat") is None:
            with_model = False
        elif with_model:
            arrays["rhat"][i, :m] = d["rhat"]
            arrays["target_rhat"][i, :m] = target["rhat"]
    model = {"rhat": arrays["rhat"], "target_rhat": arrays["target_rhat"]} if with_model else {}
    return LoggedSlates(arrays["rewards"], arrays["logging"], arrays["target"], mask=mask, **model)


LOG_VARIANTS = tuple(v for v in VARIANTS if v != "pbm")
"""The weights a decision log supports: ``engine.core.ope.VARIANTS`` but ``pbm``, whose
all-slot exposures a decision log does not carry."""


def evaluate(decisions: list[dict], variants: tuple[str, ...] = ("slot", "slate"), interval: str = "bootstrap",
             resamples: int = 2000, seed: int = 0) -> list[dict]:
    """One row per policy x estimator x variant (``Estimate.to_dict()`` plus ``policy``).
    DR is left out for a policy whose decisions lack reward-model values; a policy carried
    by only some decisions gets a warning saying so.

    Raises:
        ValueError: no decisions.
    """
    if not decisions:
        raise ValueError("the decision log is empty")
    rows = []
    for policy in policies(decisions):
        log = logged_slates(decisions, policy)
        partial = [] if log.n == len(decisions) else [
            f"partial: evaluated on the {log.n} of {len(decisions)} decisions that carry this target"]
        for est in estimate_all(log, variants=variants, interval=interval, resamples=resamples, seed=seed):
            row = {"policy": policy, **est.to_dict()}
            row["warnings"] = partial + row["warnings"]
            rows.append(row)
    return rows


def with_position_model(decisions: list[dict]) -> list[dict]:
    """The decisions with a position reward model filled in where they have none: ``rhat``
    of slot k = the click rate of slot k over these decisions, for the logged item and under
    every target (the model does not depend on the item, so its expectation under a target
    that fills slot k is the same number). DR with it is IPS with a per-slot control variate
    (Dudik et al. 2011); it lowers variance when slots differ in click rate and never adds
    bias (the reward model is fitted on the same window, so not cross-fitted: a small
    in-sample optimism, negligible for thousands of decisions)."""
    k = max(len(d["items"]) for d in decisions)
    clicks, shown = np.zeros(k), np.zeros(k)
    for d in decisions:
        m = len(d["rewards"])
        clicks[:m] += d["rewards"]
        shown[:m] += 1
    ctr = np.divide(clicks, shown, out=np.zeros(k), where=shown > 0)
    out = []
    for d in decisions:
        if d.get("rhat") is not None:
            out.append(d)
            continue
        r = [round(float(x), 6) for x in ctr[: len(d["items"])]]
        targets = {name: {**t, "rhat": t.get("rhat") if t.get("rhat") is not None else r}
                   for name, t in d["targets"].items()}
        out.append({**d, "rhat": r, "targets": targets})
    return out


def _num(v: float) -> str:
    return f"{v:.5f}" if abs(v) < 10 else f"{v:.1f}"


def format_table(rows: list[dict]) -> str:
    """Fixed-width table of ``evaluate`` rows; warnings shortened to their headline (the
    text before the first colon; the JSON keeps them whole)."""
    head = f"{'policy':<18} {'estimator':<9} {'variant':<7} {'clicks/slate':>12} {'95% interval':>21} " \
           f"{'ESS':>8} {'n':>7} {'clicks':>6}  ctr per slot / warnings"
    lines = [head, "-" * len(head)]
    for r in rows:
        interval = f"[{_num(r['low'])}, {_num(r['high'])}]"
        ctr = " ".join(_num(c) for c in r["ctr"])
        tags = "; ".join(w.split(":")[0] for w in r["warnings"])
        lines.append(f"{r['policy']:<18} {r['estimator']:<9} {r['variant']:<7} {_num(r['value']):>12} {interval:>21} "
                     f"{r['ess']:>8.1f} {r['n']:>7} {r['clicks']:>6}  {ctr}" + (f"  ! {tags}" if tags else ""))
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str = "off-policy estimates (95 % intervals)") -> None:
    """PNG: one horizontal bar per row, the estimate as a dot and its interval as a line,
    coloured by estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"ips": "tab:blue", "snips": "tab:orange", "dr": "tab:green"}
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.4))
    for y, r in enumerate(rows):
        c = colours.get(r["estimator"], "tab:gray")
        ax.plot([r["low"], r["high"]], [y, y], color=c, lw=2)
        ax.plot([r["value"]], [y], "o", color=c, ms=5, mfc="white" if r["warnings"] else c)
    ax.set_yticks(range(len(rows)), [f"{r['policy']} {r['estimator']} {r['variant']}" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("expected clicks per slate (hollow dot: the estimate has warnings)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(rows: list[dict], out: Path, stem: str, meta: dict, title: str | None = None) -> None:
    """``out/<stem>.json`` (``meta`` + rows) and ``out/<stem>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps({**meta, "estimates": rows}, indent=2))
    plot(rows, out / f"{stem}.png", **({"title": title} if title else {}))


def main(args: argparse.Namespace) -> int:
    """``freshrec evaluate LOG [--window N] [--out DIR] ...`` or ``--redis-url URL [--candidate
    NAME=JSON ...]`` (``simulators.stream_decisions``); ``--open-bandit`` is
    ``simulators.open_bandit.main`` (the CLI dispatches)."""
    variants = tuple(v.strip() for v in args.variants.split(","))
    unknown = [v for v in variants if v not in LOG_VARIANTS]
    if unknown:
        raise SystemExit(f"freshrec evaluate: --variants {','.join(unknown)}: expected some of {', '.join(LOG_VARIANTS)}"
                         + (" (pbm weights need every logged item's exposure over all slots, which a decision log "
                            "does not carry yet; simulators.ope_experiment computes them)" if "pbm" in unknown else ""))
    if getattr(args, "redis_url", None):
        from simulators.stream_decisions import from_redis

        decisions, source = from_redis(args)
        print(f"{source['events']} stream events ({source['undecodable']} undecodable), {source['slates']} slates, "
              f"{source['open_decisions']} still inside their reward window")
        if not decisions:
            raise SystemExit("freshrec evaluate: no complete decision yet (every slate is inside its reward window)")
        where = args.redis_url
    elif args.log:
        try:
            decisions, source, where = read_decisions(args.log, args.window), {"log": str(args.log)}, args.log
        except (OSError, ValueError) as exc:  # the reader's messages name the file and line
            raise SystemExit(f"freshrec evaluate: {exc}") from None
        if not decisions:
            raise SystemExit(f"freshrec evaluate: {args.log} holds no decision")
    else:
        raise SystemExit("freshrec evaluate: give a decision log (JSON lines), --redis-url URL or --open-bandit")
    decisions = with_position_model(decisions) if getattr(args, "dr_position_model", True) else decisions
    rows = evaluate(decisions, variants, args.interval, args.resamples, args.seed)
    print(f"{len(decisions)} decisions from {where}" + (f" (last {args.window})" if args.window else ""))
    print(format_table(rows))
    out = Path(args.out)
    write_outputs(rows, out, "evaluate", {**source, "decisions": len(decisions), "window": args.window,
                                          "interval": args.interval, "resamples": args.resamples, "seed": args.seed})
    print(f"wrote {out / 'evaluate.json'} and {out / 'evaluate.png'}")
    return 0
