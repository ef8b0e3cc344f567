"""Logged decisions: a decision reproduces from its recommendation id; served slates and
their propensities reach the feedback stream (and onto the joined click); ``freshrec
evaluate --redis-url`` rebuilds the decisions from the stream alone."""

import json

import httpx
import numpy as np
import pytest
from redis import Redis

from api.cli import main as cli_main
from engine import EngineConfig
from engine.core.events import SLATE_KIND
from engine.core.guard import GuardedRecommender
from engine.core.model import stable_hash
from engine.core.slates import draw, policy_of
from engine.storage.keys import Keys
from engine.storage.stream_reader import events as stream_events
from simulators.server_process import ServerProcess
from tests.helpers import trained

EXPLORING = ["--engine.log-slates", "true", "--engine.explore", "epsilon", "--engine.explore-epsilon", "0.5",
             "--engine.reward-window-s", "0.001", "--policies.challenger", '{"explore": "none"}']


def test_a_served_decision_reproduces_from_its_recommendation_id():
    config = dict(explore="epsilon", explore_epsilon=0.5)
    g = GuardedRecommender(EngineConfig(**config))
    g.reset(trained(n_users=20, n_items=60, seed=4, **config))
    rec = g.recommender
    slates = [g.recommend(f"u{n}", k=8) for n in range(20)]
    assert any(any(s.explored) for s in slates)  # epsilon 0.5 over 160 slots explores
    for s, n in zip(slates, range(20)):
        user = f"u{n}"
        again = draw(rec, user, 8, rec.excluded(user), None, policy_of(rec.config), stable_hash(s.recommendation_id))
        assert [rec.catalogue.ids[r] for r in again.rows.tolist()] == s.item_ids
        np.testing.assert_allclose(again.propensities, s.propensities, rtol=0, atol=0)


@pytest.fixture
def server(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log", extra_args=EXPLORING) as srv:
        yield srv


def _warm(http) -> None:
    rng = np.random.default_rng(7)
    events = [{"user_id": f"w{n}", "item_id": f"i{int(rng.zipf(1.6)) % 25}", "event": "click"} for n in range(300)]
    ids = http.post("/feedback/batch", json={"events": events}).json()["event_ids"]
    assert http.get("/model/learned", params={"event_id": ids[-1], "timeout_ms": 10_000}).json()["learned"]


def _explored_slate(http, user: str) -> dict:
    for _ in range(50):  # each slot explores with probability 1/2 (recommendation ids are random)
        body = http.post("/recommend", json={"user_id": user, "k": 5}).json()
        if any(i["explored"] for i in body["items"]):
            return body
    raise AssertionError("no slate explored in 50 tries at epsilon 0.5")


def test_served_slates_and_their_propensities_reach_the_stream_and_the_joined_click(server, redis_server):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        _warm(http)
        body = _explored_slate(http, "alice")
        rid, items = body["recommendation_id"], body["items"]
        slot = next(n for n, i in enumerate(items) if i["explored"])
        r = http.post("/feedback", json={"user_id": "alice", "item_id": items[slot]["item_id"], "event": "click",
                                         "recommendation_id": rid})
        assert r.status_code == 202
        assert http.get("/model/learned", params={"event_id": r.json()["event_id"], "timeout_ms": 10_000}).json()["learned"]
    stream = list(stream_events(Redis.from_url(redis_server.url), Keys()))
    slate = next(e for e in stream if e.kind == SLATE_KIND and e.recommendation_id == rid)
    assert slate.user_id == "alice"
    assert slate.meta["items"] == [i["item_id"] for i in items]
    np.testing.assert_allclose(slate.meta["p"], [i["propensity"] for i in items], rtol=1e-12)
    assert items[slot]["propensity"] < 1.0
    assert len(slate.meta["targets"]["challenger"]) == 5  # the shadow policy's probabilities of the same slots
    assert all(p in (0.0, 1.0) for p in slate.meta["targets"]["challenger"])  # a greedy challenger
    click = next(e for e in stream if e.kind == "click" and e.recommendation_id == rid)
    assert click.position == slot
    assert click.propensity == pytest.approx(items[slot]["propensity"], rel=1e-12)
    assert stream.index(slate) < stream.index(click)  # a click never precedes its slate


def test_evaluate_rebuilds_the_decisions_from_the_stream(server, redis_server, tmp_path, capsys):
    clicked = {}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        _warm(http)
        for n in range(40):
            user = f"w{n}"
            body = http.post("/recommend", json={"user_id": user, "k": 5}).json()
            if n % 2 == 0:  # every other slate gets a click on its second slot
                item = body["items"][1]["item_id"]
                http.post("/feedback", json={"user_id": user, "item_id": item, "event": "click",
                                             "recommendation_id": body["recommendation_id"]})
                clicked[body["recommendation_id"]] = 1
        last = http.post("/feedback", json={"user_id": "late", "item_id": "i1", "event": "click"}).json()["event_id"]
        assert http.get("/model/learned", params={"event_id": last, "timeout_ms": 10_000}).json()["learned"]
    export = tmp_path / "decisions.jsonl"
    rc = cli_main(["evaluate", "--redis-url", redis_server.url, "--reward-window-s", "0.001", "--candidate", 'greedy={"explore": "none"}',
                   "--candidate", 'blend={"ranker": "blend", "explore": "none"}', "--export", str(export),
                   "--out", str(tmp_path / "out")])
    assert rc == 0
    decisions = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(decisions) == 40  # every served slate, its reward window (1 ms) long closed
    for d in decisions:
        assert set(d["targets"]) == {"challenger", "greedy", "blend"}
        expected = [0.0, 1.0, 0.0, 0.0, 0.0] if d["recommendation_id"] in clicked else [0.0] * 5
        assert d["rewards"] == expected
        assert all(0 < p <= 1 for p in d["logging"])
    report = json.loads((tmp_path / "out" / "evaluate.json").read_text())
    on_policy = next(r for r in report["estimates"] if r["policy"] == "logging" and r["estimator"] == "ips"
                     and r["variant"] == "slot")
    assert on_policy["value"] == pytest.approx(20 / 40)  # on-policy IPS: clicks per slate exactly
    assert {r["policy"] for r in report["estimates"]} == {"logging", "challenger", "greedy", "blend"}
    assert report["slates"] == 40 and report["undecodable"] == 0
    assert "greedy" in capsys.readouterr().out


def test_evaluate_says_when_slates_are_not_logged(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log") as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as http:
            _warm(http)
    with pytest.raises(SystemExit, match="log-slates"):
        cli_main(["evaluate", "--redis-url", redis_server.url, "--out", str(tmp_path / "out")])


def test_a_decision_log_round_trips_through_snapshot_arrays():
    """``DecisionLog.capture`` + ``decision_arrays`` + ``load`` give back the same open and
    complete decisions (targets on some only, contexts, non-ASCII ids, a reward that arrived
    while open), and a later reward to the original does not reach the capture."""
    from engine.core.decisions import Decision, DecisionLog, decision_arrays

    log = DecisionLog(reward_window_s=60, window=50)
    for n in range(80):
        log.served(Decision(f"r{n}", f"ü{n % 7}", float(n), [f"i{(n + j) % 13}" for j in range(1 + n % 4)],
                            [0.9, 0.05, 0.05, 0.5][: 1 + n % 4],
                            {"challenger": [0.25] * (1 + n % 4)} if n % 3 else {},
                            {"page": "é"} if n % 5 == 0 else None))
    log.reward("r75", 0, "i10")
    log.advance(100.0)  # the 41 decisions served up to t = 40 complete (within the window of 50)
    captured = log.capture()
    log.reward("r76", 0, "i11")  # after the capture: not in it
    arrays, meta = decision_arrays(captured)
    back = DecisionLog(reward_window_s=60, window=50)
    back.load(arrays, meta)
    assert back.closed == log.closed == 41
    assert back.as_dicts() == log.as_dicts() and len(back.complete) == 41
    reopened = {rid: (d.rewards, d.targets, d.context, d.user_id) for rid, d in back.open.items()}
    assert list(reopened) == [f"r{n}" for n in range(41, 80)]
    assert reopened["r75"][0][0] == 1.0 and reopened["r76"][0][0] == 0.0
    assert reopened["r42"][1] == {} and reopened["r43"][1] == {"challenger": [0.25] * 4}
    assert reopened["r45"][2] == {"page": "é"} and reopened["r45"][3] == "ü3"


def test_a_share_of_every_slot_comes_from_the_challenger_so_its_weights_stay_below_one_over_share():
    """Mixed logging (engine.core.mixture): the challenger's per-slot weight (its target
    probability over the logged propensity, what the arena's SNIPS uses) never exceeds
    1 / share, items only the challenger's pool holds do reach the slates, and a served
    decision reproduces from its recommendation id and the challenger's pool."""
    from engine.config import PolicyConfig
    from engine.core.slates import pool_and_scores

    champion = dict(explore="epsilon", explore_epsilon=0.1, explore_pool=8)
    share = 0.2
    g = GuardedRecommender(EngineConfig(**champion), policies=PolicyConfig(challenger={"explore": "none"},
                                                                           share=share))
    g.reset(trained(n_users=20, n_items=80, seed=4, **champion))
    g.arena.challenger = trained(n_users=20, n_items=80, seed=5, explore="none", explore_pool=8)  # other tastes
    rec = g.recommender
    weights, only_challenger_shown = [], 0
    for n in range(200):
        user = f"u{n % 20}"
        own = {rec.catalogue.ids[r] for r in pool_and_scores(rec, user, rec.excluded(user), None)[0].tolist()}
        shadow, _ = g.arena.shadow_pool(user, (), None)
        slate = g.recommend(user, k=6)
        targets = g.arena.targets(user, slate.item_ids, (), None)["challenger"]
        weights += [t / p for t, p in zip(targets, slate.propensities)]
        only_challenger_shown += len(set(slate.item_ids) - own)
        again = draw(rec, user, 6, rec.excluded(user), None, policy_of(rec.config),
                     stable_hash(slate.recommendation_id), shadow=shadow)
        assert [rec.catalogue.ids[r] for r in again.rows.tolist()] == slate.item_ids
        np.testing.assert_allclose(again.propensities, slate.propensities, rtol=0, atol=0)
    assert max(weights) <= 1 / share + 1e-9
    assert max(weights) > 0.5 / share  # the challenger's picks are logged at about share
    assert only_challenger_shown > 20  # items the champion's own pool leaves out are shown
    without = GuardedRecommender(EngineConfig(**champion), policies=PolicyConfig(challenger={"explore": "none"},
                                                                                 share=0.0))
    without.reset(rec)
    without.arena.challenger = g.arena.challenger
    w0 = []
    for n in range(200):
        slate = without.recommend(f"u{n % 20}", k=6)
        w0 += [t / p for t, p in zip(without.arena.targets(f"u{n % 20}", slate.item_ids, (), None)["challenger"],
                                     slate.propensities)]
    # the champion's exploration alone hardly ever logs what this challenger would show
    assert sum(w > 0 for w in w0) < sum(w > 0 for w in weights) / 5
