"""The ``freshrec`` command: serve, replay, demo."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.settings import Settings
    from engine.config import EngineConfig
    from engine.guard import GuardConfig

    engine = EngineConfig()
    if args.snapshot_every_events:
        engine.snapshot_every_events = args.snapshot_every_events
    if args.snapshot_every_s:
        engine.snapshot_every_s = args.snapshot_every_s
    settings = Settings(redis_url=args.redis_url, data_dir=args.data_dir, engine=engine,
                        guard=GuardConfig(enabled=args.guard == "on"), learner=not args.no_learner)
    if args.workers > 1:
        if not args.no_learner:
            raise SystemExit("--workers N needs --no-learner (one learner: run `freshrec learner`)")
        if not args.redis_url:
            raise SystemExit("--workers N needs --redis-url (the learner and every replica share one Redis)")
        os.environ.update(FRESHREC_REDIS_URL=args.redis_url, FRESHREC_ROLE="replica", FRESHREC_GUARD=args.guard)
        uvicorn.run("api.app:app_from_env", factory=True, workers=args.workers, host=args.host, port=args.port,
                    log_level=args.log_level, loop="uvloop", http="httptools", access_log=False)
        return 0
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                loop="uvloop", http="httptools", access_log=False, timeout_graceful_shutdown=5)
    return 0


def _learner(args: argparse.Namespace) -> int:
    """``freshrec learner``: the single writer, without HTTP (replicas serve)."""
    import asyncio
    import signal

    from engine.guard import GuardConfig
    from engine.learner import open_learner

    async def run() -> None:
        learner, redis, target = await open_learner(args.redis_url, args.data_dir,
                                                    guard=GuardConfig(enabled=args.guard == "on"))
        try:
            await learner.start()
            task = asyncio.create_task(learner.run())
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await learner.close()
        finally:
            await redis.aclose()
            target.close()

    asyncio.run(run())
    return 0


def _replay(args: argparse.Namespace) -> int:
    from simulators.replay import main as replay_main

    return replay_main(args)


def _demo(args: argparse.Namespace) -> int:
    from simulators.replay import demo

    return demo(args)


def _simulate(args: argparse.Namespace) -> int:
    from simulators.suite import main_simulate, main_suite

    if args.suite:
        return main_suite(args)
    if not args.scenario:
        raise SystemExit("freshrec simulate: give --scenario S or --suite")
    return main_simulate(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="freshrec", description="Online-learning recommender on River + Redis.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the HTTP API (+ learner) on uvicorn")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--redis-url", default=None, help="Redis >= 6.2 URL (default: $FRESHREC_REDIS_URL, else embedded)")
    s.add_argument("--data-dir", default=None, help="embedded Redis data dir (default: ./freshrec-data)")
    s.add_argument("--snapshot-every-events", type=int, default=None)
    s.add_argument("--snapshot-every-s", type=float, default=None)
    s.add_argument("--guard", choices=["on", "off"], default="on", help="forgetting guard (default on)")
    s.add_argument("--no-learner", action="store_true",
                   help="read-only API replica: follow the stream and the learner's snapshots")
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (replicas only)")
    s.add_argument("--log-level", default="warning")
    s.set_defaults(func=_serve)

    le = sub.add_parser("learner", help="run the single learner (no HTTP) for replicas started with --no-learner")
    le.add_argument("--redis-url", default=None)
    le.add_argument("--data-dir", default=None)
    le.add_argument("--guard", choices=["on", "off"], default="on")
    le.set_defaults(func=_learner)

    r = sub.add_parser("replay", help="prequential replay of a rating log through the HTTP API")
    r.add_argument("data", help="ratings file (MovieTweetings ratings.dat or CSV)")
    r.add_argument("--format", choices=["movietweetings", "csv"], default="movietweetings")
    r.add_argument("--positive-threshold", type=float, default=8.0)
    r.add_argument("--url", default=None, help="running freshrec server (default: start one on embedded Redis)")
    r.add_argument("--limit", type=int, default=None, help="replay only the first N events (time order)")
    r.add_argument("--out", default="freshrec-out/replay")
    r.add_argument("--columns", default="user_id,item_id,rating,timestamp",
                   help="CSV header names for user,item,rating,timestamp")
    r.add_argument("--delimiter", default=",")
    r.set_defaults(func=_replay)

    d = sub.add_parser("demo", help="embedded Redis + server + full replay of the bundled MovieTweetings stream")
    d.add_argument("--out", default="freshrec-out/demo")
    d.add_argument("--limit", type=int, default=None)
    d.set_defaults(func=_demo)

    m = sub.add_parser("simulate", help="synthetic ground-truth world: attack/drift scenarios, guard on/off")
    m.add_argument("--scenario", choices=["stationary", "bot_burst", "cohort", "viral_trend", "drift"])
    m.add_argument("--dose", type=int, default=None, help="bot clicks (bot_burst; default 4000)")
    m.add_argument("--guard", choices=["on", "off"], default="on")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--suite", action="store_true", help="every scenario, guard on and off, on --seeds seeds")
    m.add_argument("--seeds", type=int, default=3)
    m.add_argument("--quick", action="store_true", help="smaller world (smoke run)")
    m.add_argument("--out", default="freshrec-out/simulate")
    m.set_defaults(func=_simulate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``freshrec`` console script."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
