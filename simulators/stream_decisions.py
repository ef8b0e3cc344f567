"""``freshrec evaluate --redis-url URL``: the decision log of a running deployment, rebuilt
from its feedback stream, with candidate learning settings replayed on it.

The deployment must log its slates (``--engine.log-slates true``): each served slate is
then a ``slate`` event in the stream (items, per-slot propensities, a challenger's
probabilities when one runs) and every positive naming its recommendation id is a reward.
``--candidate NAME=JSON`` (repeatable) names a candidate: engine settings overriding the base
configuration (``--config FILE``, the deployment's TOML, else the defaults; the event schema
is always the one stored beside the stream; ``--reward-window-s`` overrides the reward
window, which must be the deployment's), e.g.::

    freshrec evaluate --redis-url redis://host:6379/0 \\
        --candidate 'greedy={"explore": "none"}' \\
        --candidate 'blend={"ranker": "blend", "explore": "none"}' \\
        --export decisions.jsonl

Each candidate is trained from scratch on the stream (``engine.core.counterfactual``) and
estimated with the serving policy and any logged target. ``--export FILE`` also writes the
decisions as JSON lines, which ``freshrec evaluate FILE`` reads again without Redis.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from engine.config import EngineConfig
from engine.core.counterfactual import Replayed, replay_decisions
from engine.storage.keys import Keys
from engine.storage.stream_reader import StreamScan, events, stored_semantics


def parse_candidates(specs: list[str], base: EngineConfig) -> dict[str, EngineConfig]:
    """``NAME=JSON`` specs -> name -> ``base`` with the JSON object's settings applied.

    Raises:
        ValueError: a spec without ``=``, JSON that is not an object, a reserved or repeated
            name, or settings ``EngineConfig`` refuses (the message names the candidate).
    """
    out: dict[str, EngineConfig] = {}
    for spec in specs:
        name, sep, body = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--candidate {spec!r}: expected NAME=JSON")
        if name == "logging" or name in out:
            raise ValueError(f"--candidate {name}: {'reserved' if name == 'logging' else 'repeated'} name")
        try:
            overrides = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--candidate {name}: not JSON ({exc.msg})") from None
        if not isinstance(overrides, dict):
            raise ValueError(f"--candidate {name}: expected a JSON object of engine settings")
        try:
            out[name] = EngineConfig.model_validate({**base.model_dump(), **overrides})
        except ValueError as exc:
            raise ValueError(f"--candidate {name}: {exc}") from None
    return out


def from_redis(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """The decisions (decision-log lines) of the stream at ``args.redis_url`` and a summary
    (events read, undecodable, slates, open decisions).

    Raises:
        SystemExit: the stream holds no schema (not a freshrec deployment, or a wrong
            ``--key-prefix``) or no slate events (slates are not logged).
    """
    from redis import Redis

    from api.settings import Settings

    settings = Settings.load(config_file=args.config) if args.config else Settings()
    keys = Keys(args.key_prefix or settings.key_prefix)
    redis = Redis.from_url(args.redis_url)
    semantics = stored_semantics(redis, keys)
    if semantics is None:
        raise SystemExit(f"freshrec evaluate: no event schema at {keys.schema} (is --key-prefix right?)")
    update = {"events": semantics.types}
    if args.reward_window_s is not None:
        update["reward_window_s"] = args.reward_window_s
    base = settings.engine.model_copy(update=update)
    candidates = parse_candidates(args.candidate or [], base)
    total = redis.xlen(keys.feedback)
    scan = StreamScan()
    stream = tqdm(events(redis, keys, scan), total=total, desc="stream", unit="ev", mininterval=1.0)
    got: Replayed = replay_decisions(stream, semantics, candidates, base.reward_window_s, args.window)
    if got.slates == 0:
        raise SystemExit(f"freshrec evaluate: no slate events in {keys.feedback}: run the server with "
                         "--engine.log-slates true so served slates are logged")
    summary = {"stream": keys.feedback, "events": scan.read, "undecodable": scan.undecodable, "slates": got.slates,
               "complete_decisions": len(got.decisions), "open_decisions": got.open,
               "candidates": {name: overrides for name, overrides in _overrides(args.candidate or [])}}
    if args.export:
        path = Path(args.export)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            for d in got.decisions:
                fh.write(json.dumps(d) + "\n")
        summary["exported"] = str(path)
    return got.decisions, summary


def _overrides(specs: list[str]):
    for spec in specs:
        name, _, body = spec.partition("=")
        yield name.strip(), json.loads(body)
