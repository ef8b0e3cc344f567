"""The factor model learns from clicks and sampled negatives."""

from engine import EngineConfig, Event, Recommender


def test_a_click_ranks_the_clicked_item_above_the_sampled_negatives_for_that_user():
    rec = Recommender(EngineConfig(negatives_per_positive=4, cooc_weight=0.0))
    for t in range(400):
        rec.apply(Event(f"u{t % 40}", f"i{t % 20}", "click", timestamp=1e9 + t))
    rec.apply(Event("fan", "i0", "click", timestamp=1e9 + 500))
    mf = rec.model.mf
    clicked = mf.predict_one("fan", "i0")
    assert all(clicked > mf.predict_one("fan", f"i{j}") for j in range(1, 20))
