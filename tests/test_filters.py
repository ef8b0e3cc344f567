"""Business rules on ``POST /recommend`` over real HTTP (a ``freshrec serve`` child process on
a real redis-server): tag and field filters, the diversity cap, promotions, "k eligible items
exist => k returned", 422s naming an unknown tag or field, exploration under rules, and
explanations that sum to the scores.

One server for the module, its catalogue PUT once (``world``); tests only read it. The server
runs with tiny candidate sources (``--engine.full-scan-items 0``, 4 per source) so filters
really have to refill candidates from eligible items.
"""

from datetime import datetime, timezone

import httpx
import pytest

from simulators.server_process import ServerProcess
from tests.conftest import isolate
from tests.redis_proc import RedisProcess

GENRES = ("drama", "comedy", "horror", "doc", "kids")
N_ITEMS = 200
DAY = 86_400.0
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp()


def genre(i: int) -> str:
    return GENRES[i % 5]


def published(i: int) -> float:
    return EPOCH + i * DAY  # item i is published i days after 2024-01-01


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server whose catalogue holds i0..i199: one genre each (i % 5), ``in-house`` on
    every tenth, a price (= i) and a publication date (i days after 2024-01-01, sent as
    ISO-8601 for even items and unix seconds for odd ones); clicks only on i0..i59."""
    tmp = tmp_path_factory.mktemp("filters")
    redis = RedisProcess(tmp / "redis").start()
    try:
        with pytest.MonkeyPatch.context() as env:
            isolate(env, tmp)
            srv = ServerProcess(redis_url=redis.url, log_path=tmp / "server.log",
                                extra_args=["--engine.full-scan-items", "0", "--engine.candidates-per-source", "4",
                                            "--engine.trending-candidates", "4"]).start()
        with httpx.Client(base_url=srv.url, timeout=20) as http:
            for i in range(N_ITEMS):
                date = (datetime.fromtimestamp(published(i), tz=timezone.utc).isoformat() if i % 2 == 0
                        else published(i))
                tags = [genre(i)] + (["in-house"] if i % 10 == 0 else [])
                r = http.put(f"/items/i{i}", json={"title": f"Film {i}", "tags": tags,
                                                   "fields": {"price": float(i), "published_at": date}})
                assert r.status_code == 202, r.text
            events = []
            for n in range(600):  # popularity falls with the index; only the first 60 items are ever clicked
                item = (n * 7919) % 60 if n % 3 else n % 12
                events.append({"user_id": f"u{n % 25}", "item_id": f"i{item}", "event": "click",
                               "timestamp": 1_700_000_000 + n})
            last = http.post("/feedback/batch", json={"events": events}).json()["event_ids"][-1]
            assert learned(http, last)
            yield http
        srv.stop()
    finally:
        redis.kill()


def learned(http, event_id):
    r = http.get("/model/learned", params={"event_id": event_id, "timeout_ms": 20_000})
    assert r.status_code == 200
    return r.json()["learned"]


def recommend(http, **body):
    r = http.post("/recommend", json={"user_id": "u1", "k": 10, **body})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def index(item) -> int:
    return int(item["item_id"][1:])


# ------------------------------------------------------------------ filters

def test_include_tags_any_and_all(world):
    items = recommend(world, filters={"include_tags": {"tags": ["drama", "comedy"], "match": "any"}})
    assert len(items) == 10 and {genre(index(i)) for i in items} <= {"drama", "comedy"}
    items = recommend(world, k=30, filters={"include_tags": {"tags": ["drama", "in-house"], "match": "all"}})
    assert items and all(index(i) % 10 == 0 for i in items)  # drama (i % 5 == 0) and in-house (i % 10 == 0)
    assert len(items) == 20 - sum(1 for i in range(0, 60, 10) if seen_by("u1", i))


def seen_by(user, i):
    """Whether ``user`` clicked item i in the ``world`` stream."""
    return any(f"u{n % 25}" == user and ((n * 7919) % 60 if n % 3 else n % 12) == i for n in range(600))


def test_exclude_tags(world):
    items = recommend(world, k=40, filters={"exclude_tags": {"tags": ["horror", "kids"]}})
    assert len(items) == 40 and not {genre(index(i)) for i in items} & {"horror", "kids"}
    both = recommend(world, k=40, filters={"exclude_tags": {"tags": ["drama", "in-house"], "match": "all"}})
    assert len(both) == 40 and not [i for i in both if index(i) % 10 == 0]


def test_numeric_and_date_ranges(world):
    items = recommend(world, k=20, filters={"fields": [{"field": "price", "min": 100, "max": 120}]})
    assert len(items) == 20 and all(100 <= index(i) <= 120 for i in items)
    after = recommend(world, k=15, filters={"fields": [{"field": "published_at", "min": "2024-06-01T00:00:00Z"}]})
    cutoff = datetime(2024, 6, 1, tzinfo=timezone.utc).timestamp()
    assert len(after) == 15 and all(published(index(i)) >= cutoff for i in after)
    unix = recommend(world, k=15, filters={"fields": [{"field": "published_at", "max": EPOCH + 9 * DAY}]})
    assert unix and all(index(i) <= 9 for i in unix)


def test_k_eligible_items_give_k_even_when_few_and_never_clicked(world):
    # kids items published after day 150: i154, i159, ..., i199 (10 items), none ever clicked
    body = {"filters": {"include_tags": {"tags": ["kids"]}, "fields": [{"field": "published_at", "min": EPOCH + 150 * DAY}]}}
    items = recommend(world, k=10, **body)
    assert sorted(index(i) for i in items) == list(range(154, 200, 5))
    assert len(recommend(world, k=100, **body)) == 10  # all of them, and only them


def test_filters_compose_with_the_exclude_list(world):
    first = recommend(world, k=5, filters={"include_tags": {"tags": ["doc"]}})
    again = recommend(world, k=5, exclude=[i["item_id"] for i in first[:2]], filters={"include_tags": {"tags": ["doc"]}})
    assert len(again) == 5 and not {i["item_id"] for i in first[:2]} & {i["item_id"] for i in again}
    assert all(genre(index(i)) == "doc" for i in again)


# ------------------------------------------------------------------ diversity and promotions

def test_the_diversity_cap_holds_and_the_slate_is_still_full(world):
    items = recommend(world, k=10, diversity={"max_per_tag": 2})
    assert len(items) == 10
    counts = {g: sum(1 for i in items if genre(index(i)) == g) for g in GENRES}
    assert max(counts.values()) <= 2 and sum(1 for i in items if index(i) % 10 == 0) <= 2  # in-house capped too
    capped = recommend(world, k=10, diversity={"max_per_tag": 1, "tags": ["drama", "comedy"]})
    assert len(capped) == 10
    assert sum(1 for i in capped if genre(index(i)) == "drama") <= 1
    assert sum(1 for i in capped if genre(index(i)) == "comedy") <= 1


def test_promotions_are_guaranteed_their_slots_and_marked(world):
    items = recommend(world, k=10, promotions=[{"name": "house", "tags": ["in-house"], "slots": 2},
                                               {"items": ["i199", "not-an-item"], "slots": 1}])
    assert len(items) == 10
    promoted = [i for i in items if i["promoted"]]
    assert len(promoted) == 3 and "i199" in {i["item_id"] for i in promoted}
    assert sum(1 for i in promoted if index(i) % 10 == 0) == 2
    assert all(i["propensity"] == 1.0 and not i["explored"] for i in promoted)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    plain = recommend(world, k=10)
    assert not any(i["promoted"] for i in plain)


def test_promotions_obey_the_filters_and_the_cap(world):
    items = recommend(world, k=10, filters={"exclude_tags": {"tags": ["kids"]}}, diversity={"max_per_tag": 3},
                      promotions=[{"tags": ["kids", "doc"], "slots": 3}])
    promoted = [i for i in items if i["promoted"]]
    assert len(items) == 10 and len(promoted) == 3 and {genre(index(i)) for i in promoted} == {"doc"}
    assert max(sum(1 for i in items if genre(index(i)) == g) for g in GENRES) <= 3


def test_exploration_under_rules_keeps_propensities_and_promoted_slots_fixed(world):
    seen = set()
    for _ in range(5):
        items = recommend(world, k=8, explore={"kind": "epsilon", "epsilon": 0.5}, diversity={"max_per_tag": 2},
                          promotions=[{"tags": ["in-house"], "slots": 1}])
        assert len(items) == 8 and sum(i["promoted"] for i in items) == 1
        for i in items:
            assert 0.0 < i["propensity"] <= 1.0
            if i["promoted"]:
                assert i["propensity"] == 1.0 and not i["explored"]
        assert max(sum(1 for i in items if genre(index(i)) == g) for g in GENRES) <= 2
        seen.add(tuple(i["item_id"] for i in items))
    assert len(seen) > 1  # it does explore


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("body,loc", [
    ({"filters": {"include_tags": {"tags": ["drama", "westerns"]}}}, ["body", "filters", "include_tags", "tags", 1]),
    ({"filters": {"exclude_tags": {"tags": ["westerns"]}}}, ["body", "filters", "exclude_tags", "tags", 0]),
    ({"filters": {"fields": [{"field": "weight", "max": 3}]}}, ["body", "filters", "fields", 0, "field"]),
    ({"diversity": {"max_per_tag": 1, "tags": ["westerns"]}}, ["body", "diversity", "tags", 0]),
    ({"promotions": [{"tags": ["westerns"], "slots": 1}]}, ["body", "promotions", 0, "tags", 0]),
])
def test_an_unknown_tag_or_field_is_a_422_naming_it(world, body, loc):
    r = world.post("/recommend", json={"user_id": "u1", **body})
    assert r.status_code == 422
    (detail,) = r.json()["detail"]
    assert detail["loc"] == loc
    assert ("westerns" if "westerns" in str(body) else "weight") in detail["msg"]


@pytest.mark.parametrize("body,field", [
    ({"k": 3, "promotions": [{"tags": ["doc"], "slots": 4}]}, "promotions"),
    ({"promotions": [{"slots": 1}]}, "promotions"),
    ({"filters": {"fields": [{"field": "price", "min": 5, "max": 1}]}}, "fields"),
    ({"filters": {"fields": [{"field": "published_at", "min": "last tuesday"}]}}, "min"),
    ({"filters": {"fields": [{"field": "price", "min": True}]}}, "min"),
    ({"filters": {"include_tags": {"tags": []}}}, "tags"),
    ({"filters": {"include_tags": {"tags": ["doc"], "match": "most"}}}, "match"),
    ({"diversity": {"max_per_tag": 0}}, "max_per_tag"),
    ({"filters": {"colour": "red"}}, "colour"),
])
def test_bad_rules_get_a_422_naming_the_field(world, body, field):
    r = world.post("/recommend", json={"user_id": "u1", **body})
    assert r.status_code == 422
    assert field in r.text


# ------------------------------------------------------------------ explanations

def test_explain_parts_sum_to_the_score_for_the_learned_ranker(world):
    items = recommend(world, k=10, explain=True, diversity={"max_per_tag": 3})
    assert len(items) == 10
    for item in items:
        why = item["explanation"]
        assert why["ranker"] == "learned" and "tie_break" in why["parts"]
        # to float rounding: the factor feature is a float32 product (its last bits depend on the batch)
        assert sum(why["parts"].values()) == pytest.approx(item["score"], rel=1e-6, abs=1e-9)
        assert why["because_you_liked"] is None or why["because_you_liked"].startswith("i")
    assert "explanation" not in recommend(world, k=3)[0]


def test_the_openapi_document_describes_the_rules_with_examples(world):
    spec = world.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    request = schemas["RecommendRequest"]["properties"]
    for name in ("filters", "diversity", "promotions", "explain"):
        assert request[name].get("description"), name
    for name in ("Filters", "FieldRange", "Diversity", "Promotion"):
        assert schemas[name].get("examples"), name
    assert "promoted" in schemas["ScoredItem"]["properties"]
    assert "fields" in schemas["ItemRequest"]["properties"]
