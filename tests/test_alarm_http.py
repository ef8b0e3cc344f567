"""The guard's prequential alarm runs on the serving path: a bot burst sent over HTTP moves
ADWIN (a real server on a real redis-server; the validation windows are switched off so
only the alarm is looked at)."""

import httpx
import pytest

from simulators.server_process import ServerProcess

USERS = [f"u{n}" for n in range(30)]
ITEMS = [f"i{n}" for n in range(300)]
TARGETS = ["t0", "t1"]


@pytest.fixture
def http(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, extra_args=["--guard.validate-windows", "false"],
                       log_path=tmp_path / "server.log") as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            yield client


def learned(http, event_id):
    return http.get("/model/learned", params={"event_id": event_id, "timeout_ms": 10_000}).json()["learned"]


def serve_round(http) -> int:
    """Every user asks for one item and clicks it unless it is a bot target; clicks carry
    the slate's recommendation id. Returns how many users clicked."""
    clicks = []
    for user in USERS:
        slate = http.post("/recommend", json={"user_id": user, "k": 1}).json()
        item = slate["items"][0]["item_id"]
        if item not in TARGETS:
            clicks.append({"user_id": user, "item_id": item, "event": "click",
                           "recommendation_id": slate["recommendation_id"]})
    if clicks:
        ids = http.post("/feedback/batch", json={"events": clicks}).json()["event_ids"]
        assert learned(http, ids[-1])
    return len(clicks)


def alarms(http) -> list[dict]:
    return [e for e in http.get("/model").json()["guard"]["events"] if e["kind"] == "alarm"]


def test_an_http_bot_burst_moves_the_adwin_alarm(http):
    for item in ITEMS + TARGETS:
        r = http.put(f"/items/{item}", json={"title": item})
    assert learned(http, r.json()["event_id"])
    for _ in range(8):  # established users whose slates get clicked: hit rate 1
        assert serve_round(http) == len(USERS)
    assert alarms(http) == []  # a steady hit rate raises nothing
    bots = [{"user_id": f"bot{n}", "item_id": TARGETS[n % 2], "event": "click"} for n in range(3000)]
    for start in range(0, len(bots), 1000):  # sybils click the targets, never served to them
        ids = http.post("/feedback/batch", json={"events": bots[start: start + 1000]}).json()["event_ids"]
    assert learned(http, ids[-1])
    ignored = 0
    for _ in range(6):  # the targets now fill the slates, and real users do not click them
        ignored += len(USERS) - serve_round(http)
    assert ignored > len(USERS)
    found = alarms(http)
    assert found and found[0]["detector"] == "ADWIN" and found[-1]["hit_rate"] < 1.0
