"""Exclusions (seen, per-request, hidden, unknown) and catalogue items before their first click."""

from engine import EngineConfig, Event, Recommender
from tests.helpers import rating, trained


def test_items_the_user_interacted_with_are_never_recommended():
    rec = trained()
    for user, seen in rec.seen.items():
        ids = {r.item_id for r in rec.recommend(user, k=40)}
        assert not ids & {rec.catalogue.ids[i] for i in seen}


def test_request_exclude_list_and_unknown_ids():
    rec = trained()
    base = [r.item_id for r in rec.recommend("u1", k=5)]
    again = [r.item_id for r in rec.recommend("u1", k=5, exclude=base[:2] + ["never-seen-item"])]
    assert not set(again) & set(base[:2])
    assert again[:3] == base[2:5]


def test_hidden_items_are_not_recommended_and_can_be_unhidden():
    rec = trained()
    top = rec.recommend("cold-user", k=1)[0].item_id
    rec.apply(Event(user_id="", item_id=top, kind="item", hidden=True))
    assert top not in {r.item_id for r in rec.recommend("cold-user", k=40)}
    rec.apply(Event(user_id="", item_id=top, kind="item", hidden=False))
    assert rec.recommend("cold-user", k=1)[0].item_id == top


def test_item_added_with_metadata_is_recommendable_before_its_first_click():
    rec = Recommender(EngineConfig())
    rec.apply(rating("a", "old", 9, 100.0))
    rec.apply(Event(user_id="", item_id="brand-new", kind="item", meta={"title": "New", "tags": ["x"]}))
    ids = [r.item_id for r in rec.recommend("a", k=10)]
    assert ids == ["brand-new"]
    assert rec.catalogue.meta[rec.catalogue.get("brand-new")]["title"] == "New"


def test_unknown_user_gets_trending_items():
    rec = Recommender(EngineConfig())
    for n, item in enumerate(["a", "b", "b", "c", "c", "c"]):
        rec.apply(rating(f"u{n}", item, 10, 1000.0 + n))
    assert [r.item_id for r in rec.recommend("stranger", k=3)] == ["c", "b", "a"]
