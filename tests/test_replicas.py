"""Scale-out: one learner process + read-only API replicas on one Redis. A click sent to
replica A changes that user's answer on replica B."""

import time

import httpx
import pytest

from simulators.server_process import ServerProcess


@pytest.fixture
def cluster(redis_server, tmp_path):
    a = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "a.log").start()  # API + learner
    b = ServerProcess(redis_url=redis_server.url, extra_args=["--no-learner"], log_path=tmp_path / "b.log").start()
    yield a, b
    b.stop()
    a.stop()


def test_click_on_replica_a_changes_the_answer_on_replica_b(cluster):
    a, b = cluster
    events = [{"user_id": f"u{n}", "item_id": item, "event": "click", "timestamp": 1000 + n}
              for n, item in enumerate(["x", "y", "y", "z", "z", "z"])]
    ids = httpx.post(a.url + "/feedback/batch", json={"events": events}).json()["event_ids"]
    assert httpx.get(b.url + "/model/learned", params={"event_id": ids[-1], "timeout_ms": 10_000}).json()["learned"]
    before = [i["item_id"] for i in httpx.post(b.url + "/recommend", json={"user_id": "alice", "k": 3}).json()["items"]]
    assert before == ["z", "y", "x"]
    click = httpx.post(a.url + "/feedback", json={"user_id": "alice", "item_id": "z", "event": "click"}).json()
    assert httpx.get(b.url + "/model/learned", params={"event_id": click["event_id"], "timeout_ms": 10_000}).json()["learned"]
    after = [i["item_id"] for i in httpx.post(b.url + "/recommend", json={"user_id": "alice", "k": 3}).json()["items"]]
    assert "z" not in after  # alice's click on A excluded z from her slate on B
    model_a = httpx.get(a.url + "/model").json()
    model_b = httpx.get(b.url + "/model").json()
    assert model_a["events_learned"] == model_b["events_learned"] == 7  # the same model, learned once each


def test_replica_refuses_snapshot_writes_and_leaves_the_learner_group_alone(cluster, redis_server):
    a, b = cluster
    assert httpx.post(b.url + "/snapshots").status_code == 409
    r = httpx.post(b.url + "/feedback", json={"user_id": "u", "item_id": "i", "event": "click"})
    assert r.status_code == 202  # replicas accept feedback: the learner applies it
    assert httpx.get(a.url + "/model/learned", params={"event_id": r.json()["event_id"], "timeout_ms": 10_000}).json()["learned"]
    client = redis_server.client()
    groups = client.xinfo_groups("{freshrec}:feedback")
    client.close()
    assert [g["name"] for g in groups] == [b"learner"] and groups[0]["pending"] == 0


def test_a_click_on_another_replica_joins_the_slate_it_answers(cluster, redis_server):
    """The impression join lives in Redis: a slate served by replica B makes a click on it
    trusted even when the click reaches replica A; a click naming no served slate is not."""
    a, b = cluster
    ids = httpx.post(a.url + "/feedback/batch", json={"events": [
        {"user_id": f"u{n}", "item_id": item, "event": "click"} for n, item in enumerate("xyyzzz")]}).json()["event_ids"]
    assert httpx.get(b.url + "/model/learned", params={"event_id": ids[-1], "timeout_ms": 10_000}).json()["learned"]
    slate = httpx.post(b.url + "/recommend", json={"user_id": "carol", "k": 3}).json()
    client = redis_server.client()
    bucket = "{freshrec}:slates:" + slate["recommendation_id"].partition("-")[0]
    deadline = time.monotonic() + 10
    while not client.hexists(bucket, slate["recommendation_id"]):  # written behind (<= 50 ms)
        assert time.monotonic() < deadline, "slate never reached Redis"
    joined = httpx.post(a.url + "/feedback", json={"user_id": "carol", "item_id": slate["items"][0]["item_id"],
                                                  "event": "click", "recommendation_id": slate["recommendation_id"]})
    forged = httpx.post(a.url + "/feedback", json={"user_id": "dave", "item_id": "x", "event": "click",
                                                  "recommendation_id": slate["recommendation_id"]})
    trust = {eid.decode(): fields[b"tr"] for eid, fields in client.xrange("{freshrec}:feedback")}
    client.close()
    assert trust[joined.json()["event_id"]] == b"trusted"
    assert trust[forged.json()["event_id"]] == b"unvetted"  # another user's slate
