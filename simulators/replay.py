"""Prequential (test-then-train) replay of a rating log through freshrec's HTTP API.

The log's semantics travel with it: the replay starts its server with the data's rating
scale and positive threshold (``--rating-scale MIN:MAX --positive-threshold X``; by default
the scale seen in the data and its top quarter), reads the event schema back from
``GET /model``, and decides what a positive is by that schema alone; against a running
server (``--url``) it refuses a schema that disagrees with the flags.

For every positive event the replay first asks ``POST /recommend``
(k=10) for that user and scores the slate against the event's item (HR@10, NDCG@10), then
sends the event to ``POST /feedback``. Non-positive events are only sent as feedback
(batched through ``POST /feedback/batch`` until the next positive). Test-then-train is
strict: before each ``/recommend`` the replay waits (``GET /model/learned``, a server-side
long poll, no client sleep) until every event it sent earlier has been learned, so results
do not depend on machine speed. The anchors (all-time and decayed popularity) see the same
events in the same order with the same exclusion rule.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from tqdm import tqdm

from api.settings import Settings
from engine.config import EngineConfig, EventType
from engine.core.events import Semantics
from engine.core.features import feature_groups
from simulators.anchors import PopularityAnchors
from simulators.datasets import (BUNDLED, UNIT_NAMES, BadRow, Rating, csv_columns, detect_time_unit, load_csv,
                                 load_movietweetings)
from simulators.metrics import hit_and_ndcg
from simulators.prequential import BATCH_PERIODS_S, prequential
from simulators.server_process import ServerProcess

K = 10


def replay(ratings: list[Rating], url: str, dataset: str = "ratings", progress: bool = True) -> dict:
    """Replay ``ratings`` (time-ordered, event type ``rating``) against the server at
    ``url``; a rating is a positive by the server's own event schema.

    Returns:
        the results dict (see ``write_results``) plus per-positive hit arrays under
        ``"_hits"`` (model name -> float array, one entry per positive) for plotting.
        ``models.random`` is the expected HR@10 of a random slate of unseen known items.

    Raises:
        httpx.HTTPStatusError: the server answered an error.
    """
    anchors = PopularityAnchors()
    names = ["freshrec", *anchors.counters]
    hits = {n: [] for n in names}
    ndcgs = {n: [] for n in names}
    random_hits = 0.0
    rec_ms: list[tuple[float, float]] = []  # (unix s at request, latency ms)
    pending: list[dict] = []
    last_sent: str | None = None
    positives = 0
    t0 = time.time()
    with httpx.Client(base_url=url, timeout=60.0) as http:
        semantics = server_semantics(http)
        unknown = sorted({r.event for r in ratings} - set(semantics.types))
        if unknown:
            raise SystemExit(f"the log's event types {unknown} are not in the server's schema "
                             f"({', '.join(sorted(semantics.types))}); declare them in a TOML file given with "
                             "--config, e.g. [engine.events] view = {role = \"positive\", weight = 0.2}")

        def send(batch: list[dict]) -> str:
            if len(batch) == 1:
                r = http.post("/feedback", json=batch[0])
                r.raise_for_status()
                return r.json()["event_id"]
            r = http.post("/feedback/batch", json={"events": batch})
            r.raise_for_status()
            return r.json()["event_ids"][-1]

        for row in tqdm(ratings, desc="replay", unit="ev", disable=not progress, mininterval=1.0):
            body = {"user_id": row.user_id, "item_id": row.item_id, "event": row.event, "timestamp": row.timestamp}
            if row.value is not None:
                body["value"] = row.value
            positive = semantics.is_positive(row.event, row.value)
            if positive:
                if pending:
                    last_sent = send(pending)
                    pending = []
                if last_sent is not None:
                    r = http.get("/model/learned", params={"event_id": last_sent, "timeout_ms": 30_000})
                    r.raise_for_status()
                    if not r.json()["learned"]:
                        raise RuntimeError(f"event {last_sent} not learned within 30 s")
                started = time.time()
                a = time.perf_counter()
                r = http.post("/recommend", json={"user_id": row.user_id, "k": K})
                rec_ms.append((started, (time.perf_counter() - a) * 1000.0))
                r.raise_for_status()
                slates = {"freshrec": [it["item_id"] for it in r.json()["items"]], **anchors.recommend(row.user_id, K)}
                for name, slate in slates.items():
                    h, g = hit_and_ndcg(slate, row.item_id, K)
                    hits[name].append(h)
                    ndcgs[name].append(g)
                random_hits += anchors.random_hit(row.user_id, row.item_id, K)
                positives += 1
                last_sent = send([body])
            else:
                pending.append(body)
                if len(pending) >= 1000:
                    last_sent = send(pending)
                    pending = []
            anchors.learn(row.user_id, row.item_id, row.timestamp, positive)
        if pending:
            last_sent = send(pending)
        if last_sent is not None:
            http.get("/model/learned", params={"event_id": last_sent, "timeout_ms": 30_000}).raise_for_status()
        model = http.get("/model").json()
    wall = time.time() - t0

    def summary(name: str) -> dict:
        n = max(1, len(hits[name]))
        return {"hr@10": round(sum(hits[name]) / n, 4), "ndcg@10": round(sum(ndcgs[name]) / n, 4)}

    decayed = {name: summary(name) for name in names if name.startswith("decayed_")}
    best = max(decayed, key=lambda n: decayed[n]["hr@10"])
    lat = np.array([ms for _, ms in rec_ms]) if rec_ms else np.zeros(1)
    windows = model.get("checkpoints") or []
    during = np.array([ms for ts, ms in rec_ms if any(s <= ts <= e for s, e in windows)])
    results = {
        "dataset": dataset,
        "events": len(ratings),
        "positives": positives,
        "wall_s": round(wall, 1),
        "models": {
            "freshrec": summary("freshrec"),
            "random": {"hr@10": round(random_hits / max(1, positives), 4)},
            "popularity": summary("popularity"),
            "decayed_popularity": {**decayed[best], "half_life_h": float(best[len("decayed_"):-1])},
            **{name: summary(name) for name in names if name.startswith("decayed_")},
        },
        "freshness_ms": model["freshness_ms"],
        "recommend_ms": {
            "p50": round(float(np.percentile(lat, 50)), 3),
            "p99": round(float(np.percentile(lat, 99)), 3),
            "during_checkpoint": {
                "requests": int(during.size),
                "p50": round(float(np.percentile(during, 50)), 3) if during.size else None,
                "p99": round(float(np.percentile(during, 99)), 3) if during.size else None,
            },
        },
        "checkpoints": len(windows),
        "events_learned": model["events_learned"],
        "positives_learned": model["positives_learned"],
        "schema": model["schema"],
        "_hits": {n: np.array(v) for n, v in hits.items()},
    }
    return results


def server_semantics(http: httpx.Client) -> Semantics:
    """The event schema of the server behind ``http`` (``GET /model``)."""
    r = http.get("/model")
    r.raise_for_status()
    return Semantics({name: EventType(**spec) for name, spec in r.json()["schema"].items()})


def failures(results: dict) -> list[str]:
    """Why a replay's model should not be trusted, one line per reason (empty: none): it
    learned no positive (the events' semantics did not reach the server), or it hits less
    often than a random slate of unseen items."""
    out = []
    m = results["models"]
    if results["positives_learned"] == 0:
        out.append(f"the server learned no positive from {results['events']} events: its schema "
                   f"{results['schema'].get('rating')} makes none of the data's ratings a positive")
    elif m["freshrec"]["hr@10"] < m["random"]["hr@10"]:
        out.append(f"freshrec HR@10 {m['freshrec']['hr@10']:.4f} is below a random slate's "
                   f"{m['random']['hr@10']:.4f}")
    return out


def write_results(results: dict, out: Path) -> None:
    """Write ``out/results.json`` and ``out/hr_over_time.png``; print the summary table."""
    out.mkdir(parents=True, exist_ok=True)
    hits = results.pop("_hits")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    _plot(hits, out / "hr_over_time.png", results["dataset"])
    m = results["models"]
    print()
    print(f"{'model':<26}{'HR@10':>8}{'NDCG@10':>9}")
    rows = [("freshrec", m["freshrec"]), ("popularity (all-time)", m["popularity"])]
    rows += [(f"freshrec {name} batches", m[f"batch_{name}"]) for name in ("hourly", "daily", "weekly")
             if f"batch_{name}" in m]
    rows += [(n, m[n]) for n in m if n.startswith("decayed_") and n != "decayed_popularity"]
    for name, v in rows:
        print(f"{name:<26}{v['hr@10']:>8.4f}{v['ndcg@10']:>9.4f}")
    print(f"{'random slate (expected)':<26}{m['random']['hr@10']:>8.4f}")
    best = m["decayed_popularity"]
    print(f"best decayed popularity: half-life {best['half_life_h']:g} h, HR@10 {best['hr@10']:.4f}")
    lift = m["freshrec"]["hr@10"] / best["hr@10"] if best["hr@10"] else float("nan")
    print(f"freshrec / best decayed HR@10: {lift:.3f}")
    f = results["freshness_ms"]
    r = results["recommend_ms"]
    print(f"events {results['events']}, positives {results['positives']}, wall {results['wall_s']} s")
    print(f"feedback->learned ms: p50 {f['p50']}, p99 {f['p99']}")
    print(f"/recommend ms (client): p50 {r['p50']}, p99 {r['p99']}; during checkpoints "
          f"({r['during_checkpoint']['requests']} requests): p50 {r['during_checkpoint']['p50']}, "
          f"p99 {r['during_checkpoint']['p99']}")
    if "ablation" in results:
        print(f"\n{'ablation (in process)':<26}{'HR@10':>8}{'NDCG@10':>9}")
        for name, v in results["ablation"].items():
            print(f"{name:<26}{v['hr@10']:>8.4f}{v['ndcg@10']:>9.4f}")
    if "exploration_cost" in results:
        e = results["exploration_cost"]
        print(f"\nexploration cost (in process, epsilon {e['epsilon']:g} per slot): greedy HR@10 {e['greedy_hr@10']:.4f}; "
              f"with exploration HR@10 {e['hr@10']:.4f} = exploited slots {e['exploited_hr@10']:.4f} + explored slots "
              f"{e['explored_hr@10']:.4f}; exploited / greedy {e['exploited_over_greedy']:.4f}")
    print(f"wrote {out / 'results.json'} and {out / 'hr_over_time.png'}")


def _plot(hits: dict[str, np.ndarray], path: Path, dataset: str, window: int = 2000) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, h in hits.items():
        if h.size < 2:
            continue
        w = min(window, h.size)
        rolling = np.convolve(h, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w - 1, h.size), rolling, label=name, lw=2.2 if name == "freshrec" else 1.0)
    ax.set_xlabel("positive events (prequential order)")
    ax.set_ylabel(f"HR@10, rolling window of {window} positives")
    ax.set_title(f"Prequential HR@10 over the stream: {dataset}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


IMPLICIT_SCALE, IMPLICIT_THRESHOLD = "0:1", 1.0
"""How an implicit log (no rating column) is declared: every row is a rating of 1 on 0:1,
a positive from 1, so each interaction is a positive for the server and the anchors."""


def _load(args: argparse.Namespace) -> list[Rating]:
    event_column = getattr(args, "event_column", None)
    if event_column and args.format != "csv":
        raise SystemExit("--event-column needs --format csv")
    if args.format == "csv":
        try:
            cols = csv_columns(args.data, args.columns, args.delimiter)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        if cols[2] is None and not event_column:
            if args.rating_scale or args.positive_threshold is not None:
                raise SystemExit("an implicit log (no rating column) has no rating scale or positive threshold: "
                                 "every row is a positive")
            args.rating_scale, args.positive_threshold = IMPLICIT_SCALE, IMPLICIT_THRESHOLD
            print("no rating column: an implicit log, every row is a positive (declared to the server as "
                  f"--rating-scale={IMPLICIT_SCALE} --positive-threshold={IMPLICIT_THRESHOLD:g})")
        unit = getattr(args, "time_unit", "auto")
        if unit == "auto":
            unit = detect_time_unit(args.data, cols[3], args.delimiter)
            if unit != "s":
                print(f"timestamps of {cols[3]!r} read as {UNIT_NAMES[unit]} (by their magnitude; "
                      "--time-unit sets it)")
        rows = load_csv(args.data, cols, args.delimiter, unit, event_column)
    else:
        rows = load_movietweetings(args.data)
    if not rows:
        raise ValueError(f"{args.data}: no rows to replay (only a header?)")
    repeats = len(rows) - len({(r.user_id, r.item_id, r.value, r.timestamp, r.event) for r in rows})
    if repeats:
        print(f"NOTE: {repeats:,} rows ({repeats / len(rows):.1%}) repeat an earlier row exactly (user, item, value, "
              "time, event): each is replayed as an event, and a repeated positive can never be a hit (the item is "
              "already seen); drop them first if they are logging duplicates")
    return rows[: args.limit] if args.limit else rows


def rating_semantics(ratings: list[Rating], scale: str | None = None, threshold: float | None = None) -> dict:
    """The ``rating`` event type of this data: ``scale`` ("MIN:MAX") or the range seen in
    the data, and ``threshold`` or the top quarter of the scale (8 on 0-10, 4 on 1-5).

    Raises:
        SystemExit: a malformed scale, or a threshold outside it.
    """
    if scale:
        low, sep, high = scale.partition(":")
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            lo = hi = None
        if not sep or lo is None or lo >= hi:
            raise SystemExit(f"--rating-scale {scale}: expected MIN:MAX with MIN < MAX, e.g. 1:5")
    else:
        values = [r.value for r in ratings if r.event == "rating" and r.value is not None]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    thr = threshold if threshold is not None else lo + 0.75 * (hi - lo)
    if not lo <= thr <= hi:
        raise SystemExit(f"--positive-threshold {thr:g} is outside the rating scale {lo:g}:{hi:g}")
    return {"role": "rating", "min": lo, "max": hi, "positive_threshold": thr}


def run(ratings: list[Rating], url: str | None, out: Path, dataset: str, rating: dict,
        server_args: tuple[str, ...] = (), batch: bool = True, ablation: bool = False,
        exploration: float | None = None, config_file: str | None = None) -> dict:
    """Replay against ``url`` (refusing a server whose rating semantics differ from
    ``rating``), or start a server with ``rating`` (and ``--config config_file``, plus
    ``server_args``) on a fresh embedded Redis in ``out/redis``; then the in-process
    comparisons under the same settings (``engine_config``; ``batch``: the same engine learning
    hourly, daily and weekly; ``ablation``: each feature group of the ranker left out;
    ``exploration``: the cost of epsilon-greedy at this epsilon, ``exploration_cost``).

    Raises:
        SystemExit: the running server's schema disagrees with the data's.
    """
    out.mkdir(parents=True, exist_ok=True)
    if url:
        with httpx.Client(base_url=url, timeout=30.0) as http:
            theirs = server_semantics(http).describe().get("rating", {})
        diff = [f"{k}: server {theirs.get(k)!r}, data {v!r}" for k, v in rating.items() if theirs.get(k) != v]
        if diff:
            raise SystemExit(f"the server at {url} reads ratings differently from this data ({'; '.join(diff)}); "
                             f"start it with --rating-scale={rating['min']:g}:{rating['max']:g} "
                             f"--positive-threshold={rating['positive_threshold']:g}, or replay without --url")
        results = replay(ratings, url, dataset)
    else:
        data_dir = out / "redis"
        shutil.rmtree(data_dir, ignore_errors=True)  # a replay starts from an empty model
        # the "--flag=value" form: a negative value ("-10:10") would read as an option
        flags = [f"--rating-scale={rating['min']:g}:{rating['max']:g}",
                 f"--positive-threshold={rating['positive_threshold']:g}",
                 *(("--config", config_file) if config_file else ()), *server_args]
        with ServerProcess(data_dir=data_dir, extra_args=flags, log_path=out / "server.log") as server:
            results = replay(ratings, server.url, dataset)
    config = engine_config(rating, config_file)
    if batch:
        compare_batches(results, ratings, config)
    if ablation:
        results["ablation"] = ablate(ratings, config)
    if exploration is not None:
        results["exploration_cost"] = exploration_cost(ratings, config, exploration)
    write_results(results, out)
    return results


def engine_config(rating: dict, config_file: str | None = None) -> EngineConfig:
    """The engine settings of the in-process comparisons: those of the replay's server (the
    TOML ``config_file``, as ``--config`` gives it, over the defaults) with the data's
    ``rating`` type, as the server's ``--rating-scale`` / ``--positive-threshold`` set it.

    Raises:
        FileNotFoundError, pydantic.ValidationError: as ``api.settings.Settings.load``.
    """
    engine = Settings.load(config_file=config_file).engine if config_file else EngineConfig()
    return engine.model_copy(update={"events": {**engine.events, "rating": EventType(**rating)}})


def compare_batches(results: dict, ratings: list[Rating], config: EngineConfig) -> None:
    """Add the same engine, in process, learning online and in hourly / daily / weekly
    batches of event time (``simulators.prequential``) to ``results["models"]``."""
    models = results["models"]
    online = prequential(ratings, config, label="online (in process)")
    models["online_in_process"] = {k: online[k] for k in ("hr@10", "ndcg@10")}
    results["_hits"]["online (in process)"] = online.pop("hits")
    results["ranker_weights"] = online["weights"]
    for name, period in BATCH_PERIODS_S.items():
        r = prequential(ratings, config, batch_s=period, label=f"{name} batches")
        models[f"batch_{name}"] = {k: r[k] for k in ("hr@10", "ndcg@10")}
        results["_hits"][f"{name} batches"] = r.pop("hits")
    base = models["online_in_process"]["hr@10"]
    results["online_over_batch"] = {name: round(base / models[f"batch_{name}"]["hr@10"], 3)
                                    if models[f"batch_{name}"]["hr@10"] else None for name in BATCH_PERIODS_S}


def ablate(ratings: list[Rating], config: EngineConfig) -> dict:
    """HR@10 / NDCG@10 of the in-process engine with each feature group of its ranker left
    out (``EngineConfig.ranker_ablate``), beside the full engine."""
    rows = {"all features": prequential(ratings, config, label="ablation: all")}
    for group in feature_groups(config):
        rows[f"without {group}"] = prequential(ratings, config.model_copy(update={"ranker_ablate": (group,)}),
                                               label=f"ablation: -{group}")
    return {name: {k: r[k] for k in ("hr@10", "ndcg@10")} for name, r in rows.items()}


def exploration_cost(ratings: list[Rating], config: EngineConfig, epsilon: float) -> dict:
    """What epsilon-greedy exploration costs on a log: HR@10 of the same in-process engine
    greedy and with ``epsilon`` per slot, the latter split into the hits of its exploited
    slots (the ranker's choices) and of its explored ones. In a replay the users never saw
    our slates, so exploration can only cost here; the ratio of exploited HR@10 to greedy
    HR@10 is the price of the information exploration buys on live traffic."""
    greedy = prequential(ratings, config.model_copy(update={"explore": "none"}), label="greedy")
    explored = prequential(ratings, config.model_copy(update={"explore": "epsilon", "explore_epsilon": epsilon}),
                           label=f"epsilon {epsilon:g}")
    base = greedy["hr@10"]
    return {"epsilon": epsilon, "greedy_hr@10": base, "hr@10": explored["hr@10"],
            "exploited_hr@10": explored["hr@10_exploited"], "explored_hr@10": explored["hr@10_explored"],
            "exploited_over_greedy": round(explored["hr@10_exploited"] / base, 4) if base else None}


def main(args: argparse.Namespace) -> int:
    """``freshrec replay``: exits 1 when the model learned nothing worth trusting."""
    try:
        ratings = _load(args)
    except (BadRow, KeyError, ValueError, OSError) as exc:  # the message names the file, line and field
        print(f"freshrec replay: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
    rating = rating_semantics(ratings, args.rating_scale, args.positive_threshold)
    try:
        results = run(ratings, args.url, Path(args.out), Path(args.data).name, rating, batch=not args.no_batch,
                      ablation=args.ablation, exploration=args.exploration, config_file=args.config)
    except httpx.HTTPStatusError as exc:
        print(f"freshrec replay: the server refused {exc.request.method} {exc.request.url.path} "
              f"({exc.response.status_code}): {_detail(exc.response)}", file=sys.stderr)
        return 2
    except httpx.TransportError as exc:  # the server went away (killed, crashed) or never answered
        return _server_gone("replay", exc, Path(args.out))
    return _verdict(results)


def _server_gone(command: str, exc: httpx.TransportError, out: Path) -> int:
    """Say that the server stopped answering (and where the log of one this command started
    is); exit status 2."""
    print(f"freshrec {command}: the server stopped answering at {exc.request.method} {exc.request.url} "
          f"({type(exc).__name__}: {exc}); a server this {command} started logs to {out / 'server.log'}",
          file=sys.stderr)
    return 2


def _detail(response: httpx.Response) -> str:
    """An error response's detail, the fields it names first (FastAPI's 422 ``detail`` list)."""
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return response.text[:500]
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg', d)}" for d in detail
                         if isinstance(d, dict)) or str(detail)
    return str(detail)


def _verdict(results: dict) -> int:
    problems = failures(results)
    for line in problems:
        print(f"FAIL: {line}")
    return 1 if problems else 0


def demo(args: argparse.Namespace) -> int:
    """``freshrec demo``: embedded Redis + server + replay of the bundled MovieTweetings-100K
    (ratings 0-10, a positive from 8)."""
    ratings = load_movietweetings(BUNDLED / "ratings.dat")
    if args.limit:
        ratings = ratings[: args.limit]
    rating = rating_semantics(ratings, "0:10", 8.0)
    try:
        results = run(ratings, None, Path(args.out), "movietweetings-100k", rating,
                      server_args=("--snapshot-every-events", "5000"), batch=not args.no_batch,
                      ablation=args.ablation, exploration=args.exploration)
    except httpx.TransportError as exc:
        return _server_gone("demo", exc, Path(args.out))
    m = results["models"]
    ok = m["freshrec"]["hr@10"] > m["decayed_popularity"]["hr@10"]
    print("PASS: freshrec beats the best decayed-popularity anchor" if ok
          else "NOTE: freshrec does not beat the best decayed-popularity anchor on this run")
    return _verdict(results)
