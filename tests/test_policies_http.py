"""Champion/challenger over HTTP: an admin promotion makes the challenger's slates the served
ones, a rollback serves the champion's slates again, and both are kept in the history with
their evidence; neither survives as a silent change (the history is in GET /policies)."""

import httpx
import numpy as np
import pytest

from api.settings import Settings
from engine.core.improvement import spent_alpha
from simulators.server_process import ServerProcess

# a greedy champion (the learned ranker) and a challenger with another ranker (the blend):
# their slates differ, and without exploration or mixed slots (policies.share 0) each slate is
# a function of the model alone
ARGS = ["--engine.explore", "none", "--engine.ranker", "learned", "--policies.challenger", '{"ranker": "blend"}',
        "--policies.share", "0"]
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
        assert "engine.log_slates is off" in state["warning"]  # nothing logged: said, not silent
        assert all(h["by"] == "admin" for h in history[-2:])


def _complete_slates(http) -> None:
    """Serve a slate to each of USERS (10 decisions at the engine's clock), then learn a click
    past the reward window (60 s here) so that they complete."""
    _slates(http)
    t = http.get("/model").json()["event_clock"]
    r = http.post("/feedback", json={"user_id": "w1", "item_id": "i1", "event": "click", "timestamp": t + 120})
    assert r.status_code in (200, 202), r.text
    assert http.get("/model/learned", params={"event_id": r.json()["event_id"], "timeout_ms": 20_000}).json()["learned"]


def test_the_alpha_a_champion_has_spent_survives_a_restart(redis_server, tmp_path):
    """The champion's evaluation rides in snapshots: after a restart its window of logged
    decisions is back (estimates at once, not after min_decisions new ones), the checks it
    already spent alpha on are still counted (``looks``), the history is kept, and the next
    check is tested at the level left, f(n) - f(m) (a restarted server that forgot would
    test at f(n) again and raise the false-promotion rate)."""
    args = ARGS + ["--engine.log-slates", "true", "--engine.reward-window-s", "60", "--policies.min-decisions", "5",
                   "--policies.check-every", "1000000"]
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "a.log", extra_args=args) as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            _warm(http)
            _complete_slates(http)
            first = http.post("/policies/check").json()["improvement"]
            assert first["look"] == 1 and first["decisions"] == len(USERS)
            assert first["alpha"] == pytest.approx(spent_alpha(0.05, 0, len(USERS), 20_000))
            state = http.get("/policies").json()
            assert state["looks"] == 1 and "warning" not in state
            assert http.post("/snapshots").status_code == 201
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "b.log", extra_args=args) as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            state = http.get("/policies").json()
            assert state["looks"] == 1
            assert [h["kind"] for h in state["history"]][-1:] == ["check"]
            assert state["decisions"]["complete"] == len(USERS)  # the evaluation window came back too
            assert state["estimates"]["challenger"]["n"] == len(USERS)
            _complete_slates(http)
            again = http.post("/policies/check").json()["improvement"]
            assert again["look"] == 2 and again["decisions"] == 2 * len(USERS)
            assert again["alpha"] == pytest.approx(spent_alpha(0.05, len(USERS), 2 * len(USERS), 20_000))


def test_auto_promotion_without_logged_slates_refuses_to_start():
    """Without engine.log_slates no decision is logged, so an automatic promotion could never
    happen: the settings refuse the combination, naming both."""
    with pytest.raises(ValueError, match="policies.auto_promote needs engine.log_slates"):
        Settings.load({"policies": {"challenger": {"ranker": "blend"}, "auto_promote": True}})
    assert Settings.load({"policies": {"challenger": {"ranker": "blend"}, "auto_promote": True},
                          "engine": {"log_slates": True}}).policies.auto_promote
