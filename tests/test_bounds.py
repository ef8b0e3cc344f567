"""Bounded state: users are forgotten when inactive or beyond the cap, items beyond the cap
or outside the admission policy are not learned, and a model restored from a snapshot taken
between evictions continues exactly like an uninterrupted one."""

import numpy as np

from engine import EngineConfig, Event, Recommender


def stream(n=6000, seed=0, users=2000, items=300):
    rng = np.random.default_rng(seed)
    return [Event(f"u{rng.integers(users)}", f"i{rng.integers(items)}", "click", timestamp=1e6 + 10 * k)
            for k in range(n)]


def test_a_user_cap_keeps_the_most_recently_active_and_compacts_their_rows():
    rec = Recommender(EngineConfig(max_users=200))
    for e in stream():
        rec.apply(e)
    assert len(rec.seen) <= 200 and len(rec.model.user_index) <= 200
    assert len(rec.model.user_ids) <= 200 * 4 / 3 + 1  # dead rows are compacted away
    assert rec.evicted_users > 1000
    last = {e.user_id for e in stream()[-150:]}
    assert last <= set(rec.seen)  # the most recent users are the ones kept
    assert rec.recommend("u1", 5)  # serving works for anyone


def test_inactive_users_are_forgotten_in_event_time():
    rec = Recommender(EngineConfig(user_ttl_s=3600))
    rec.apply(Event("old", "a", "click", timestamp=0))
    rec.apply(Event("new", "b", "click", timestamp=3000))
    assert "old" in rec.seen
    rec.apply(Event("new", "c", "click", timestamp=3601))
    assert "old" not in rec.seen and "old" not in rec.model.user_index and "new" in rec.seen


def test_item_cap_and_admission_policy():
    rec = Recommender(EngineConfig(max_items=3))
    for item in "abcde":
        rec.apply(Event("u", item, "click", timestamp=1))
    assert rec.catalogue.ids == ["a", "b", "c"] and rec.refused_items == 2
    closed = Recommender(EngineConfig(items_from_feedback=False))
    closed.apply(Event("", "listed", "item"))
    closed.apply(Event("u", "listed", "click", timestamp=1))
    closed.apply(Event("u", "spam", "click", timestamp=2))
    assert closed.catalogue.ids == ["listed"] and closed.refused_items == 1


def test_a_restored_model_evicts_and_learns_like_an_uninterrupted_one():
    events = stream(5000, seed=3)
    config = EngineConfig(max_users=150, user_ttl_s=20_000)
    a = Recommender(config)
    for e in events[:2500]:
        a.apply(e)
    assert a.dead_users.any()  # the snapshot is taken with forgotten rows not yet compacted
    b = Recommender.from_state(*a.state())
    for e in events[2500:]:
        a.apply(e)
        b.apply(e)
    sa, sb = a.state()[0], b.state()[0]
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)
    assert a.recommend("u7", 10) == b.recommend("u7", 10)
