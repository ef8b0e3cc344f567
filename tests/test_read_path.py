"""The read path creates no state: unknown users and items never grow the model."""

from tests.helpers import trained


def test_ten_thousand_unknown_id_requests_do_not_grow_the_model():
    rec = trained()
    before = rec.stats()
    sizes = (len(rec.model.mf.u_latents), len(rec.model.mf.i_latents), len(rec.model.mf.u_biases),
             len(rec.model.mf.i_biases), len(rec.catalogue), len(rec.seen), len(rec.positives))
    for n in range(10_000):
        rec.recommend(f"unknown-user-{n}", k=10, exclude=[f"unknown-item-{n}"])
    assert rec.stats() == before
    assert sizes == (len(rec.model.mf.u_latents), len(rec.model.mf.i_latents), len(rec.model.mf.u_biases),
                     len(rec.model.mf.i_biases), len(rec.catalogue), len(rec.seen), len(rec.positives))
