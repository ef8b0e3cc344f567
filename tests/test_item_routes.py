"""``GET /items/{id}/similar``, ``GET /trending`` and ``DELETE /items/{id}`` over real HTTP
(``freshrec serve`` child processes on a real redis-server), including a deleted item staying
gone across a kill -9 and replay and across a snapshot restore, and the scopes of the new
routes."""

import json

import httpx
import pytest

from simulators.server_process import ServerProcess
from tests.conftest import SNAPSHOT_KEY

GENRES = ("drama", "comedy", "doc")


def learned(http, event_id):
    r = http.get("/model/learned", params={"event_id": event_id, "timeout_ms": 20_000})
    assert r.status_code == 200
    return r.json()["learned"]


def fill(http, n_items=30):
    """Items i0..i{n-1} (genre i % 3), and co-clicks: users like runs of consecutive items,
    i0 most of all. Returns the last event id (learned)."""
    for i in range(n_items):
        assert http.put(f"/items/i{i}", json={"title": f"Film {i}", "tags": [GENRES[i % 3]]}).status_code == 202
    events, t = [], 1_700_000_000
    for u in range(40):
        for j in range(3):
            item = 0 if j == 0 and u % 2 == 0 else (u + j) % (n_items - 5)
            events.append({"user_id": f"u{u}", "item_id": f"i{item}", "event": "click", "timestamp": t})
            t += 1
    last = http.post("/feedback/batch", json={"events": events}).json()["event_ids"][-1]
    assert learned(http, last)
    return last


@pytest.fixture
def server(redis_server, tmp_path):
    srv = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


def ids(items):
    return [i["item_id"] for i in items]


# ------------------------------------------------------------------ similar and trending

def test_similar_items_co_occurrence_first_then_factors_and_404_for_unknown(http):
    fill(http)
    r = http.get("/items/i5/similar", params={"k": 8})
    assert r.status_code == 200
    body = r.json()
    assert body["item_id"] == "i5" and len(body["items"]) == 8 and "i5" not in ids(body["items"])
    sources = [i["source"] for i in body["items"]]
    assert sources[0] == "cooccurrence" and sources == sorted(sources)
    assert {"i4", "i6"} <= set(ids(body["items"]))  # liked together with i5 (runs of consecutive items)
    cooc = [i["score"] for i in body["items"] if i["source"] == "cooccurrence"]
    assert cooc == sorted(cooc, reverse=True) and all(0 < s <= 1 for s in cooc)
    missing = http.get("/items/nope/similar")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert http.get("/items/i5/similar", params={"k": 0}).status_code == 422


def test_trending_now_with_and_without_a_tag(http):
    fill(http)
    items = http.get("/trending", params={"k": 5}).json()["items"]
    assert ids(items)[0] == "i0" and len(items) == 5
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    docs = http.get("/trending", params={"k": 30, "tag": "doc"}).json()
    assert docs["tag"] == "doc" and docs["items"] and all(int(i[1:]) % 3 == 2 for i in ids(docs["items"]))
    unknown = http.get("/trending", params={"tag": "westerns"})
    assert unknown.status_code == 422
    (detail,) = unknown.json()["detail"]
    assert detail["loc"] == ["query", "tag"] and "westerns" in detail["msg"]
    assert http.get("/trending", params={"k": 101}).status_code == 422


# ------------------------------------------------------------------ delete

def assert_gone(http, item):
    """``item`` is nowhere: not served (with or without filters or promotions), not similar,
    not trending, not similar-able, not deletable again, not re-PUT."""
    for user in ("u0", "u1", "stranger"):
        assert item not in ids(http.post("/recommend", json={"user_id": user, "k": 100}).json()["items"])
        ruled = http.post("/recommend", json={"user_id": user, "k": 100, "filters": {"include_tags": {"tags": ["drama"]}},
                                              "promotions": [{"items": [item], "slots": 1}]}).json()["items"]
        assert item not in ids(ruled) and not any(i["promoted"] for i in ruled)
    assert item not in ids(http.get("/trending", params={"k": 100}).json()["items"])
    assert item not in ids(http.get("/items/i1/similar", params={"k": 100}).json()["items"])
    assert http.get(f"/items/{item}/similar").status_code == 404
    assert http.delete(f"/items/{item}").status_code == 404
    again = http.put(f"/items/{item}", json={"title": "back?"})
    assert again.status_code == 409 and item in again.json()["detail"]


def test_a_deleted_item_is_never_served_again_and_stays_gone_after_kill_9_and_restore(redis_server, tmp_path):
    srv = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log").start()
    try:
        with httpx.Client(base_url=srv.url, timeout=20) as http:
            fill(http)
            assert ids(http.get("/trending", params={"k": 1}).json()["items"]) == ["i0"]
            assert http.delete("/items/never-put").status_code == 404
            r = http.delete("/items/i0")
            assert r.status_code == 202
            assert learned(http, r.json()["event_id"])
            late = http.post("/feedback", json={"user_id": "u1", "item_id": "i0", "event": "click"})
            assert late.status_code == 202 and learned(http, late.json()["event_id"])
            assert http.get("/model").json()["bounds"]["refused_items"] == 1  # accepted, not learned
            assert_gone(http, "i0")
            last = late.json()["event_id"]
        srv.kill()  # no final snapshot: the restart replays the stream, deletion included
        srv = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server2.log").start()
        with httpx.Client(base_url=srv.url, timeout=20) as http:
            assert learned(http, last)
            assert_gone(http, "i0")
            assert http.post("/snapshots").status_code == 201  # open mode: loopback admin
        srv.stop()
        srv = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server3.log").start()
        with httpx.Client(base_url=srv.url, timeout=20) as http:  # restored from the snapshot
            assert learned(http, last)
            assert http.get("/model").json()["last_snapshot"] is not None
            assert_gone(http, "i0")
            assert ids(http.get("/trending", params={"k": 1}).json()["items"]) != ["i0"]
    finally:
        srv.stop()


# ------------------------------------------------------------------ scopes

SERVE = "serve-key-6c1f02ab93d4e8"
CATALOGUE = "catalogue-key-41d7e0c2b9a5"


@pytest.fixture
def keyed(redis_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FRESHREC_SNAPSHOT_KEY", SNAPSHOT_KEY)
    monkeypatch.setenv("FRESHREC_API_KEYS", json.dumps({SERVE: ["serve"], CATALOGUE: ["catalogue"]}))
    srv = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log").start()
    yield srv
    srv.stop()


def test_the_new_routes_take_their_scopes(keyed):
    def call(method, path, key=None):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.request(method, keyed.url + path, headers=headers, timeout=10)

    for method, path, scope in [("DELETE", "/items/x", "catalogue"), ("GET", "/items/x/similar", "serve"),
                                ("GET", "/trending", "serve")]:
        assert call(method, path).status_code == 401, path
        wrong = CATALOGUE if scope == "serve" else SERVE
        denied = call(method, path, wrong)
        assert denied.status_code == 403 and "scope" in denied.json()["detail"], path
        right = SERVE if scope == "serve" else CATALOGUE
        assert call(method, path, right).status_code in (200, 404), path  # admitted (x is unknown: 404)
    spec = httpx.get(keyed.url + "/openapi.json").json()
    for method, path in [("delete", "/items/{item_id}"), ("get", "/items/{item_id}/similar"), ("get", "/trending")]:
        assert spec["paths"][path][method]["security"] == [{"bearer": []}, {"apiKey": []}], path
