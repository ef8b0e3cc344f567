"""kill -9 of the server mid-replay: every accepted event is learned exactly once and the
final model equals an uninterrupted run over the same events."""

import asyncio

import httpx
import numpy as np
from redis.asyncio import Redis

from engine import EngineConfig, Event, Recommender
from engine.keys import Keys
from engine.snapshots import SnapshotStore
from simulators.server_process import ServerProcess
from tests.conftest import SNAPSHOT_KEY

KEY = SNAPSHOT_KEY.encode()


def stream(n=1500, seed=7):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 120, n)
    items = rng.zipf(1.3, n) % 150
    values = rng.integers(0, 11, n)
    return [{"user_id": f"u{u}", "item_id": f"i{i}", "event": "rating", "value": float(v), "timestamp": 1_000_000.0 + 30 * k}
            for k, (u, i, v) in enumerate(zip(users, items, values))]


async def latest_snapshot(url):
    redis = Redis.from_url(url)
    try:
        return await SnapshotStore(redis, Keys(), KEY).load_latest_good()
    finally:
        await redis.aclose()


def test_kill_9_mid_replay_loses_nothing_and_learns_each_event_once(redis_server, tmp_path):
    events = stream()
    kill_at = sorted(np.random.default_rng(11).choice(np.arange(100, len(events) - 100), 3, replace=False).tolist())
    args = ["--snapshot-every-events", "200"]
    accepted = []
    server = ServerProcess(redis_url=redis_server.url, extra_args=args, log_path=tmp_path / "server.log").start()
    try:
        for n, body in enumerate(events):
            if n in kill_at:
                server.kill()  # SIGKILL: no final snapshot, learner state after the last one is lost
                server = ServerProcess(redis_url=redis_server.url, extra_args=args, log_path=tmp_path / "server.log").start()
            r = httpx.post(server.url + "/feedback", json=body, timeout=10)
            assert r.status_code == 202
            accepted.append(r.json()["event_id"])
        r = httpx.get(server.url + "/model/learned", params={"event_id": accepted[-1], "timeout_ms": 20_000})
        assert r.json()["learned"]
        model = httpx.get(server.url + "/model").json()
        assert model["events_learned"] == len(accepted)  # each accepted event exactly once
        assert model["stream_lag"] == 0
        served = httpx.post(server.url + "/recommend", json={"user_id": "u3", "k": 10}).json()
    finally:
        server.stop()  # graceful: writes a final snapshot

    reference = Recommender(EngineConfig(snapshot_every_events=200))
    for body in events:
        reference.apply(Event(body["user_id"], body["item_id"], "rating", body["value"], body["timestamp"]))
    assert [i["item_id"] for i in served["items"]] == [r.item_id for r in reference.recommend("u3", 10)]

    info, arrays, meta = asyncio.run(latest_snapshot(redis_server.url))
    assert meta["events_learned"] == len(events)
    assert meta["last_event_id"] == accepted[-1]
    ref_arrays, ref_meta = reference.state()
    assert meta["items"] == ref_meta["items"] and meta["model"]["users"] == ref_meta["model"]["users"]
    for name, ref in ref_arrays.items():
        np.testing.assert_allclose(arrays[name], ref, rtol=0, atol=1e-9, err_msg=name)
