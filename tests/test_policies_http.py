"""Champion/challenger over HTTP: an admin promotion makes the challenger's slates the served
ones, a rollback serves the champion's slates again, and both are kept in the history with
their evidence; neither survives as a silent change (the history is in GET /policies)."""

import httpx
import numpy as np
import pytest

from simulators.server_process import ServerProcess

# a greedy champion (the learned ranker) and a challenger with another ranker (the blend):
# their slates differ, and without exploration each slate is a function of the model alone
ARGS = ["--engine.explore", "none", "--engine.ranker", "learned", "--policies.challenger", '{"ranker": "blend"}']
USERS = [f"w{n}" for n in range(0, 60, 6)]


@pytest.fixture
def server(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log", extra_args=ARGS) as srv:
        yield srv


def _warm(http) -> None:
    rng = np.random.default_rng(11)
    events = [{"user_id": f"w{n % 60}", "item_id": f"i{int(rng.zipf(1.5)) % 40}", "event": "click"}
              for n in range(1500)]
    ids = []
    for start in range(0, len(events), 500):
        ids = http.post("/feedback/batch", json={"events": events[start:start + 500]}).json()["event_ids"]
    assert http.get("/model/learned", params={"event_id": ids[-1], "timeout_ms": 20_000}).json()["learned"]


def _slates(http) -> dict[str, list[str]]:
    out = {}
    for user in USERS:
        r = http.post("/recommend", json={"user_id": user, "k": 8})
        assert r.status_code == 200, r.text
        out[user] = [i["item_id"] for i in r.json()["items"]]
    return out


def test_promotion_serves_the_challenger_and_a_rollback_restores_the_champions_slates(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        _warm(http)
        champion = _slates(http)
        assert _slates(http) == champion  # deterministic without exploration: the baseline is stable

        r = http.post("/policies/promote")
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "promotion"
        challenger = _slates(http)
        assert challenger != champion  # another ranker serves now

        r = http.post("/policies/rollback")
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "rollback"
        assert _slates(http) == champion  # the champion's model came back as it was

        state = http.get("/policies").json()
        history = state["history"]
        assert [h["kind"] for h in history][-2:] == ["promotion", "rollback"]
        assert state["looks"] == 0  # a swap starts the new champion's alpha spending afresh
        assert all(h["by"] == "admin" for h in history[-2:])
