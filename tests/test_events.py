"""Event semantics: ratings by threshold, impressions that expire into negatives, clicks,
stream encoding."""

import numpy as np
import pytest

from engine import EngineConfig, Event, Recommender
from engine.core.events import from_fields, to_fields


def test_rating_threshold_decides_positive_or_negative():
    rec = Recommender(EngineConfig(events={"rating": {"positive_threshold": 8}}))
    rec.apply(Event("u", "liked", "rating", value=8, timestamp=10))
    rec.apply(Event("u", "disliked", "rating", value=7.9, timestamp=11))
    assert rec.positives["u"] == [rec.catalogue.get("liked")]
    assert set(rec.seen["u"]) == {rec.catalogue.get("liked"), rec.catalogue.get("disliked")}


def test_impression_becomes_negative_after_reward_window_in_event_time():
    rec = Recommender(EngineConfig(reward_window_s=60))
    rec.apply(Event("u", "shown", "impression", timestamp=1000))
    assert rec.pending and "u" not in rec.seen
    rec.apply(Event("v", "other", "click", timestamp=1059))  # window not over yet
    assert ("u", rec.catalogue.get("shown")) in rec.pending
    rec.apply(Event("v", "other2", "click", timestamp=1061))
    assert not rec.pending
    assert rec.catalogue.get("shown") in rec.seen["u"]  # learned as a negative
    assert "u" not in rec.positives


def test_an_ignored_impression_stays_a_candidate_without_hide_ignored():
    def score(rec) -> float:  # the factor model's score of "shown" for u
        return float(rec.model.item_scores("u", np.array([rec.catalogue.get("shown")]))[0])

    def after_ignored(hide: bool):
        rec = Recommender(EngineConfig(reward_window_s=60, hide_ignored=hide, seed=3))
        for n in range(30):  # "shown" is liked by others, so it ranks high for u
            rec.apply(Event(f"v{n}", "shown", "click", timestamp=n))
            rec.apply(Event(f"v{n}", f"x{n}", "click", timestamp=n))
        rec.apply(Event("u", "x0", "click", timestamp=999))
        rec.apply(Event("u", "shown", "impression", timestamp=1000))
        before = score(rec)
        rec.apply(Event("w", "y", "click", timestamp=1061))  # the window is over: a negative
        assert not rec.pending
        return rec, before, score(rec)

    hidden, _, _ = after_ignored(True)
    assert "shown" not in [r.item_id for r in hidden.recommend("u", k=50)]
    kept, before, after = after_ignored(False)
    assert "shown" in [r.item_id for r in kept.recommend("u", k=50)]  # still a candidate
    assert after < before  # the negative was learned
    assert "u" not in kept.seen or kept.catalogue.get("shown") not in kept.seen["u"]
    kept.apply(Event("u", "shown", "impression", timestamp=2000))  # shown again: pending again
    assert ("u", kept.catalogue.get("shown")) in kept.pending


def test_click_within_window_resolves_the_impression_as_positive():
    rec = Recommender(EngineConfig(reward_window_s=60))
    rec.apply(Event("u", "shown", "impression", timestamp=1000))
    rec.apply(Event("u", "shown", "click", timestamp=1030))
    rec.apply(Event("v", "x", "click", timestamp=5000))
    assert rec.positives["u"] == [rec.catalogue.get("shown")]
    assert not rec.pending


def test_events_without_timestamp_use_processing_time():
    e = Event("u", "i", "click", received_at=123.5)
    assert e.time == 123.5
    assert Event("u", "i", "click", timestamp=7.0, received_at=123.5).time == 7.0


def test_stream_encoding_round_trip():
    e = Event("u", "i", "rating", value=7.5, timestamp=99.25, received_at=100.0, recommendation_id="r1")
    back = from_fields(b"5-1", {k.encode(): v.encode() for k, v in to_fields(e).items()})
    assert back == Event("u", "i", "rating", 7.5, 99.25, 100.0, "r1", "5-1")


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError):
        Recommender().apply(Event("u", "i", "purchase", timestamp=1))
