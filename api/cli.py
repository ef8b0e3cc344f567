"""The ``freshrec`` command: serve, learner, import, export, replay, demo, simulate, evaluate."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from api.arg_types import delimiter, positive_int
from simulators.datasets import TIME_UNITS


def _settings(args: argparse.Namespace):
    from api.settings import from_args_or_exit

    return from_args_or_exit(args)


def _serve(args: argparse.Namespace) -> int:
    import json

    import uvicorn

    import logging.config

    from api.app import WORKER_ARGS_ENV, create_app
    from api.log_config import logging_config
    from api.settings import flags_of

    settings = _settings(args)
    if args.print_config:
        print(json.dumps(settings.redacted(), indent=2))
        return 0
    from api.security import check_exposure

    log_config = logging_config(settings.log_format, settings.access_log)  # uvicorn applies it in every process
    logging.config.dictConfig(log_config)  # ... and here for the lines before it starts
    check_exposure(settings)  # open mode: one warning line, or SystemExit on a non-loopback host
    if settings.workers > 1:
        if settings.learner:
            raise SystemExit("--workers N needs --no-learner (one learner: run `freshrec learner`)")
        if not settings.redis_url:
            raise SystemExit("--workers N needs --redis-url (the learner and every replica share one Redis)")
        os.environ[WORKER_ARGS_ENV] = json.dumps({"flags": flags_of(args), "config": getattr(args, "config", None)})
        uvicorn.run("api.app:app_from_env", factory=True, workers=settings.workers, host=settings.host,
                    port=settings.port, log_level=settings.log_level, loop="uvloop", http="httptools",
                    access_log=False, log_config=log_config)
        return 0
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                loop="uvloop", http="httptools", access_log=False, timeout_graceful_shutdown=5, log_config=log_config)
    return 0


EXIT_ROLE_FAILED = 1
"""``freshrec learner`` exit status when its role failed (``ops.max_failures`` in a row)."""
EXIT_MISCONFIGURED = 2
"""... when it cannot start (Redis unreachable or evicting, snapshots not verifiable, schema)."""


def _learner(args: argparse.Namespace) -> int:
    """``freshrec learner``: the single writer, without HTTP (replicas serve). Exits 0 on
    SIGTERM / SIGINT, ``EXIT_ROLE_FAILED`` when the learner or checkpointer failed (so an
    orchestrator restarts it), ``EXIT_MISCONFIGURED`` when it cannot start."""
    import asyncio
    import logging.config
    import signal

    from api.log_config import logging_config
    from api.settings import secret
    from engine.roles.node import STARTUP_ERRORS, Node, running

    settings = _settings(args)
    logging.config.dictConfig(logging_config(settings.log_format))
    log = logging.getLogger("freshrec.learner")

    async def run() -> int:
        node = await Node.open(settings.redis_url, settings.data_dir, snapshot_key=secret(settings.snapshot_key),
                               appendfsync=settings.appendfsync, engine=settings.engine, guard=settings.guard,
                               snapshots=settings.snapshots, policies=settings.policies, key_prefix=settings.key_prefix,
                               ops=settings.ops)
        async with running(node, final_snapshot=settings.final_snapshot):
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([stopped, node.task], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if node.failed:
                log.critical("freshrec learner: %s failed (%s); exiting with status %d", ", ".join(node.failed),
                             "; ".join(f"{r.name}: {r.last_error}" for r in node.roles if r.last_error),
                             EXIT_ROLE_FAILED)
                return EXIT_ROLE_FAILED
        return 0

    try:
        return asyncio.run(run())
    except STARTUP_ERRORS as exc:
        print(f"freshrec learner cannot start: {exc}", file=sys.stderr)
        return EXIT_MISCONFIGURED


def _replay(args: argparse.Namespace) -> int:
    from simulators.replay import main as replay_main

    return replay_main(args)


def _import(args: argparse.Namespace) -> int:
    from api.importer import main as import_main

    return import_main(args)


def _export(args: argparse.Namespace) -> int:
    from api.exporter import main as export_main

    return export_main(args)


def _demo(args: argparse.Namespace) -> int:
    from simulators.replay import demo

    return demo(args)


def _simulate(args: argparse.Namespace) -> int:
    from simulators.suite import main_simulate, main_suite

    if args.generality:
        from pathlib import Path

        from simulators.generality import run_generality

        data = run_generality(args.seeds, Path(args.out) / "generality", quick=args.quick)
        return 0 if all(data["passed"].values()) else 1
    if args.suite:
        return main_suite(args)
    if not args.scenario:
        raise SystemExit("freshrec simulate: give --scenario S or --suite")
    return main_simulate(args)


def _evaluate(args: argparse.Namespace) -> int:
    if args.open_bandit:
        from simulators.open_bandit import main as open_bandit_main

        return open_bandit_main(args)
    from simulators.evaluate import main as evaluate_main

    return evaluate_main(args)


def build_parser() -> argparse.ArgumentParser:
    from api.settings import add_flags

    p = argparse.ArgumentParser(prog="freshrec", description="Online-learning recommender on River + Redis.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP API (+ learner) on uvicorn", allow_abbrev=False,
                       description="Every setting is a flag (below), a FRESHREC_* variable or a TOML entry.")
    add_flags(s)
    s.add_argument("--print-config", action="store_true", help="print the effective settings and exit")
    s.set_defaults(func=_serve)

    le = sub.add_parser("learner", help="run the single learner (no HTTP) for replicas started with --no-learner",
                        allow_abbrev=False)
    add_flags(le)
    le.set_defaults(func=_learner)

    r = sub.add_parser("replay", help="prequential replay of a rating log through the HTTP API")
    r.add_argument("data", help="ratings file (MovieTweetings ratings.dat or CSV)")
    r.add_argument("--format", choices=["movietweetings", "csv"], default="movietweetings")
    r.add_argument("--rating-scale", default=None, metavar="MIN:MAX",
                   help="the data's rating scale (default: the range in the data; a negative minimum "
                        "needs the = form, --rating-scale=-10:10)")
    r.add_argument("--positive-threshold", type=float, default=None, metavar="X",
                   help="a rating >= X is a positive (default: the top quarter of the scale)")
    r.add_argument("--config", default=None, metavar="FILE", help="TOML settings for the replay's server")
    r.add_argument("--no-batch", action="store_true", help="skip the hourly/daily/weekly batch comparison")
    r.add_argument("--ablation", action="store_true", help="also replay with each ranker feature group left out")
    r.add_argument("--exploration", type=float, default=None, metavar="EPS",
                   help="also measure what epsilon-greedy exploration at EPS costs (exploited vs explored slots)")
    r.add_argument("--url", default=None, help="running freshrec server (default: start one on embedded Redis)")
    r.add_argument("--limit", type=positive_int, default=None, help="replay only the first N events (time order)")
    r.add_argument("--out", default="freshrec-out/replay")
    r.add_argument("--columns", default=None,
                   help="CSV header names for user,item,rating,timestamp, or user,item,timestamp for an implicit "
                        "log (every row a positive); default user_id,item_id,rating,timestamp, without rating "
                        "when the header has none")
    r.add_argument("--delimiter", type=delimiter, default=",", help="CSV delimiter: one character, or \\t / tab")
    r.add_argument("--event-column", default=None, metavar="NAME",
                   help="a CSV column naming each row's event type (view, purchase, ...; declare their roles "
                        "in --config's [engine.events]); rows of type rating keep their value")
    r.add_argument("--time-unit", choices=["auto", *TIME_UNITS], default="auto",
                   help="unit of a CSV's numeric timestamps (default auto: by their magnitude; ISO 8601 "
                        "date-times are read as they are)")
    r.set_defaults(func=_replay)

    im = sub.add_parser("import", help="append a historical log to the stream (resumable) for the learner to learn",
                        allow_abbrev=False, description="Settings flags (--redis-url, --data-dir, --rating-scale, "
                        "...) name the Redis and the event schema, as for freshrec serve.")
    from api.importer import add_arguments as import_arguments

    import_arguments(im)
    add_flags(im)
    im.set_defaults(func=_import)

    ex = sub.add_parser("export", help="slates for a list of users as CSV or JSON lines (Amazon Personalize batch "
                        "output), from a server or the newest snapshot", allow_abbrev=False)
    from api.exporter import add_arguments as export_arguments

    export_arguments(ex)
    add_flags(ex)
    ex.set_defaults(func=_export)

    d = sub.add_parser("demo", help="embedded Redis + server + full replay of the bundled MovieTweetings stream")
    d.add_argument("--out", default="freshrec-out/demo")
    d.add_argument("--limit", type=positive_int, default=None)
    d.add_argument("--no-batch", action="store_true", help="skip the hourly/daily/weekly batch comparison")
    d.add_argument("--ablation", action="store_true", help="also replay with each ranker feature group left out")
    d.add_argument("--exploration", type=float, default=None, metavar="EPS",
                   help="also measure what epsilon-greedy exploration at EPS costs (exploited vs explored slots)")
    d.set_defaults(func=_demo)

    m = sub.add_parser("simulate", help="synthetic ground-truth world: attack/drift scenarios, guard on/off")
    m.add_argument("--scenario", choices=["stationary", "bot_burst", "cohort", "viral_trend", "drift"])
    m.add_argument("--dose", type=int, default=None, help="bot clicks (bot_burst; default 4000)")
    m.add_argument("--guard", choices=["on", "off"], default="on")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--suite", action="store_true", help="every scenario, guard on and off, on --seeds seeds")
    m.add_argument("--seeds", type=int, default=3)
    m.add_argument("--quick", action="store_true", help="smaller world (smoke run)")
    m.add_argument("--time-scale", type=float, default=1.0,
                   help="multiply every event time offset (0.01: 100x compressed, 100: 100x stretched)")
    m.add_argument("--feedback", choices=["clicks", "implicit"], default="clicks",
                   help="implicit: views (exposure), clicks and purchases (weight 3), no ratings")
    m.add_argument("--context-effect", type=float, default=0.0,
                   help="> 0: tastes differ by time of day; requests and events carry the daypart")
    m.add_argument("--generality", action="store_true",
                   help="time scales vs the best fixed-constant engine, implicit feedback, context (--seeds)")
    m.add_argument("--out", default="freshrec-out/simulate")
    m.set_defaults(func=_simulate)

    ev = sub.add_parser("evaluate", help="off-policy estimates (IPS, SNIPS, DR) of target policies from a decision log")
    ev.add_argument("log", nargs="?", help="decision log, JSON lines (format: simulators/evaluate.py)")
    ev.add_argument("--window", type=int, default=None, metavar="N", help="use the last N decisions")
    ev.add_argument("--variants", default="slot,slate", help="comma-separated weights: slot, prefix, slate")
    ev.add_argument("--interval", choices=["bootstrap", "bernstein"], default="bootstrap",
                    help="95%% interval: percentile bootstrap or empirical Bernstein (Maurer & Pontil 2009)")
    ev.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    ev.add_argument("--seed", type=int, default=0, help="seeds the bootstrap")
    ev.add_argument("--open-bandit", action="store_true",
                    help="instead of LOG: the bundled Open Bandit sample (random and bts logs) with a freshrec target")
    ev.add_argument("--limit", type=positive_int, default=None, metavar="N",
                    help="--open-bandit: the first N rows of each log")
    ev.add_argument("--redis-url", default=None, metavar="URL",
                    help="instead of LOG: rebuild the decisions from this deployment's feedback stream "
                         "(it must run with --engine.log-slates true)")
    ev.add_argument("--key-prefix", default=None, help="--redis-url: the deployment's key prefix (default: settings)")
    ev.add_argument("--config", default=None, metavar="FILE", help="--redis-url: the deployment's TOML settings "
                                                                    "(the base of every --candidate)")
    ev.add_argument("--candidate", action="append", metavar="NAME=JSON",
                    help="--redis-url: a candidate policy, engine settings over the base, trained on the stream "
                         "(repeatable), e.g. 'blend={\"ranker\": \"blend\"}'")
    ev.add_argument("--reward-window-s", type=float, default=None, metavar="S",
                    help="--redis-url: the deployment's reward window (default: --config / engine settings)")
    ev.add_argument("--export", default=None, metavar="FILE", help="--redis-url: also write the decisions (JSON lines)")
    ev.add_argument("--no-dr-position-model", dest="dr_position_model", action="store_false",
                    help="do not fill a per-slot click-rate reward model into decisions without one (no DR then)")
    ev.add_argument("--out", default="freshrec-out/evaluate")
    ev.set_defaults(func=_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``freshrec`` console script."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    previous = None
    if args.func not in (_serve, _learner) and threading.current_thread() is threading.main_thread():
        # a SIGTERM (timeout, a supervisor) unwinds like Ctrl-C, so the server and Redis a
        # replay or demo started are stopped, not left running (serve and learner handle
        # SIGTERM themselves); the previous handler comes back when the command returns
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"freshrec {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminated(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
