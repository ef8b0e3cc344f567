"""Crash safety with real processes: kill -9 of the server, and of redis-server, at random
points of a 20,000-event replay. Every event that got a 202 is learned exactly once and the
final model equals an uninterrupted run over the same events (<= 1e-9)."""

import asyncio

import httpx
import numpy as np
from redis.asyncio import Redis

from engine.storage.keys import Keys
from engine.storage.snapshot_store import SnapshotStore
from simulators.server_process import ServerProcess
from tests.conftest import SNAPSHOT_KEY
from tests.helpers import served_model

N_EVENTS = 20_000
BATCH = 25
SERVER_ARGS = ["--snapshot-every-events", "1500"]


def stream(n=N_EVENTS, seed=7):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 800, n)
    items = rng.zipf(1.3, n) % 600
    values = rng.integers(0, 11, n)
    return [{"user_id": f"u{u}", "item_id": f"i{i}", "event": "rating", "value": float(v), "timestamp": 1_000_000.0 + 30 * k}
            for k, (u, i, v) in enumerate(zip(users, items, values))]


def uninterrupted(events):
    return served_model(events)


async def latest_snapshot(url):
    redis = Redis.from_url(url)
    try:
        return await SnapshotStore(redis, Keys(), SNAPSHOT_KEY.encode()).load_latest_good()
    finally:
        await redis.aclose()


def post_until_accepted(url, batch, attempts=200):
    """Send a batch; on 503 / connection errors retry (what a client must do)."""
    for _ in range(attempts):
        try:
            r = httpx.post(url + "/feedback/batch", json={"events": batch}, timeout=10)
        except httpx.TransportError:
            continue
        if r.status_code == 202:
            return r.json()["event_ids"]
        assert r.status_code == 503, r.text
    raise AssertionError("batch never accepted")


def replay_with_faults(redis_server, tmp_path, fault):
    events = stream()
    batches = [events[i: i + BATCH] for i in range(0, len(events), BATCH)]
    faults_at = set(np.random.default_rng(11).choice(np.arange(5, len(batches) - 5), 5, replace=False).tolist())
    log = tmp_path / "server.log"
    server = ServerProcess(redis_url=redis_server.url, extra_args=SERVER_ARGS, log_path=log).start()
    accepted = []
    try:
        for n, batch in enumerate(batches):
            if n in faults_at:
                server = fault(server)
            accepted += post_until_accepted(server.url, batch)
        r = httpx.get(server.url + "/model/learned", params={"event_id": accepted[-1], "timeout_ms": 30_000})
        assert r.json()["learned"]
        model = httpx.get(server.url + "/model").json()
        served = httpx.post(server.url + "/recommend", json={"user_id": "u3", "k": 10}).json()
    finally:
        server.stop()  # graceful: writes a final snapshot
    return events, accepted, model, served


def assert_equal_to_uninterrupted(redis_server, events, accepted, model, served):
    assert len(accepted) == len(events) == len(set(accepted))
    assert model["events_learned"] == len(accepted)  # each accepted event learned exactly once
    assert model["stream_lag"] == 0
    reference = uninterrupted(events)
    assert [i["item_id"] for i in served["items"]] == [r.item_id for r in reference.recommend("u3", 10)]
    info, arrays, meta = asyncio.run(latest_snapshot(redis_server.url))
    assert meta["events_learned"] == len(events)
    assert meta["last_event_id"] == accepted[-1]
    ref_arrays, ref_meta = reference.state()
    for name, ref in ref_arrays.items():
        np.testing.assert_allclose(arrays[name], ref, rtol=0, atol=1e-9, err_msg=name)


def test_kill_9_of_the_server_five_times_mid_replay(redis_server, tmp_path):
    def crash_server(server):
        server.kill()  # SIGKILL: learned state since the last snapshot is lost with the process
        return ServerProcess(redis_url=redis_server.url, extra_args=SERVER_ARGS,
                             log_path=tmp_path / "server.log").start()

    assert_equal_to_uninterrupted(redis_server, *replay_with_faults(redis_server, tmp_path, crash_server))


def test_kill_9_of_redis_five_times_mid_replay(redis_server, tmp_path):
    def crash_redis(server):
        redis_server.kill()  # SIGKILL of redis-server; restarted on its AOF
        r = httpx.post(server.url + "/feedback", json={"user_id": "x", "item_id": "y", "event": "click"})
        assert r.status_code == 503  # never a silent drop
        redis_server.restart()
        return server

    assert_equal_to_uninterrupted(redis_server, *replay_with_faults(redis_server, tmp_path, crash_redis))
