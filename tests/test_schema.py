"""A deployment's own event schema: declared types and their roles, 422 for a type the
schema does not know, the schema stored beside the stream and a mismatch refused at start."""

import httpx
import pytest

from engine import EngineConfig, Event, Recommender
from engine.core.events import InvalidEvent, Semantics
from simulators.server_process import ServerProcess

SHOP = ["--engine.events", '{"view": {"role": "exposure"}, "add_to_cart": {"role": "positive", "weight": 2},'
        ' "purchase": {"role": "positive", "weight": 4}, "dislike": {"role": "negative"}}']


def test_declared_types_get_their_roles_and_weights():
    rec = Recommender(EngineConfig(events={"purchase": {"role": "positive", "weight": 4},
                                           "dislike": {"role": "negative"},
                                           "stars": {"role": "rating", "min": 1, "max": 5,
                                                     "values": {"1": -1, "2": -0.5, "3": 0, "4": 0.5, "5": 1}}}))
    rec.apply(Event("u", "bought", "purchase", timestamp=10))
    rec.apply(Event("v", "clicked", "click", timestamp=11))
    rec.apply(Event("u", "hated", "dislike", timestamp=12))
    rec.apply(Event("w", "meh", "stars", value=3, timestamp=13))
    rec.apply(Event("w", "loved", "stars", value=5, timestamp=14))
    cat = rec.catalogue
    assert rec.positives["u"] == [cat.get("bought")] and rec.positives["w"] == [cat.get("loved")]
    assert {cat.get("hated"), cat.get("bought")} == set(rec.seen["u"])
    assert cat.get("meh") in rec.seen["w"]  # a neutral rating marks the item seen and teaches nothing
    share = rec.bank.counts[:, -1]  # all-time column: a purchase counts 4, a click 1
    assert share[cat.get("bought")] == pytest.approx(4 * share[cat.get("clicked")])


def test_the_intake_knows_only_the_schemas_types_and_scales():
    s = Semantics(EngineConfig(events={"rating": {"min": 1, "max": 5, "positive_threshold": 4}}).events)
    assert s.is_positive("rating", 4) and not s.is_positive("rating", 3.5)
    for event, field in [(Event("u", "i", "purchase"), "event"), (Event("u", "i", "rating", value=8), "value")]:
        with pytest.raises(InvalidEvent) as err:
            s.validate(event)
        assert err.value.field == field


def test_a_server_with_another_schema_refuses_to_start_naming_the_difference(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, extra_args=["--rating-scale", "1:5", "--positive-threshold", "4"],
                       log_path=tmp_path / "a.log") as srv:
        schema = httpx.get(srv.url + "/model").json()["schema"]
        assert schema["rating"] == {"role": "rating", "weight": 1.0, "min": 1.0, "max": 5.0, "positive_threshold": 4.0}
    other = ServerProcess(redis_url=redis_server.url, extra_args=["--rating-scale", "1:5", "--positive-threshold", "3"],
                          log_path=tmp_path / "b.log")
    with pytest.raises(RuntimeError):
        other.start(timeout_s=30)
    log = (tmp_path / "b.log").read_text()
    assert "rating.positive_threshold: stored 4.0, this process 3.0" in log


def test_unknown_event_types_get_422_naming_the_field_and_declared_ones_are_learned(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, extra_args=SHOP, log_path=tmp_path / "s.log") as srv:
        bad = httpx.post(srv.url + "/feedback", json={"user_id": "u", "item_id": "i", "event": "wishlist"})
        assert bad.status_code == 422 and "event" in bad.text and "purchase" in bad.text
        ok = httpx.post(srv.url + "/feedback", json={"user_id": "u", "item_id": "i", "event": "purchase"})
        assert ok.status_code == 202
        learned = httpx.get(srv.url + "/model/learned", params={"event_id": ok.json()["event_id"], "timeout_ms": 10_000})
        assert learned.json()["learned"]
        model = httpx.get(srv.url + "/model").json()
        assert model["positives_learned"] == 1 and model["schema"]["purchase"]["weight"] == 4.0
