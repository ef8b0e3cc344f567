"""The pure core of business rules, in process: the attribute index, filter masks, the
diversity cap, promotions, slates under rules (k eligible => k slots, exact propensities,
replays), explanations, similar and trending items, deletions through snapshots."""


import numpy as np
import pytest

from engine import EngineConfig, Event, Recommender
from engine.core.attributes import ItemAttributes
from engine.core.diversity import Diversity
from engine.core.exploration import ExplorationPolicy
from engine.core.filters import FieldRange, Filters, TagFilter, UnknownName
from engine.core.promotions import Promotion
from engine.core.rules import Rules
from engine.core.similar import similar
from engine.core.slates import policy_of, target
from engine.core.trending import trending

GENRES = ("drama", "comedy", "horror", "doc", "kids")


def attrs_of(rows: dict[int, tuple]) -> ItemAttributes:
    a = ItemAttributes()
    for row, (tags, fields) in rows.items():
        a.set(row, tags, fields)
    return a


# ------------------------------------------------------------------ attributes and masks

def test_the_index_follows_puts_replacements_and_deletions():
    a = attrs_of({0: (["x", "y"], {"price": 3.0}), 1: (["y"], {}), 2: ([], {"price": 9.0})})
    y = a.tag_id("y")
    assert a.rows_of(y).tolist() == [0, 1]
    a.set(0, ["x"], {})  # replaces: loses y and its price
    assert a.rows_of(y).tolist() == [1]
    assert np.isnan(a.column("price")[0]) and a.column("price")[2] == 9.0
    a.clear(1)
    assert a.rows_of(y).tolist() == [] and a.tag_id("y") == y  # a tag stays known, matching nothing
    with pytest.raises(ValueError, match="finite"):
        a.set(3, [], {"price": float("inf")})


def test_tag_masks_any_all_and_exclusion():
    a = attrs_of({0: (["x", "y"], {}), 1: (["y"], {}), 2: (["x"], {}), 3: ([], {})})
    n = 4
    assert Filters(include_tags=TagFilter(("x", "y"), "any")).mask(a, n).tolist() == [True, True, True, False]
    assert Filters(include_tags=TagFilter(("x", "y"), "all")).mask(a, n).tolist() == [True, False, False, False]
    assert Filters(exclude_tags=TagFilter(("x",), "any")).mask(a, n).tolist() == [False, True, False, True]
    assert Filters(exclude_tags=TagFilter(("x", "y"), "all")).mask(a, n).tolist() == [False, True, True, True]


def test_field_ranges_are_inclusive_and_items_without_the_field_fail():
    a = attrs_of({0: ([], {"price": 1.0}), 1: ([], {"price": 5.0}), 2: ([], {"price": 10.0}), 3: ([], {})})
    n = 4
    assert Filters(fields=(FieldRange("price", 1.0, 5.0),)).mask(a, n).tolist() == [True, True, False, False]
    assert Filters(fields=(FieldRange("price", min=5.0),)).mask(a, n).tolist() == [False, True, True, False]
    assert Filters(fields=(FieldRange("price", max=1.0),)).mask(a, n).tolist() == [True, False, False, False]
    assert Filters(fields=(FieldRange("price"),)).mask(a, n).tolist() == [True, True, True, False]


def test_a_filter_mask_is_built_once_and_rebuilt_when_metadata_changes():
    a = attrs_of({0: (["x"], {"price": 1.0}), 1: (["y"], {"price": 5.0}), 2: (["x"], {})})
    f = Filters(include_tags=TagFilter(("x",)), fields=(FieldRange("price", max=2.0),))
    first = f.mask(a, 3)
    assert first.tolist() == [True, False, False]
    assert Filters(include_tags=TagFilter(("x",)), fields=(FieldRange("price", max=2.0),)).mask(a, 3) is first
    with pytest.raises(ValueError):
        first[1] = True  # shared between requests: read only
    a.set(2, ["x"], {"price": 0.5})  # a PUT changes what the same filter admits
    assert f.mask(a, 3).tolist() == [True, False, True]
    a.grow(4)  # a new item, no metadata yet
    assert f.mask(a, 4).tolist() == [True, False, True, False]


def test_unknown_tags_and_fields_are_named_with_their_location():
    a = attrs_of({0: (["x"], {"price": 1.0})})
    with pytest.raises(UnknownName) as e:
        Filters(include_tags=TagFilter(("x", "nope"))).mask(a, 1)
    assert e.value.loc == ("filters", "include_tags", "tags", 1) and e.value.name == "nope"
    with pytest.raises(UnknownName) as e:
        Filters(fields=(FieldRange("price", 0, 1), FieldRange("weight", 0, 1))).mask(a, 1)
    assert e.value.loc == ("filters", "fields", 1, "field") and "weight" in str(e.value)
    with pytest.raises(UnknownName) as e:
        Diversity(1, ("y",)).compile(a)
    assert e.value.loc == ("diversity", "tags", 0)


# ------------------------------------------------------------------ slates under rules

def catalogue_world(ranker: str = "learned", n_items: int = 300, seed: int = 0, **config) -> Recommender:
    """Items i0..i{n-1} with one genre each (i % 5) and a price (= index), clicks Zipf-skewed
    towards low indices, tiny candidate sources (so filters really exercise the refill)."""
    cfg = dict(ranker=ranker, full_scan_items=0, candidates_per_source=4, trending_candidates=4)
    cfg.update(config)
    rec = Recommender(EngineConfig(**cfg))
    for i in range(n_items):
        rec.apply(Event("", f"i{i}", "item", meta={"title": f"t{i}", "tags": [GENRES[i % 5]],
                                                    "fields": {"price": float(i)}}))
    rng = np.random.default_rng(seed)
    for t in range(2000):
        item = int(rng.zipf(1.4)) - 1
        if item >= n_items // 2:  # the upper half of the catalogue is never clicked
            continue
        rec.apply(Event(f"u{rng.integers(30)}", f"i{item}", "click", timestamp=1000.0 + t))
    return rec


def tags_of(rec, item_ids):
    return [rec.catalogue.meta[rec.catalogue.get(i)]["tags"][0] for i in item_ids]


@pytest.mark.parametrize("ranker", ["learned", "blend"])
def test_k_eligible_items_give_k_slots_even_when_few_and_unpopular(ranker):
    rec = catalogue_world(ranker)
    # the 12 most expensive kids items: never clicked, outside every candidate source
    rules = Rules(filters=Filters(include_tags=TagFilter(("kids",)), fields=(FieldRange("price", min=240.0),)))
    s = rec.serve("u1", 10, rules=rules)
    assert len(s.item_ids) == 10
    assert all(int(i[1:]) >= 240 and int(i[1:]) % 5 == 4 for i in s.item_ids)
    assert len(rec.serve("u1", 50, rules=rules).item_ids) == 12  # only 12 exist


@pytest.mark.parametrize("serving", [0, 1])
def test_a_ranker_without_the_factor_score_still_fills_k_slots_from_the_factor_source(serving):
    rec = catalogue_world("learned")
    rec.ranker.forced = serving  # popularity only / no factors: serving skips the factor scan...
    assert not rec.ranker.uses("factors")
    rules = Rules(filters=Filters(include_tags=TagFilter(("kids",)), fields=(FieldRange("price", min=240.0),)))
    s = rec.serve("u1", 10, rules=rules)  # ...but not when the other sources cannot fill the slate
    assert len(s.item_ids) == 10
    assert all(int(i[1:]) >= 240 and int(i[1:]) % 5 == 4 for i in s.item_ids)


@pytest.mark.parametrize("ranker", ["learned", "blend"])
def test_the_diversity_cap_holds_and_is_refilled_from_other_tags(ranker):
    rec = catalogue_world(ranker)
    s = rec.serve("u2", 10, rules=Rules(diversity=Diversity(2)))
    assert len(s.item_ids) == 10 and max(np.unique(tags_of(rec, s.item_ids), return_counts=True)[1]) == 2
    one = rec.serve("u2", 10, rules=Rules(diversity=Diversity(1)))
    assert sorted(tags_of(rec, one.item_ids)) == sorted(GENRES)  # only 5 slots can satisfy a cap of 1
    only_drama = rec.serve("u2", 6, rules=Rules(diversity=Diversity(1, ("drama",))))
    assert len(only_drama.item_ids) == 6 and tags_of(rec, only_drama.item_ids).count("drama") <= 1


def test_greedy_slates_under_a_cap_are_the_best_items_that_keep_it():
    rec = catalogue_world("blend", n_items=60, full_scan_items=2000)
    s = rec.serve("u3", 6, rules=Rules(diversity=Diversity(2)))
    scores = rec.scores("u3")
    scores[rec.excluded("u3")] = -np.inf
    counts, expected = {}, []
    for r in np.argsort(-scores, kind="stable").tolist():
        g = GENRES[r % 5]
        if counts.get(g, 0) < 2 and np.isfinite(scores[r]):
            counts[g] = counts.get(g, 0) + 1
            expected.append(rec.catalogue.ids[r])
        if len(expected) == 6:
            break
    assert s.item_ids == expected
    assert s.propensities == [1.0] * 6 and not any(s.explored)


@pytest.mark.parametrize("ranker", ["learned", "blend"])
def test_promotions_get_their_slots_marked_with_propensity_one_and_count_for_the_cap(ranker):
    rec = catalogue_world(ranker)
    rules = Rules(filters=Filters(exclude_tags=TagFilter(("horror",))), diversity=Diversity(3),
                  promotions=(Promotion(2, tags=("doc",)), Promotion(1, items=("i299", "unknown-id"))))
    s = rec.serve("u4", 10, rules=rules)
    assert len(s.item_ids) == 10
    promoted = [i for i, p in zip(s.item_ids, s.promoted) if p]
    assert len(promoted) == 3 and "i299" in promoted
    assert tags_of(rec, [i for i in promoted if i != "i299"]) == ["doc", "doc"]
    assert all(p == 1.0 for p, m in zip(s.propensities, s.promoted) if m)
    tags = tags_of(rec, s.item_ids)
    assert "horror" not in tags and max(tags.count(g) for g in GENRES) <= 3
    order = [sc for sc, m in zip(s.scores, s.promoted) if m]
    assert order == sorted(order, reverse=True)  # promoted items keep their sorted order
    assert s.scores == sorted(s.scores, reverse=True)  # greedy: the whole slate by score


def test_filters_compose_with_exclude_hidden_and_seen():
    rec = catalogue_world("learned")
    rules = Rules(filters=Filters(include_tags=TagFilter(("comedy",))))
    first = rec.serve("u5", 5, rules=rules).item_ids
    rec.apply(Event("", first[1], "item", hidden=True))
    again = rec.serve("u5", 5, exclude=[first[0]], rules=rules).item_ids
    assert first[0] not in again and first[1] not in again and len(again) == 5
    seen = {rec.catalogue.ids[r] for r in rec.seen["u5"]}
    assert not seen & set(again)


def _frequencies(rec, user, k, policy, rules, draws):
    counts, props = {}, {}
    for seed in range(draws):
        s = rec.serve(user, k, policy=policy, seed=seed, rules=rules)
        key = tuple(s.item_ids)
        counts[key] = counts.get(key, 0) + 1
        props[key] = float(np.prod(s.propensities))
    return counts, props


@pytest.mark.parametrize("policy", [ExplorationPolicy("epsilon", epsilon=0.5),
                                    ExplorationPolicy("softmax", temperature=2.0)], ids=["epsilon", "softmax"])
def test_propensities_under_a_cap_match_the_frequencies_of_the_draws(policy):
    """Six items, two tags, cap 1 per tag, two slots from a pool of four: the second slot can
    only hold the other tag, and the propensities say so exactly."""
    rec = Recommender(EngineConfig(ranker="blend", explore_pool=4))
    for i, tag in enumerate(["a", "a", "b", "b", "a", "b"]):
        rec.apply(Event("", f"i{i}", "item", meta={"tags": [tag]}))
        for n in range(6 - i):
            rec.apply(Event(f"fan{i}-{n}", f"i{i}", "click", timestamp=100.0 + i))
    rules = Rules(diversity=Diversity(1))
    draws = 6000
    counts, props = _frequencies(rec, "someone", 2, policy, rules, draws)
    assert abs(sum(props.values()) - 1.0) < 1e-9  # every slate that can be drawn, and only those
    for key, p in props.items():
        assert tags_of(rec, list(key))[0] != tags_of(rec, list(key))[1]
        assert abs(counts[key] / draws - p) < 4 * np.sqrt(p * (1 - p) / draws) + 1e-3, key


@pytest.mark.parametrize("policy", [ExplorationPolicy("epsilon", epsilon=0.3),
                                    ExplorationPolicy("softmax", temperature=1.0), ExplorationPolicy()],
                         ids=["epsilon", "softmax", "greedy"])
def test_a_slate_served_under_rules_replays_to_its_own_propensities(policy):
    rec = catalogue_world("learned", explore_pool=8)
    rules = Rules(filters=Filters(fields=(FieldRange("price", max=150.0),)), diversity=Diversity(2),
                  promotions=(Promotion(1, tags=("kids",)),))
    for seed in range(20):
        s = rec.serve("u6", 8, policy=policy, seed=seed, rules=rules)
        rows = np.array([rec.catalogue.get(i) for i in s.item_ids])
        p, _ = target(rec, "u6", rows, rec.excluded("u6"), None, policy, rules=rules.compile(rec.catalogue),
                      promoted=np.array(s.promoted))
        # to rounding: the factor feature is a float32 product whose last bits depend on the batch of rows
        np.testing.assert_allclose(p, s.propensities, rtol=0, atol=1e-9)


def test_without_rules_serving_is_unchanged():
    rec = catalogue_world("learned")
    plain = rec.serve("u7", 10, policy=policy_of(rec.config), seed=1)
    empty = rec.serve("u7", 10, policy=policy_of(rec.config), seed=1, rules=Rules(filters=Filters()))
    assert plain == empty
    assert plain.item_ids == [r.item_id for r in rec.recommend("u7", 10)]


# ------------------------------------------------------------------ explanations

@pytest.mark.parametrize("ranker", ["learned", "blend"])
def test_explanations_sum_to_the_scores(ranker):
    from engine.core.explain import explain

    rec = catalogue_world(ranker)
    for user in ("u8", "u9", "nobody"):
        s = rec.serve(user, 10, rules=Rules(diversity=Diversity(3)))
        for score, why in zip(s.scores, explain(rec, user, s.item_ids)):
            assert why["ranker"] == ranker
            assert sum(why["parts"].values()) == pytest.approx(score, rel=1e-6, abs=1e-9)


def test_because_you_liked_names_the_history_item_that_co_occurs_most():
    from engine.core.explain import explain

    rec = Recommender(EngineConfig(ranker="blend"))
    for n in range(5):
        for item in ("a", "b"):  # a and b liked together five times
            rec.apply(Event(f"pair{n}", item, "click", timestamp=100.0 + n))
    rec.apply(Event("x1", "c", "click", timestamp=200.0))
    rec.apply(Event("x1", "b", "click", timestamp=201.0))
    rec.apply(Event("me", "a", "click", timestamp=300.0))
    rec.apply(Event("me", "c", "click", timestamp=301.0))
    (why,) = explain(rec, "me", ["b"])
    assert why["because_you_liked"] == "a" and why["parts"]["cooc"] > 0


# ------------------------------------------------------------------ similar, trending, deletion

def test_similar_items_are_co_occurring_first_then_factor_neighbours():
    rec = catalogue_world("learned")
    row = rec.catalogue.get("i0")
    out = similar(rec, row, 20)
    assert len(out) == 20 and row not in [s.row for s in out]
    sources = [s.source for s in out]
    assert sources[0] == "cooccurrence" and sources == sorted(sources)  # "cooccurrence" < "factors"
    cooc = [s.score for s in out if s.source == "cooccurrence"]
    assert cooc == sorted(cooc, reverse=True)
    lonely = rec.catalogue.get("i250")  # clicked by nobody with a history: no co-occurrence
    rec.apply(Event("solo", "i250", "click", timestamp=9999.0))
    found = similar(rec, lonely, 5)
    assert len(found) == 5 and {s.source for s in found} == {"factors"}


@pytest.mark.parametrize("ranker", ["learned", "blend"])
def test_trending_is_decayed_popularity_within_a_tag(ranker):
    rec = catalogue_world(ranker)
    rows, counts = trending(rec, 5)
    assert rows.tolist()[0] == rec.catalogue.get("i0") and np.all(np.diff(counts) <= 0) and np.all(counts > 0)
    kids = Filters(include_tags=TagFilter(("kids",))).mask(rec.catalogue.attributes, len(rec.catalogue))
    rows, _ = trending(rec, 5, kids)
    assert all(GENRES[r % 5] == "kids" for r in rows.tolist())


def test_a_deleted_item_is_never_served_and_stays_deleted_through_a_snapshot():
    from engine.core.events import item_deletion

    rec = catalogue_world("learned")
    top = rec.recommend("stranger", 1)[0].item_id
    rec.apply(item_deletion(top, 5000.0))
    rec.apply(Event("", top, "item", meta={"tags": ["drama"]}, hidden=False))  # cannot bring it back
    rec.apply(Event("late", top, "click", timestamp=5001.0))  # not learned
    assert rec.catalogue.is_deleted(top) and rec.refused_items == 1
    back = Recommender.from_state(*rec.state())
    lazy = Recommender.from_state(*rec.state(), attributes=False)  # the index is built on first use
    for model in (rec, back, lazy):
        row = model.catalogue.get(top)
        assert top not in model.serve("stranger", 300).item_ids
        assert row not in trending(model, 300)[0].tolist()
        assert row not in [s.row for s in similar(model, model.catalogue.get("i1"), 300)]
        drama = model.serve("stranger", 300, rules=Rules(filters=Filters(include_tags=TagFilter(("drama",)))))
        assert top not in drama.item_ids and len(drama.item_ids) == 60 - (top in [f"i{5 * j}" for j in range(60)])
        assert model.catalogue.is_deleted(top) and row not in model.catalogue.meta
    assert back.catalogue.attributes.rows_of(back.catalogue.attributes.tag_id("drama")).tolist() == \
        rec.catalogue.attributes.rows_of(rec.catalogue.attributes.tag_id("drama")).tolist()
