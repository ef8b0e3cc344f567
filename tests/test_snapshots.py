"""Signed snapshots: tampered, truncated, wrong-key and unsigned snapshots are refused and the
previous good one serves; restore through the admin API; Redis outages."""

import socket
import time

import httpx
import numpy as np
import pytest

from engine import Event, Recommender
from engine.storage.keys import Keys
from engine.storage.snapshot_writer import SnapshotWriter
from engine.core.snapshot_codec import MAGIC, SnapshotError, decode, encode, pack, sign, signature
from engine.storage.snapshot_store import ORPHAN_TTL_S
from simulators.server_process import ServerProcess
from tests.conftest import SNAPSHOT_KEY
from tests.helpers import served_model, trained

KEY = SNAPSHOT_KEY.encode()


def test_round_trip_restores_an_identical_recommender():
    rec = trained()
    arrays, meta = rec.state()
    back = Recommender.from_state(*decode(encode(arrays, meta, KEY), KEY))
    for user in list(rec.seen)[:5] + ["stranger"]:
        assert back.recommend(user, 10) == rec.recommend(user, 10)
    event = Event("u1", "i3", "rating", 9.0, 10_000_000.0)
    rec.apply(event)
    back.apply(event)
    a, _ = rec.state()
    b, _ = back.state()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_live_views_pack_into_the_same_blob_and_non_ascii_ids_survive():
    """The checkpoint packs views of the live arrays (no copies, ids packed incrementally as
    they arrive) into a reused buffer: the blob must equal ``encode`` of copies, and ids of
    any script must come back exactly."""
    rec = trained()
    for n, (user, item) in enumerate([("ユーザー", "電影-7"), ("zoë", "crème brûlée"), ("u1", "🎬")]):
        rec.apply(Event(user, item, "click", timestamp=20_000_000.0 + n))
    reference = encode(*rec.state(), KEY)
    buffer = np.full(3 * len(reference), 7, dtype=np.uint8)  # a bigger, dirty buffer is reused
    blob = sign(pack(*rec.state(copy=False), alloc=lambda n: buffer), KEY)
    assert blob.base is buffer
    assert bytes(blob) == bytes(reference)
    back = Recommender.from_state(*decode(bytes(blob), KEY))
    assert back.catalogue.ids == rec.catalogue.ids and back.model.user_ids == rec.model.user_ids
    assert back.recommend("zoë", 5) == rec.recommend("zoë", 5)


@pytest.mark.parametrize("damage", ["tampered", "truncated", "wrong_key", "unsigned"])
def test_damaged_snapshots_are_refused_before_parsing(damage):
    blob = encode(*trained().state(), KEY)
    if damage == "tampered":
        blob = blob[:-100] + bytes([blob[-100] ^ 1]) + blob[-99:]
    elif damage == "truncated":
        blob = blob[: len(blob) // 2]
    elif damage == "wrong_key":
        blob = encode(*trained().state(), b"another key")
    else:
        blob = MAGIC + blob[len(MAGIC) + 32:]
    with pytest.raises(SnapshotError):
        decode(blob, KEY)


def http_json(method, url, **kw):
    r = httpx.request(method, url, timeout=30, **kw)
    assert r.status_code < 300, r.text
    return r.json()


def feed(url, events):
    ids = http_json("POST", url + "/feedback/batch", json={"events": events})["event_ids"]
    assert http_json("GET", url + "/model/learned", params={"event_id": ids[-1], "timeout_ms": 10_000})["learned"]


def ratings(seed, n=300):
    rng = np.random.default_rng(seed)
    return [{"user_id": f"u{rng.integers(30)}", "item_id": f"i{rng.integers(60)}", "event": "rating",
             "value": float(rng.integers(0, 11)), "timestamp": 1e6 + seed * 1e5 + k} for k in range(n)]


def slates(url, users):
    return {u: [i["item_id"] for i in http_json("POST", url + "/recommend", json={"user_id": u})["items"]] for u in users}


@pytest.mark.parametrize("damage", ["tampered", "truncated", "wrong_key"])
def test_server_refuses_a_damaged_current_snapshot_and_serves_the_previous_good_one(redis_server, tmp_path, damage):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "a.log") as srv:
        feed(srv.url, ratings(1))
        good = http_json("POST", srv.url + "/snapshots")["version"]
        feed(srv.url, ratings(2))
        bad = http_json("POST", srv.url + "/snapshots")["version"]
        srv.kill()  # no final snapshot: the damaged one stays current
    client = redis_server.client()
    blob = client.get(Keys().snapshot_blob(bad))
    if damage == "tampered":
        client.setrange(Keys().snapshot_blob(bad), len(blob) - 10, b"\x00\x01\x02")
    elif damage == "truncated":
        client.set(Keys().snapshot_blob(bad), blob[: len(blob) // 3])
    else:
        client.set(Keys().snapshot_blob(bad), encode(*trained().state(), b"attacker key"))
    client.close()
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "b.log",
                       extra_args=["--log-level", "info"]) as srv:
        model = http_json("GET", srv.url + "/model")
        assert model["last_snapshot"]["version"] == good
        # the stream after the good snapshot is replayed, so nothing accepted is lost
        assert model["events_learned"] == 600
    log_text = (tmp_path / "b.log").read_text()
    assert f"snapshot v{bad} refused" in log_text


def test_restore_through_the_admin_api_changes_answers_and_learning_continues(redis_server, tmp_path):
    users = [f"u{n}" for n in range(30)]
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "s.log") as srv:
        feed(srv.url, ratings(1))
        v1 = http_json("POST", srv.url + "/snapshots")["version"]
        at_v1 = slates(srv.url, users)
        feed(srv.url, ratings(2, n=600))
        assert slates(srv.url, users) != at_v1
        listed = http_json("GET", srv.url + "/snapshots")["snapshots"]
        assert v1 in [s["version"] for s in listed]
        assert {"version", "created_at", "events_learned", "size", "verdict"} <= set(listed[0])
        answer = http_json("POST", srv.url + f"/snapshots/{v1}/restore")
        assert answer["restored_version"] == v1 and answer["model_version"] == 300
        assert slates(srv.url, users) == at_v1
        feed(srv.url, ratings(3))
        after = slates(srv.url, users)
        assert http_json("GET", srv.url + "/model")["events_learned"] == 600
        assert httpx.post(srv.url + "/snapshots/999/restore").status_code == 404

    # the learner continued from v1: same as v1 + the third batch, in-process
    reference = served_model(ratings(1) + ratings(3))
    assert after == {u: [r.item_id for r in reference.recommend(u, 10)] for u in users}


def test_redis_outage_serves_stale_answers_and_resumes_within_5_s(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "o.log") as srv:
        feed(srv.url, ratings(1))
        redis_server.kill()
        assert httpx.post(srv.url + "/feedback", json={"user_id": "u", "item_id": "i", "event": "click"}).status_code == 503
        deadline = time.monotonic() + 5
        while http_json("GET", srv.url + "/health")["redis"] and time.monotonic() < deadline:
            pass  # the learner notices the outage on its next read (bounded wait, no sleep)
        answer = http_json("POST", srv.url + "/recommend", json={"user_id": "u1"})
        assert answer["stale"] is True and answer["items"]
        redis_server.restart()
        t0 = time.monotonic()
        while True:
            r = httpx.post(srv.url + "/feedback", json={"user_id": "u1", "item_id": "i1", "event": "click"})
            if r.status_code == 202 or time.monotonic() - t0 > 5:
                break
        assert r.status_code == 202
        learned = http_json("GET", srv.url + "/model/learned",
                            params={"event_id": r.json()["event_id"], "timeout_ms": 5000})["learned"]
        assert learned and time.monotonic() - t0 <= 5.0
        assert http_json("POST", srv.url + "/recommend", json={"user_id": "u1"})["stale"] is False


def test_retention_keeps_recent_and_hourly_history_within_a_byte_budget():
    from engine.storage.retention import Retention, SnapshotInfo

    now = 1_000_000.0
    # one snapshot a minute for 30 hours, 1 MB each
    infos = [SnapshotInfo(v, now - (1800 - v) * 60, v, None, "", 1_000_000) for v in range(1, 1801)]
    kept = Retention(recent=10, hours=25, max_bytes=10**12).keep(infos, now)
    assert set(range(1791, 1801)) <= kept
    ages_h = sorted((now - infos[v - 1].created_at) / 3600 for v in kept)
    assert ages_h[-1] >= 24  # at least 24 h of history
    assert len(kept) <= 10 + 26
    budget = Retention(recent=10, hours=25, max_bytes=15_000_000).keep(infos, now)
    assert len(budget) == 15 and 1800 in budget  # byte budget wins, newest first


def test_admin_endpoints_need_the_admin_token(redis_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FRESHREC_ADMIN_TOKEN", "s3cret")
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "t.log") as srv:
        assert httpx.get(srv.url + "/snapshots").status_code == 403
        assert httpx.post(srv.url + "/snapshots/1/restore").status_code == 403
        ok = httpx.get(srv.url + "/snapshots", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["snapshots"] == []
        assert httpx.post(srv.url + "/recommend", json={"user_id": "u"}).status_code == 200  # public stays public


def test_writer_process_failure_publishes_nothing_and_the_next_checkpoint_recovers(redis_server):
    """The out-of-process writer: a blob it writes verifies and expires until committed (no
    orphans when a writer dies mid-way); a dead writer fails the checkpoint cleanly (no hang)
    and is restarted by the next one."""
    rec = trained()
    client = redis_server.client()
    writer = SnapshotWriter(redis_server.url, KEY)
    try:
        size = len(pack(*rec.state(copy=False), alloc=writer.buffer))
        digest, _ = writer.write(size, "freshrec-test:blob:1")
        raw = client.get("freshrec-test:blob:1")
        assert signature(raw) == digest
        arrays, _ = decode(raw, KEY)
        np.testing.assert_array_equal(arrays["mf_item_factors"], rec.state()[0]["mf_item_factors"])
        assert 0 < client.ttl("freshrec-test:blob:1") <= ORPHAN_TTL_S
        writer._proc.kill()  # a writer that died between checkpoints is simply restarted
        writer._proc.wait()
        assert writer.write(size, "freshrec-test:blob:2")[0] == digest
        with socket.socket() as mute:  # a "Redis" that accepts connections and never answers
            mute.bind(("127.0.0.1", 0))
            mute.listen(8)
            writer.redis_url, writer.timeout_s = f"redis://127.0.0.1:{mute.getsockname()[1]}/0", 0.5
            with pytest.raises(SnapshotError):  # a stuck write is killed at the deadline
                writer.write(size, "freshrec-test:blob:3")
        assert writer._proc is None
        writer.redis_url, writer.timeout_s = redis_server.url, 60.0
        assert writer.write(size, "freshrec-test:blob:3")[0] == digest
        held = _rss_shmem_kb()
        writer.release_pages()  # between checkpoints the buffer's pages go back to the kernel
        assert held - _rss_shmem_kb() >= size // 1024 // 2
        assert len(pack(*rec.state(copy=False), alloc=writer.buffer)) == size  # and it packs again
        assert writer.write(size, "freshrec-test:blob:4")[0] == digest
    finally:
        writer.close()


def test_a_rollback_point_stays_exact_while_the_live_model_learns_and_its_buffer_is_reused():
    """The guard's in-memory rollback points share the append-only arrays with the live
    model and reuse one co-occurrence buffer: a point must still rebuild the model as it was
    after the live model learned more (and grew its buffers), and a re-synced buffer must
    equal a fresh copy."""
    rec = trained(n_events=600, seed=3)
    expected = rec.state()[0]
    point, buffer = rec.rollback_point()
    for k in range(600, 2600):  # learn on: the log and the packed ids grow and reallocate
        rec.apply(Event(f"v{k % 97}", f"j{k % 211}", "click", timestamp=20_000_000.0 + k))
    old = Recommender.from_state(*point)
    for name, value in old.state()[0].items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    point2, buffer2 = rec.rollback_point(buffer)
    assert buffer2 is buffer
    again = Recommender.from_state(*point2)
    now = rec.state()[0]
    for name, value in again.state()[0].items():
        np.testing.assert_array_equal(value, now[name], err_msg=name)
    for user in ["v1", "v50", "u3", "stranger"]:
        assert again.recommend(user, 10) == rec.recommend(user, 10)


def _rss_shmem_kb() -> int:
    """Shared memory resident in this process (kB, /proc/self/status RssShmem)."""
    for line in open("/proc/self/status"):
        if line.startswith("RssShmem:"):
            return int(line.split()[1])
    raise RuntimeError("no RssShmem")
