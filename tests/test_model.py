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


def test_learn_steps_equals_river_learn_one():
    """The inlined SGD step equals River's BiasedMF.learn_one (latents to rounding, the
    global mean exactly), damped item steps included."""
    import numpy as np
    from river import optim

    from engine.core.model import FactorModel

    ours, river = FactorModel(8, seed=3), FactorModel(8, seed=3)
    rng = np.random.default_rng(0)
    for t in range(3000):
        user = f"u{rng.integers(30)}"
        steps = [(f"i{j}", int(j), float(y), float(w)) for j, y, w in
                 zip(rng.integers(0, 50, 3), (1, 0, 0), (rng.choice([1.0, 0.25]), 1.0, 1.0))]
        ours.learn_steps(user, steps)
        for item, _, y, w in steps:
            opts = (river.mf.i_bias_optimizer, river.mf.i_latent_optimizer)
            saved = [opt.lr for opt in opts]
            for opt in opts:
                opt.lr = optim.schedulers.Constant(river.learning_rate * w)
            river.mf.learn_one(user, item, y)
            for opt, lr in zip(opts, saved):
                opt.lr = lr
    assert ours.mf.global_mean.get() == river.mf.global_mean.get()
    for attr in ("u_latents", "i_latents", "u_biases", "i_biases"):
        a, b = getattr(ours.mf, attr), getattr(river.mf, attr)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-14, err_msg=f"{attr}[{k}]")
    for k, idx in ((f"i{j}", j) for j in range(50)):
        if k in ours.mf.i_latents:  # the serving mirror holds the learned rows
            assert np.array_equal(ours.item_factors[idx], ours.mf.i_latents[k])
