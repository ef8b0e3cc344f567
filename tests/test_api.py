"""The API over real HTTP (uvicorn child process) on a real redis-server."""

import httpx
import pytest

from simulators.server_process import ServerProcess


@pytest.fixture
def server(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log") as srv:
        yield srv


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def learned(http, event_id):
    r = http.get("/model/learned", params={"event_id": event_id, "timeout_ms": 10_000})
    assert r.status_code == 200
    return r.json()["learned"]


def test_click_changes_that_users_next_recommendation(http):
    events = [{"user_id": f"u{n}", "item_id": item, "event": "click", "timestamp": 1000 + n}
              for n, item in enumerate(["a", "b", "b", "c", "c", "c", "d", "d", "d", "d"])]
    ids = http.post("/feedback/batch", json={"events": events}).json()["event_ids"]
    assert learned(http, ids[-1])
    first = http.post("/recommend", json={"user_id": "alice", "k": 3}).json()
    assert [i["item_id"] for i in first["items"]] == ["d", "c", "b"]
    r = http.post("/feedback", json={"user_id": "alice", "item_id": "d", "event": "click", "timestamp": 2000})
    assert r.status_code == 202
    assert learned(http, r.json()["event_id"])
    second = http.post("/recommend", json={"user_id": "alice", "k": 3}).json()
    assert "d" not in [i["item_id"] for i in second["items"]]
    assert second["model_version"] == first["model_version"] + 1


def test_responses_carry_the_server_side_time(http):
    """Load tests separate server time from load-generator time with W3C Server-Timing."""
    r = http.post("/recommend", json={"user_id": "nobody", "k": 3})
    timing = r.headers["server-timing"]
    assert timing.startswith("app;dur=")
    assert 0.0 < float(timing.split("dur=")[1]) < 10_000.0


def test_model_endpoint_reports_learning_and_freshness(http):
    r = http.post("/feedback", json={"user_id": "u", "item_id": "i", "event": "click"})
    assert learned(http, r.json()["event_id"])
    body = http.get("/model").json()
    assert body["events_learned"] == 1 and body["model_version"] == 1
    assert body["stream_lag"] == 0
    assert body["freshness_ms"]["p50"] is not None and body["freshness_ms"]["p99"] >= body["freshness_ms"]["p50"]
    assert "last_snapshot" in body
    assert http.get("/health").json() == {"status": "ok", "redis": True}


def test_put_item_makes_it_recommendable_before_any_click(http):
    r = http.put("/items/new-film", json={"title": "New film", "tags": ["drama"]})
    assert r.status_code == 202
    assert learned(http, r.json()["event_id"])
    items = http.post("/recommend", json={"user_id": "anyone"}).json()["items"]
    assert [i["item_id"] for i in items] == ["new-film"]


@pytest.mark.parametrize("path,body,field", [
    ("/recommend", {"user_id": ""}, "user_id"),
    ("/recommend", {"user_id": "x" * 129}, "user_id"),
    ("/recommend", {"user_id": "u", "k": 0}, "k"),
    ("/recommend", {"user_id": "u", "k": 101}, "k"),
    ("/recommend", {"user_id": "u", "exclude": [""]}, "exclude"),
    ("/recommend", {"k": 5}, "user_id"),
    ("/recommend", {"user_id": "u", "k": True}, "k"),  # a boolean is not a count
    ("/recommend", {"user_id": "u", "explain": "yes"}, "explain"),
    ("/feedback", {"user_id": "u", "item_id": "i", "event": "purchase"}, "event"),
    ("/feedback", {"user_id": "u", "item_id": "", "event": "click"}, "item_id"),
    ("/feedback", {"user_id": "u", "item_id": "i", "event": "click", "timestamp": -1}, "timestamp"),
    ("/feedback", {"user_id": "u", "item_id": "i", "event": "click", "value": "high"}, "value"),
    ("/feedback", {"user_id": "u", "item_id": "i", "event": "rating"}, "value"),
    ("/feedback", {"user_id": 5, "item_id": "i", "event": "click"}, "user_id"),
    ("/feedback/batch", {"events": []}, "events"),
])
def test_bad_input_gets_422_naming_the_field(http, path, body, field):
    r = http.post(path, json=body)
    assert r.status_code == 422
    assert field in r.text


def test_a_timestamp_in_another_unit_is_named_and_an_iso_date_is_accepted(http):
    millis = http.post("/feedback", json={"user_id": "u", "item_id": "i", "event": "click",
                                          "timestamp": 1_733_097_600_123})
    assert millis.status_code == 422
    (error,) = millis.json()["detail"]
    assert error["loc"] == ["body", "timestamp"] and "milliseconds" in error["msg"] and "1733097600.123" in error["msg"]
    iso = http.post("/feedback", json={"user_id": "u", "item_id": "i", "event": "click",
                                       "timestamp": "2024-12-02T01:00:00+01:00"})
    assert iso.status_code == 202
    assert learned(http, iso.json()["event_id"])
    assert http.get("/model").json()["event_clock"] == 1_733_097_600.0  # 01:00 at +01:00 is 00:00 UTC


def test_bad_input_creates_no_state_and_does_not_crash_the_worker(http):
    bad_json = http.post("/feedback", content=b"{not json", headers={"content-type": "application/json"})
    assert bad_json.status_code == 422
    nan = http.post("/feedback", json={"user_id": "u", "item_id": "i", "event": "rating", "value": "NaN"})
    assert nan.status_code == 422 and "value" in nan.text
    for n in range(200):
        assert http.post("/recommend", json={"user_id": f"ghost-{n}", "exclude": [f"ghost-item-{n}"]}).status_code == 200
    size = http.get("/model").json()["size"]
    assert size == {"items": 0, "users": 0, "model_users": 0, "model_items": 0, "pending_impressions": 0,
                    "interactions": 0, "cooc_entries": 0}
    assert http.get("/health").status_code == 200


BIG = "1" + "0" * 400  # an integer beyond a float's range


NON_FINITE = [
    ("POST", "/recommend", '{"user_id": "u", "k": NaN}', "k"),
    ("POST", "/recommend", '{"user_id": "u", "k": 1e400}', "k"),
    ("POST", "/recommend", '{"user_id": "u", "context": {"x": NaN}}', "context"),
    ("POST", "/recommend", '{"user_id": "u", "context": {"x": -Infinity}}', "context"),
    ("POST", "/recommend", '{"user_id": "u", "filters": {"fields": [{"field": "price", "min": NaN}]}}', "min"),
    ("POST", "/recommend", '{"user_id": "u", "filters": {"fields": [{"field": "price", "min": %s}]}}' % BIG, "min"),
    ("POST", "/feedback", '{"user_id": "u", "item_id": "i", "event": "rating", "value": NaN}', "value"),
    ("POST", "/feedback", '{"user_id": "u", "item_id": "i", "event": "rating", "value": Infinity}', "value"),
    ("POST", "/feedback", '{"user_id": "u", "item_id": "i", "event": "click", "timestamp": NaN}', "timestamp"),
    ("POST", "/feedback", '{"user_id": "u", "item_id": "i", "event": "click", "timestamp": %s}' % BIG, "timestamp"),
    ("POST", "/feedback", '{"user_id": "u", "item_id": "i", "event": "click", "context": {"x": NaN}}', "context"),
    ("POST", "/feedback/batch", '{"events": [{"user_id": "u", "item_id": "i", "event": "rating", "value": NaN}]}',
     "value"),
    ("PUT", "/items/i", '{"fields": {"price": NaN}}', "price"),
    ("PUT", "/items/i", '{"fields": {"price": %s}}' % BIG, "price"),
]


def test_non_finite_and_huge_numbers_get_422_naming_the_field(http):
    """JSON has no NaN, Infinity or 1e400 but Python's parser reads them: each is a 422 that
    names the field (not a 500 from echoing the input), and nothing is accepted (an accepted
    event with a NaN context used to be dead-lettered by the learner: accepted, never learned).
    One server for all the bodies (each case would otherwise start its own)."""
    for method, path, raw, field in NON_FINITE:
        r = http.request(method, path, content=raw.encode(), headers={"content-type": "application/json"})
        assert r.status_code == 422, (raw, r.text)
        assert any(field in [str(x) for x in e["loc"]] for e in r.json()["detail"]), (raw, r.text)
    ok = http.post("/feedback", json={"user_id": "u", "item_id": "i", "event": "click", "context": {"x": 1.5}})
    assert ok.status_code == 202 and learned(http, ok.json()["event_id"])
    assert http.get("/model").json()["dead_letters"] == 0


def test_oversized_body_gets_413(http):
    r = http.post("/feedback/batch", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert http.get("/health").status_code == 200


def test_feedback_answers_503_when_redis_is_down_and_recommend_still_serves(http, redis_server):
    r = http.post("/feedback", json={"user_id": "u", "item_id": "i", "event": "click"})
    assert learned(http, r.json()["event_id"])
    redis_server.kill()
    down = http.post("/feedback", json={"user_id": "u", "item_id": "j", "event": "click"})
    assert down.status_code == 503
    assert "retry" in down.json()["detail"]
    assert http.post("/recommend", json={"user_id": "v"}).status_code == 200


def test_guard_joins_clicks_to_served_slates_and_reports_in_model(http):
    http.put("/items/a", json={"title": "A"})
    r = http.put("/items/b", json={"title": "B"})
    assert learned(http, r.json()["event_id"])
    slate = http.post("/recommend", json={"user_id": "alice", "k": 2}).json()
    served = slate["items"][0]["item_id"]
    joined = http.post("/feedback", json={"user_id": "alice", "item_id": served, "event": "click",
                                          "recommendation_id": slate["recommendation_id"]})
    assert joined.status_code == 202
    forged = http.post("/feedback", json={"user_id": "mallory", "item_id": served, "event": "click",
                                          "recommendation_id": slate["recommendation_id"]})
    assert learned(http, forged.json()["event_id"])
    guard = http.get("/model").json()["guard"]
    assert guard["enabled"] is True
    assert guard["vetted_accounts"] == 1  # alice's click joined her slate; mallory's did not
    assert {"validation_windows", "rollbacks", "quarantined_events", "events"} <= set(guard)


def test_metrics_endpoint_exports_prometheus_series(http):
    r = http.post("/feedback", json={"user_id": "u", "item_id": "i", "event": "click"})
    assert learned(http, r.json()["event_id"])
    http.post("/recommend", json={"user_id": "u"})
    text = http.get("/metrics").text
    assert "freshrec_feedback_to_effect_seconds_count 1.0" in text
    assert "freshrec_events_learned 1.0" in text
    assert "freshrec_stream_lag 0.0" in text
    assert 'freshrec_request_seconds_count{endpoint="recommend"} 1.0' in text
    assert "freshrec_feedback_accepted_total 1.0" in text
