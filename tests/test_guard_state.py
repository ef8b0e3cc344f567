"""The forgetting guard's state in snapshots, in process: a guard restored from a snapshot
taken in the middle of a window (after rollbacks, with a reference model of its own)
continues exactly like an uninterrupted one on the same events: the same accounts, trust
weights, reservoir, windows, rollbacks and model, byte for byte. Also the pieces: row
deltas, accounts, the replica and old-snapshot paths, and validation as steps."""

import numpy as np
import pytest

from engine import EngineConfig, Event
from engine.config import GuardConfig
from engine.core import state_delta
from engine.core.accounts import Accounts
from engine.core.guard import GuardedRecommender
from engine.core.recommender import Recommender
from engine.core.snapshot_codec import decode, encode
from engine.core.steps import run
from engine.core.trust import TRUSTED, UNVETTED
from tests.guard_world import GUARD, guard_world

KEY = b"guard-state-test"
SNAPSHOT_AT = (1150, 1550)  # mid-window, each with a reference model distinct from the last good one


def snapshot(g: GuardedRecommender) -> bytes:
    """A signed blob with the model and the guard's state, as a checkpoint writes it."""
    arrays, meta = g.recommender.state(copy=False)
    guard_arrays, guard_meta = g.state(arrays, meta)
    return bytes(encode({**arrays, **guard_arrays}, {**meta, "guard": guard_meta}, KEY))


def restored(blob: bytes, guard: GuardConfig = GUARD) -> GuardedRecommender:
    arrays, meta = decode(blob, KEY)
    g = GuardedRecommender(EngineConfig(), guard)
    g.load_state(Recommender.from_state(arrays, meta), arrays, meta["guard"])
    return g


def everything(g: GuardedRecommender) -> tuple[dict, dict, dict, dict]:
    arrays, meta = g.recommender.state()
    guard_arrays, guard_meta = g.state()
    return arrays, meta, {k: np.asarray(v).copy() for k, v in guard_arrays.items()}, guard_meta


@pytest.fixture(scope="module")
def world():
    blobs, points = {}, {}

    def on_event(n, g):
        if n in SNAPSHOT_AT:
            assert g._reference_state is not None and g._reference_state is not g._good and g._window
            blobs[n] = snapshot(g)
            points[n] = [_copy_point(g._good), _copy_point(g._reference_state)]

    g, events = guard_world(on_event=on_event)
    return g, events, blobs, points


def _copy_point(point):
    arrays, meta = point
    return {k: np.asarray(v).copy() for k, v in arrays.items()}, meta


@pytest.mark.parametrize("at", SNAPSHOT_AT)
def test_a_guard_restored_mid_window_continues_exactly_like_an_uninterrupted_one(world, at):
    uninterrupted, events, blobs, _ = world
    later_rollbacks = [e for e in uninterrupted.guard_events if e["kind"] == "rollback" and e["at_event"] > at]
    assert later_rollbacks  # the restored last good model is rolled back to
    g = restored(blobs[at])
    for e in events[at:]:
        g.apply(e)
    a_arrays, a_meta, a_guard, a_guard_meta = everything(uninterrupted)
    b_arrays, b_meta, b_guard, b_guard_meta = everything(g)
    assert a_arrays.keys() == b_arrays.keys() and a_guard.keys() == b_guard.keys()
    for name in a_arrays:
        assert a_arrays[name].tobytes() == b_arrays[name].tobytes(), name
    for name in a_guard:
        assert a_guard[name].tobytes() == b_guard[name].tobytes(), name
    a_guard_meta.pop("served"), b_guard_meta.pop("served")  # slates served (in process) after the snapshot
    assert a_guard_meta == b_guard_meta
    assert a_meta == b_meta
    assert g.accounts.as_dict() == uninterrupted.accounts.as_dict()
    assert g.stats() == uninterrupted.stats()
    for user in ["u1", "u7", "bot7-3", "nobody"]:
        assert g.account(user) == uninterrupted.account(user)
    assert uninterrupted.account("bot7-3")["unjoined_weight"] == GUARD.untrusted_weight
    assert uninterrupted.account("u1")["established"] and uninterrupted.account("u1")["unjoined_weight"] == 1.0


@pytest.mark.parametrize("at", SNAPSHOT_AT)
def test_rollback_points_come_back_byte_for_byte_from_their_deltas(world, at):
    _, _, blobs, points = world
    g = restored(blobs[at])
    for (want_arrays, want_meta), got in zip(points[at], [g._good, g._reference_state]):
        got_arrays, got_meta = got
        assert got_arrays.keys() == want_arrays.keys()
        for name, want in want_arrays.items():
            assert np.asarray(got_arrays[name]).tobytes() == want.tobytes(), name
        assert got_meta == want_meta


def test_a_rollback_point_costs_the_rows_changed_since_not_another_model():
    g = GuardedRecommender(guard=GUARD)
    rng = np.random.default_rng(3)
    for k in range(19_800):  # 19,800 items, 2,000 established users; windows close every 300 events
        g.apply(Event(f"u{k % 2000}", f"i{k}", "click", timestamp=1e6 + k, trust=TRUSTED))
    sizes = []
    for k in range(90):  # under a third of a window more: the last good model is 90 events old
        g.apply(Event(f"u{rng.integers(2000)}", f"i{rng.integers(19_800)}", "click", timestamp=2e6 + k,
                      trust=TRUSTED))
        if k in (9, 89):
            arrays, _ = decode(snapshot(g), KEY)
            sizes.append(sum(v.nbytes for n, v in arrays.items() if n.startswith("guard.good.")))
    assert g._good is not None and len(g._window) == 90
    model = sum(v.nbytes for n, v in arrays.items() if not n.startswith("guard."))
    deltas = sum(v.nbytes for n, v in arrays.items() if n.startswith(("guard.good.", "guard.reference.")))
    assert deltas < 0.1 * model, (deltas, model)
    assert sizes[0] < sizes[1] < 0.05 * model  # it grows with the events since the point
    back = restored(snapshot(g))
    for name, want in g._good[0].items():
        assert np.asarray(back._good[0][name]).tobytes() == np.asarray(want).tobytes(), name


def test_a_replica_takes_the_accounts_and_keeps_no_window_or_rollback_points(world):
    uninterrupted, events, blobs, _ = world
    replica = restored(blobs[1550], GUARD.model_copy(update={"validate_windows": False}))
    assert replica._good is None and replica._reference_state is None and replica._window == []
    at_snapshot = restored(blobs[1550])
    assert replica.accounts.as_dict() == at_snapshot.accounts.as_dict() and len(replica.accounts) > 50
    for e in events[1550:]:
        replica.apply(e)
    assert replica._window == [] and replica.validation_windows == at_snapshot.validation_windows
    assert replica.accounts.as_dict() == uninterrupted.accounts.as_dict()  # vetting follows the stream


def test_a_snapshot_without_guard_state_resets_the_guard():
    g = GuardedRecommender()
    g.apply(Event("u", "i", "click", timestamp=1.0, trust=TRUSTED))
    rec = Recommender.from_state(*g.recommender.state())
    g.load_state(rec, {}, None)
    assert g.recommender is rec and g._window == [] and g._good is None


def test_validation_steps_yield_often_and_decide_what_a_validation_in_one_go_decides():
    def burst(g):
        for k in range(400):
            g.apply(Event(f"v{k % 40}", f"i{k % 90}", "click", timestamp=1e6 + k, trust=TRUSTED))
        for k in range(49):
            g.apply(Event(f"bot{k}", "target", "click", timestamp=2e6 + k, trust=UNVETTED))
        return Event("bot-last", "target", "click", timestamp=3e6, trust=UNVETTED)  # the 50th: validates

    config = GUARD.model_copy(update={"min_suspicious": 50})
    one_go, sliced = GuardedRecommender(guard=config), GuardedRecommender(guard=config)
    last = burst(one_go)
    assert burst(sliced) == last
    assert one_go.apply(last) is None  # validated before returning
    steps = sliced.apply(last, defer=True)
    assert steps is not None and sliced.validation_windows == one_go.validation_windows - 1  # not started yet
    yields = 0
    try:
        while True:
            next(steps)
            yields += 1
    except StopIteration as stop:
        verdict = stop.value
    assert yields > 100 and "quality_live" in verdict  # a full validation: both models scored
    assert sliced.validation_windows == one_go.validation_windows
    for name, value in one_go.recommender.state()[0].items():
        assert sliced.recommender.state()[0][name].tobytes() == value.tobytes(), name
    assert sliced.state()[1] == one_go.state()[1]


def test_recommender_steps_equal_the_one_go_functions():
    g, _ = guard_world(rounds=10)
    arrays, meta = g.recommender.state()
    rebuilt = Recommender.from_state(arrays, meta)
    stepped = run(Recommender.from_state_steps(arrays, meta))
    for name, value in rebuilt.state()[0].items():
        assert stepped.state()[0][name].tobytes() == value.tobytes(), name
    (a, _), _ = rebuilt.rollback_point()
    (b, _), _ = run(rebuilt.rollback_point_steps())
    for name in a:
        assert np.asarray(a[name]).tobytes() == np.asarray(b[name]).tobytes(), name


def test_row_deltas_round_trip_exactly_and_store_only_what_changed():
    rng = np.random.default_rng(0)
    base = {"rows": rng.normal(size=(1000, 8)), "log": np.arange(500), "nan": np.array([np.nan, 1.0]),
            "grown": np.zeros(10), "flags": np.zeros(300, dtype=bool)}
    target = {"rows": base["rows"].copy(), "log": base["log"][:400], "nan": base["nan"].copy(),
              "grown": np.concatenate([base["grown"], [1.0, 2.0]]), "flags": base["flags"].copy(),
              "new": np.ones(3)}
    target["rows"][[5, 500]] = 7.0
    target["flags"][:] = True
    spec, stored = state_delta.diff(base, target)
    assert spec == {"rows": ["rows", 1000], "log": ["prefix", 400], "nan": ["same"], "grown": ["rows", 12],
                    "flags": ["full"], "new": ["full"]}
    assert state_delta.stored_bytes(stored) < 2 * 8 * 8 + 16 + 300 + 50
    back = state_delta.patch(base, spec, stored, views={"log"})
    for name, want in target.items():
        assert back[name].tobytes() == want.tobytes() and back[name].dtype == want.dtype, name
    assert np.shares_memory(back["log"], base["log"]) and not np.shares_memory(back["rows"], base["rows"])
    # with a hint, rows outside it are taken as equal
    spec, stored = state_delta.diff(base, target, hints={"rows": np.array([5])})
    assert stored["rows@rows"].tolist() == [5]
    meta_a = {"clock": 1.0, "item_meta": {"1": {"title": "a"}, "2": {"title": "b"}}, "pending": [["u", 1, 2.0]]}
    meta_b = {"clock": 2.0, "item_meta": {"1": {"title": "a"}, "3": {"title": "c"}}, "pending": [["u", 1, 2.0]]}
    delta = state_delta.diff_meta(meta_a, meta_b)
    assert state_delta.patch_meta(meta_a, delta) == meta_b and "pending" not in delta["d"]


def test_accounts_forget_compact_and_load_back_row_for_row():
    acc = Accounts()
    for n in range(5000):
        acc.trusted_click(f"u{n % 2500}")
    for n in range(0, 2500, 2):
        acc.discard(f"u{n}")
    assert len(acc) == 1250 and "u1" in acc and "u0" not in acc and acc.clicks_of("u1") == 2
    assert len(acc.ids) < 2500  # compacted once a quarter of the rows were dead
    acc.discard("u3")
    back = Accounts.load({k: v.copy() for k, v in acc.state().items()})
    assert back.as_dict() == acc.as_dict() and back.ids == acc.ids and back._dead == acc._dead
    assert back.established(2) == acc.established(2) == [u for u in acc if acc.clicks_of(u) >= 2]
    assert set(back) == set(acc)


def test_the_event_loop_runs_between_slices_of_a_validation_and_not_during_an_unsliced_one():
    import asyncio

    from engine.roles.live_model import LiveModel

    config = GUARD.model_copy(update={"min_suspicious": 50})

    def primed():
        g = GuardedRecommender(guard=config)
        for k in range(400):
            g.apply(Event(f"v{k % 40}", f"i{k % 90}", "click", timestamp=1e6 + k, trust=TRUSTED))
        for k in range(49):
            g.apply(Event(f"bot{k}", "target", "click", timestamp=2e6 + k, trust=UNVETTED))
        return LiveModel(g)

    async def ticks_during_validation(live):
        ticks = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        async with live.lock:
            await live.apply([Event("bot-last", "target", "click", timestamp=3e6, trust=UNVETTED, received_at=3e6)])
        done.set()
        await task
        return ticks - before

    sliced, unsliced = primed(), primed()
    unsliced.validation_slice_s = None
    assert asyncio.run(ticks_during_validation(unsliced)) <= 1  # the loop waited for the whole validation
    assert asyncio.run(ticks_during_validation(sliced)) >= 10
    assert len(sliced.validations) == len(unsliced.validations) == 1
    assert sliced.validations[0][2] >= 10 and unsliced.validations[0][2] == 1
    for name, value in unsliced.recommender.state()[0].items():
        assert sliced.recommender.state()[0][name].tobytes() == value.tobytes(), name
