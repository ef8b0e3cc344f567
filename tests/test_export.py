"""``freshrec export``: slates as Amazon Personalize batch JSON lines from a running server,
as CSV from the newest snapshot without one, for a file of users or every user of the
model; erased users are not exported from an older snapshot."""

import asyncio
import csv
import json
import subprocess
import sys

import httpx
import pytest
from redis.asyncio import Redis

from engine.core.recommender import Recommender
from engine.storage.keys import Keys
from engine.storage.snapshot_store import SnapshotStore
from simulators.harness import project_env
from simulators.server_process import ServerProcess
from tests.conftest import SNAPSHOT_KEY

EVENTS = [{"user_id": f"u{n % 7}", "item_id": f"i{(n * 5) % 41}", "event": "click", "timestamp": 1000 + n}
          for n in range(120)]


def export(*argv):
    r = subprocess.run([sys.executable, "-m", "api.cli", "export", "--no-progress", *argv], capture_output=True,
                       text=True, env=project_env(), timeout=120)
    return r


@pytest.fixture
def server(redis_server, tmp_path):
    srv = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log").start()
    ids = httpx.post(srv.url + "/feedback/batch", json={"events": EVENTS}).json()["event_ids"]
    assert httpx.get(srv.url + "/model/learned", params={"event_id": ids[-1], "timeout_ms": 20_000}).json()["learned"]
    yield srv
    srv.stop()


def snapshot_model(url):
    async def load():
        redis = Redis.from_url(url)
        try:
            return await SnapshotStore(redis, Keys(), SNAPSHOT_KEY.encode()).load_latest_good()
        finally:
            await redis.aclose()

    _, arrays, meta = asyncio.run(load())
    return Recommender.from_state(arrays, meta)


def test_export_from_a_server_writes_personalize_batch_lines(server, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("u1\n\n  u2  \nstranger\n")
    out = tmp_path / "slates.jsonl"
    r = export("--users", str(users), "--url", server.url, "--k", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["input"]["userId"] for line in lines] == ["u1", "u2", "stranger"]
    for line in lines:
        assert set(line) == {"input", "output", "error"} and line["error"] is None
        served = httpx.post(server.url + "/recommend", json={"user_id": line["input"]["userId"], "k": 3}).json()
        assert line["output"]["recommendedItems"] == [i["item_id"] for i in served["items"]]
        assert len(line["output"]["scores"]) == 3
    assert "users         3" in r.stderr
    everyone = export("--users-from-model", "--url", server.url, "--out", str(tmp_path / "all.jsonl"))
    assert everyone.returncode == 0, everyone.stderr
    assert sorted(json.loads(x)["input"]["userId"] for x in (tmp_path / "all.jsonl").read_text().splitlines()) == [
        f"u{n}" for n in range(7)]


def test_export_from_the_newest_snapshot_needs_no_server(server, redis_server, tmp_path):
    httpx.delete(server.url + "/users/u3", timeout=30)
    server.stop()  # final snapshot, after the erasure
    out = tmp_path / "slates.csv"
    r = export("--users-from-model", "--redis-url", redis_server.url, "--format", "csv", "--k", "4", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(out.open()))
    model = snapshot_model(redis_server.url)
    by_user = {}
    for row in rows:
        by_user.setdefault(row["user_id"], []).append(row)
    assert sorted(by_user) == ["u0", "u1", "u2", "u4", "u5", "u6"]  # the erased u3 is not in the model
    for user, slate in by_user.items():
        assert [int(x["rank"]) for x in slate] == [1, 2, 3, 4]
        assert [x["item_id"] for x in slate] == [x.item_id for x in model.recommend(user, 4)]
    assert "snapshot v" in r.stderr and "0 errors" in r.stderr


def test_bad_input_is_refused_naming_it(redis_server, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("ok\n" + "x" * 129 + "\n")
    r = export("--users", str(users), "--redis-url", redis_server.url)
    assert r.returncode == 2 and "users.txt:2: user_id" in r.stderr
    none = export("--users-from-model", "--redis-url", redis_server.url)
    assert none.returncode == 1 and "no snapshot" in none.stderr and "Traceback" not in none.stderr
