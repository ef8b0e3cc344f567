"""``GET /users/{id}`` and ``DELETE /users/{id}`` (the right to erasure): in process (the
core erasure and the guard's), then over real HTTP on real redis-servers: restart, kill -9
+ replay from an older snapshot, the tombstone alone, an admin restore, replicas, scopes,
and the snapshots written afterwards, decoded with the project's codec."""

import asyncio
import json

import httpx
import numpy as np
import pytest
from redis.asyncio import Redis

from engine import EngineConfig, Event, Recommender
from engine.config import GuardConfig, PolicyConfig
from engine.core.arrays import unpack_ids
from engine.core.guard import GuardedRecommender
from engine.core.snapshot_codec import encode
from engine.core.users import profile
from engine.storage.keys import Keys
from engine.storage.snapshot_store import SnapshotStore
from engine.storage.tombstones import Tombstones
from simulators.server_process import ServerProcess
from tests.conftest import SNAPSHOT_KEY

GONE = "erase-me-7f3a"  # distinctive, so a byte search of a whole snapshot blob means something
KEYS = Keys()


def clicks(n=600, seed=0, users=40, items=60):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        user = GONE if k % 7 == 0 else f"u{rng.integers(users)}"
        out.append(Event(user, f"i{rng.integers(items)}", "click", timestamp=1e6 + 10 * k))
    return out


def blob_of(rec: Recommender) -> bytes:
    return bytes(encode(*rec.state(), b"k"))


# ------------------------------------------------------------------ in process

def test_erase_removes_every_trace_of_the_user_from_the_model_and_its_snapshot():
    rec = Recommender(EngineConfig(max_users=30))  # evictions too: an older, evicted row of the user
    events = clicks()
    for e in events:
        rec.apply(e)
    rec.apply(Event(GONE, "i1", "impression", timestamp=2e6))
    assert profile(rec, GONE)["pending_impressions"] == 1
    assert GONE.encode() in blob_of(rec)
    rec.apply(Event(GONE, "", "forget"))
    assert rec.last_erasure["known"] and rec.last_erasure["interactions"] > 0
    assert profile(rec, GONE) is None
    assert GONE not in rec.seen and GONE not in rec.model.user_index and GONE not in rec.activity.last
    assert GONE not in rec.model.mf.u_latents and all(u != GONE for _, u, _ in rec._expiry)
    arrays, meta = rec.state()
    assert GONE not in unpack_ids(arrays["users_text"], arrays["users_len"])
    assert GONE.encode() not in blob_of(rec)  # not in any array nor in the metadata
    restored = Recommender.from_state(arrays, meta)
    assert profile(restored, GONE) is None
    for name, value in restored.state()[0].items():
        np.testing.assert_array_equal(value, arrays[name], err_msg=name)
    assert restored.recommend(GONE, 5) == rec.recommend(GONE, 5)  # the cold-start slate, for anyone
    rec.apply(Event(GONE, "i2", "click", timestamp=3e6))
    fresh = profile(rec, GONE)
    assert fresh["positives"] == 1 and fresh["recent_positives"] == ["i2"]  # a fresh user


def test_a_replay_through_the_erasure_reaches_the_same_state():
    events = clicks(seed=3)
    forget = Event(GONE, "", "forget")
    a = Recommender()
    for e in events[:300]:
        a.apply(e)
    b = Recommender.from_state(*a.state())
    for rec in (a, b):
        for e in events[300:450] + [forget] + events[450:]:
            rec.apply(e)
    sa, sb = a.state()[0], b.state()[0]
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def test_the_guard_the_challenger_and_the_decision_log_forget_too():
    g = GuardedRecommender(EngineConfig(), GuardConfig(window_events=200), policies=PolicyConfig(
        challenger={"ranker": "blend"}))
    rng = np.random.default_rng(1)
    t = 1e6
    for k in range(1500):
        user = GONE if k % 5 == 0 else f"u{rng.integers(30)}"
        slate = g.recommend(user, 5, now=t)
        if slate.item_ids and k % 2 == 0:  # a click on what was served: trusted, vets the account
            g.apply(Event(user, slate.item_ids[0], "click", timestamp=t + 1, recommendation_id=slate.recommendation_id))
        g.apply(Event(user, f"i{rng.integers(50)}", "click", timestamp=t + 2))
        t += 10
    assert g.user_trust(GONE)["vetted"] and any(u == GONE for u, _ in g._reservoir)
    g.apply(Event(GONE, "", "forget", event_id="9-0"))
    report = g.erasures["9-0"]
    assert report["guard"]["vetted"] and report["guard"]["reservoir_pairs"] > 0 and report["decisions"] > 0
    assert report["challenger"]["known"]
    assert g.user_trust(GONE) == {"vetted": False, "trusted_clicks": 0, "established": False}
    assert all(u != GONE for u, _ in g._reservoir) and GONE not in g._open_slate
    assert all(s[0] != GONE for s in g.join.slates.values())
    assert all(d.user_id != GONE for d in [*g.arena.decisions.open.values(), *g.arena.decisions.complete])
    assert profile(g.recommender, GONE) is None and profile(g.arena.challenger, GONE) is None
    good = Recommender.from_state(*g._good) if g._good is not None else g.recommender
    assert profile(good, GONE) is None  # no rollback point still holds the user


def test_forget_is_not_a_feedback_type():
    with pytest.raises(ValueError, match="reserved"):
        EngineConfig(events={"forget": {"role": "positive"}})


def test_a_restored_model_erases_users_tombstoned_after_its_snapshot():
    from engine.storage.tombstones import digest_key, erase_tombstoned, user_digest

    rec = Recommender()
    for e in clicks(200):
        rec.apply(e)
    key = digest_key(b"secret")
    erased = erase_tombstoned(rec, {user_digest(key, GONE): "5-0"}, lambda u: user_digest(key, u))
    assert erased == [GONE] and profile(rec, GONE) is None


# ------------------------------------------------------------------ over HTTP

SERVER_ARGS = ["--snapshot-every-events", "1000000", "--snapshot-every-s", "3600"]  # snapshots when asked


def start(redis_server, tmp_path, *extra):
    return ServerProcess(redis_url=redis_server.url, extra_args=[*SERVER_ARGS, *extra],
                         log_path=tmp_path / "server.log").start()


def feed(url, n=300, seed=0):
    rng = np.random.default_rng(seed)
    events = [{"user_id": GONE if k % 6 == 0 else f"u{rng.integers(25)}", "item_id": f"i{rng.integers(40)}",
               "event": "click", "timestamp": 1e6 + 10 * k} for k in range(n)]
    ids = httpx.post(url + "/feedback/batch", json={"events": events}, timeout=30).json()["event_ids"]
    assert learned(url, ids[-1])
    return ids


def learned(url, event_id):
    r = httpx.get(url + "/model/learned", params={"event_id": event_id, "timeout_ms": 20_000}, timeout=30)
    return r.json()["learned"]


def snapshot_blobs(redis_server) -> dict[int, tuple[dict, bytes]]:
    """Every retained snapshot: version -> (metadata, raw blob)."""
    client = redis_server.client()
    try:
        metas = {int(v): json.loads(m) for v, m in client.hgetall(KEYS.snapshot_meta).items()}
        return {v: (m, client.get(KEYS.snapshot_blob(v))) for v, m in metas.items()}
    finally:
        client.close()


def decoded(redis_server, version):
    async def load():
        redis = Redis.from_url(redis_server.url)
        try:
            return await SnapshotStore(redis, KEYS, SNAPSHOT_KEY.encode()).load(version)
        finally:
            await redis.aclose()

    return asyncio.run(load())


def assert_clean(redis_server, version):
    """Snapshot ``version``, decoded with the project's codec, holds nothing of GONE."""
    info, arrays, meta = decoded(redis_server, version)
    assert GONE not in unpack_ids(arrays["users_text"], arrays["users_len"])
    assert GONE not in json.dumps(meta)
    assert GONE.encode() not in snapshot_blobs(redis_server)[version][1]
    return info


def stream_entries_of(redis_server, user):
    client = redis_server.client()
    try:
        return [(eid.decode(), f[b"k"].decode()) for eid, f in client.xrange(KEYS.feedback) if f[b"u"] == user.encode()]
    finally:
        client.close()


@pytest.fixture
def server(redis_server, tmp_path):
    srv = start(redis_server, tmp_path)
    yield srv
    srv.stop()


def test_get_user_describes_what_the_model_knows_and_404s_unknown_users(server):
    feed(server.url)
    body = httpx.get(server.url + f"/users/{GONE}", params={"recent": 3}).json()
    assert body["user_id"] == GONE and len(body["recent_positives"]) == 3
    assert body["counts"]["positives"] == 50 and body["counts"]["interactions"] == 50
    assert body["last_active"] == 1e6 + 10 * 294 and body["trust"]["vetted"] is False and body["factors"] is True
    assert "latent" not in json.dumps(body) and "recommendation_id" not in body
    missing = httpx.get(server.url + "/users/nobody")
    assert missing.status_code == 404 and "nobody" in missing.json()["detail"]
    assert httpx.get(server.url + "/users/u1", params={"recent": 21}).status_code == 422
    page = httpx.get(server.url + "/users", params={"limit": 10}).json()
    assert len(page["users"]) == 10 and page["next"] is not None and page["total"] == 26
    spec = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"get", "delete"} <= set(spec["/users/{user_id}"]) and "404" in spec["/users/{user_id}"]["get"]["responses"]


def test_delete_erases_the_user_and_a_later_feedback_starts_a_fresh_one(server, redis_server):
    ids = feed(server.url)
    httpx.post(server.url + "/recommend", json={"user_id": GONE, "k": 3})  # a served slate (impression join)
    r = httpx.delete(server.url + f"/users/{GONE}", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] and body["removed"]["model"]["positives"] == 50
    assert body["stream"]["entries_deleted"] == 50 and body["slates"]["deleted"] == 1
    assert httpx.get(server.url + f"/users/{GONE}").status_code == 404
    assert stream_entries_of(redis_server, GONE) == [(body["event_id"], "forget")]
    assert learned(server.url, body["event_id"]) and body["event_id"] > ids[-1]
    again = httpx.delete(server.url + f"/users/{GONE}", timeout=30).json()  # idempotent
    assert again["complete"] and again["removed"]["model"]["known"] is False
    r = httpx.post(server.url + "/feedback", json={"user_id": GONE, "item_id": "i7", "event": "click"})
    assert learned(server.url, r.json()["event_id"])
    fresh = httpx.get(server.url + f"/users/{GONE}").json()
    assert fresh["counts"]["positives"] == 1 and fresh["recent_positives"] == ["i7"]


def test_erasure_survives_a_restart_and_old_snapshots_are_pruned(redis_server, tmp_path):
    srv = start(redis_server, tmp_path)
    feed(srv.url)
    before = httpx.post(srv.url + "/snapshots").json()["version"]
    assert GONE.encode() in snapshot_blobs(redis_server)[before][1]
    body = httpx.delete(srv.url + f"/users/{GONE}", timeout=30).json()
    assert body["snapshots"]["written_before"] == [before]
    srv.stop()  # graceful: the final snapshot comes after the erasure
    blobs = snapshot_blobs(redis_server)
    assert before not in blobs  # pruned once a snapshot after the erasure was committed
    for version in blobs:
        assert_clean(redis_server, version)
    srv = start(redis_server, tmp_path)
    try:
        assert httpx.get(srv.url + f"/users/{GONE}").status_code == 404
    finally:
        srv.stop()


def test_kill_9_then_restore_from_an_older_snapshot_and_replay_does_not_bring_the_user_back(redis_server, tmp_path):
    srv = start(redis_server, tmp_path)
    feed(srv.url, seed=1)
    old = httpx.post(srv.url + "/snapshots").json()["version"]  # holds the user
    feed(srv.url, seed=2)  # more of the user's events after that snapshot (purged from the stream)
    body = httpx.delete(srv.url + f"/users/{GONE}", timeout=30).json()
    assert body["learned"] and body["stream"]["entries_deleted"] == 100
    srv.kill()  # SIGKILL: no snapshot after the erasure; the newest is the one that holds the user
    assert set(snapshot_blobs(redis_server)) == {old}
    srv = start(redis_server, tmp_path)  # restores v{old}, erases the tombstoned user, replays the stream
    try:
        assert httpx.get(srv.url + f"/users/{GONE}").status_code == 404  # erased at restore, before the replay
        assert learned(srv.url, body["event_id"])
        assert httpx.get(srv.url + f"/users/{GONE}").status_code == 404  # and not re-learned by it
        model = httpx.get(srv.url + "/model").json()
        assert model["stream_lag"] == 0
        assert model["events_learned"] == 300 + (300 - 50) + 1  # the snapshot's, then the stream without the purged
        new = httpx.post(srv.url + "/snapshots").json()["version"]
        assert set(snapshot_blobs(redis_server)) == {new}  # the older one is gone
        assert_clean(redis_server, new)
    finally:
        srv.stop()


def test_the_tombstone_alone_erases_the_user_from_an_older_snapshot(redis_server, tmp_path):
    """Even without the forget entry in the stream (trimmed, say) and with the purge never
    run (the process died right after the erasure became durable), a restart erases the
    user: the tombstone is read at start and the pending purge resumed."""
    srv = start(redis_server, tmp_path)
    feed(srv.url)
    httpx.post(srv.url + "/snapshots")
    srv.stop()

    async def forget_offline():
        redis = Redis.from_url(redis_server.url)
        try:
            return await Tombstones(redis, KEYS, SNAPSHOT_KEY.encode()).forget(GONE)
        finally:
            await redis.aclose()

    at = asyncio.run(forget_offline())  # what DELETE makes durable first, and nothing else
    client = redis_server.client()
    client.xdel(KEYS.feedback, at)
    client.close()
    assert len(stream_entries_of(redis_server, GONE)) == 50
    srv = start(redis_server, tmp_path)
    try:
        assert httpx.get(srv.url + f"/users/{GONE}").status_code == 404
        assert stream_entries_of(redis_server, GONE) == []  # the pending purge ran at start
        assert redis_server.client().smembers(KEYS.forgotten_purge) == set()
    finally:
        srv.stop()


def test_an_admin_restore_of_an_older_snapshot_does_not_bring_the_user_back(server, redis_server):
    feed(server.url)
    old = httpx.post(server.url + "/snapshots").json()["version"]
    httpx.delete(server.url + f"/users/{GONE}", timeout=30)
    r = httpx.post(server.url + f"/snapshots/{old}/restore")
    assert r.status_code == 200, r.text
    assert httpx.get(server.url + f"/users/{GONE}").status_code == 404
    assert httpx.get(server.url + "/users/u1").status_code == 200
    assert set(snapshot_blobs(redis_server)) == {r.json()["snapshot_version"]}
    assert_clean(redis_server, r.json()["snapshot_version"])


def test_replicas_forget_too(redis_server, tmp_path):
    learner = start(redis_server, tmp_path)
    replica = ServerProcess(redis_url=redis_server.url, extra_args=["--no-learner"],
                            log_path=tmp_path / "replica.log").start()
    try:
        ids = feed(learner.url)
        assert learned(replica.url, ids[-1])
        assert httpx.get(replica.url + f"/users/{GONE}").status_code == 200
        body = httpx.delete(replica.url + f"/users/{GONE}", timeout=30).json()  # sent to the replica
        assert body["complete"] and body["removed"]["model"]["known"]
        assert learned(learner.url, body["event_id"])
        for srv in (learner, replica):
            assert httpx.get(srv.url + f"/users/{GONE}").status_code == 404
    finally:
        replica.stop()
        learner.stop()


def test_scopes_serve_reads_catalogue_or_admin_erases(redis_server, tmp_path, monkeypatch):
    serve, catalogue, admin = "serve-key-1234567890ab", "catalogue-key-1234567890", "admin-key-1234567890ab"
    monkeypatch.setenv("FRESHREC_API_KEYS", json.dumps({serve: ["serve"], catalogue: ["catalogue"],
                                                        admin: ["admin"]}))
    srv = start(redis_server, tmp_path)
    try:
        def call(method, path, key):
            return httpx.request(method, srv.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=30)

        r = httpx.post(srv.url + "/feedback", json={"user_id": "a", "item_id": "i", "event": "click"},
                       headers={"Authorization": f"Bearer {serve}"})
        assert learned(srv.url, r.json()["event_id"])
        assert httpx.get(srv.url + "/users/a").status_code == 401
        assert call("GET", "/users/a", serve).status_code == 200
        assert call("GET", "/users/a", catalogue).status_code == 403
        assert call("DELETE", "/users/a", serve).status_code == 403
        assert call("GET", "/users", serve).status_code == 403 and call("GET", "/users", admin).status_code == 200
        assert call("DELETE", "/users/a", catalogue).status_code == 200
        assert call("DELETE", "/users/b", admin).status_code == 200
        assert call("GET", "/users/a", admin).status_code == 404
    finally:
        srv.stop()
