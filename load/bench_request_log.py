"""What the request-log middleware (``api.request_log.RequestLog``) costs ``POST /recommend``,
in process (no sockets, no load generator).

Run::

    python load/bench_request_log.py [--requests 5000] [--out freshrec-out/bench_request_log]

Setup (seeded): the real app (``api.app.create_app``, embedded Redis in a scratch dir) without
its ``RequestLog``, a model learned from 5,000 clicks (400 users, 1,000 items). Each variant
wraps the same app and is called directly as ASGI with ``POST /recommend`` bodies for
rotating known users (k=10):

    none        the app alone
    id_only     ``RequestLog(enabled=False)``: request id made and echoed, no log line
    text        ``RequestLog`` logging text lines to ``OUT/access-text.log`` (a FileHandler)
    json        ``RequestLog`` logging JSON lines (python-json-logger) to ``OUT/access-json.log``

Each request is a task of its own (as uvicorn runs them), timed with ``time.perf_counter``;
the variants take turns request by request (rotating their order), ``--requests`` each.
Printed: per variant, p50 and p90 µs per request, and the p50's difference to ``none``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np

from api.log_config import JSON_FIELDS, TEXT_FORMAT
from api.request_log import ACCESS_LOGGER, RequestLog
from bench import scratch_redis_dir  # load/bench.py: stops the embedded redis-server left in its dir


async def _bench(args, data_dir: str) -> dict:
    from api.app import create_app
    from api.settings import Settings
    from engine.core.events import Event

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = create_app(Settings(data_dir=data_dir, final_snapshot=False, snapshot_key="bench"))
    app.user_middleware = [m for m in app.user_middleware if m.cls is not RequestLog]
    from pythonjsonlogger.json import JsonFormatter

    handlers = []
    for name, formatter in (("text", logging.Formatter(TEXT_FORMAT)),
                            ("json", JsonFormatter(JSON_FIELDS, timestamp=True))):
        logger = logging.getLogger(f"{ACCESS_LOGGER}.bench.{name}")  # one logger per variant, set up once
        handler = logging.FileHandler(out / f"access-{name}.log", mode="w")
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        handlers.append(handler)

    async with app.router.lifespan_context(app):
        node = app.state.node
        rng = np.random.default_rng(0)
        events = [Event(f"u{rng.integers(400)}", f"i{min(int(rng.zipf(1.3)), 1000)}", "click", timestamp=1000.0 + n,
                        received_at=time.time()) for n in range(5000)]
        for start in range(0, len(events), 500):
            ids = await node.log.append(events[start:start + 500])
        if not await node.live.wait_learned(ids[-1], 120.0):
            raise RuntimeError("the model did not learn the clicks within 120 s")
        bodies = [json.dumps({"user_id": f"u{u}", "k": 10}).encode() for u in range(400)]
        variants = {"none": app, "id_only": RequestLog(app, enabled=False), "text": RequestLog(app),
                    "json": RequestLog(app)}
        for name in ("text", "json"):
            variants[name].log = logging.getLogger(f"{ACCESS_LOGGER}.bench.{name}")

        async def call(asgi, body: bytes) -> int:
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                     "scheme": "http", "path": "/recommend", "raw_path": b"/recommend", "query_string": b"",
                     "root_path": "", "headers": [(b"content-type", b"application/json"),
                                                  (b"content-length", str(len(body)).encode())],
                     "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {}, "app": app}
            sent = False
            status = 0

            async def receive():
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]

            await asyncio.ensure_future(asgi(scope, receive, send))  # a task per request, as uvicorn runs it
            return status

        for asgi in variants.values():  # warm up every path
            assert await call(asgi, bodies[0]) == 200
        times: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants)
        for n in range(args.requests):
            order = order[1:] + order[:1]  # interleaved, each variant in every position in turn
            for name in order:
                body = bodies[n % len(bodies)]
                t0 = time.perf_counter()
                await call(variants[name], body)
                times[name].append((time.perf_counter() - t0) * 1e6)
    for handler in handlers:
        handler.close()
    base = statistics.median(times["none"])
    return {name: {"median_us": statistics.median(v), "delta_us": statistics.median(v) - base,
                   "p90_us": float(np.percentile(v, 90)), "requests": len(v)} for name, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=5000, help="timed requests per variant")
    p.add_argument("--out", default="freshrec-out/bench_request_log")
    args = p.parse_args()
    with scratch_redis_dir("freshrec-bench-request-log-") as data_dir:
        results = asyncio.run(_bench(args, data_dir))
    print(f"{'variant':10} {'p50 µs':>9} {'vs none':>9} {'p90 µs':>9}")
    for name, r in results.items():
        print(f"{name:10} {r['median_us']:9.1f} {r['delta_us']:+9.1f} {r['p90_us']:9.1f}")
    Path(args.out, "bench_request_log.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
