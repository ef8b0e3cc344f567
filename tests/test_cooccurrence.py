"""Co-occurrence table: exact below capacity, Space-Saving above it, fixed memory, copies, snapshots."""

import math
from collections import Counter, defaultdict

import numpy as np

from engine.core.cooccurrence import CoOccurrence


def stream(seed, n_events, n_users, n_items, skew=None):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_events)
    if skew:
        items = (rng.zipf(skew, n_events) - 1) % n_items
    else:
        items = rng.integers(0, n_items, n_events)
    return list(zip(users.tolist(), items.tolist()))


def replay(events, cooc, weight_of=lambda i: 1.0):
    """Feed ``cooc`` and count the true pair counts by brute force alongside."""
    history, truth, counts = defaultdict(list), Counter(), Counter()
    for user, item in events:
        w = weight_of(item)
        h = history[user]
        cooc.add(h, item, w)
        counts[item] += w
        for prev in h[-cooc.window:]:
            if prev != item:
                truth[item, prev] += w
                truth[prev, item] += w
        h.append(item)
    return history, truth, counts


def test_counts_and_scores_are_exact_below_capacity():
    cooc = CoOccurrence(window=20, max_neighbours=512)
    # users click the same item twice sometimes (repeats in the window count twice)
    events = stream(1, 4000, 60, 300)
    history, truth, counts = replay(events, cooc, weight_of=lambda i: 0.5 if i % 5 == 0 else 1.0)
    assert cooc.size.max() < cooc.max_neighbours  # nothing was evicted
    assert cooc.entries() == len(truth)
    for (a, b), c in truth.items():
        assert math.isclose(cooc.get(a, b), c, rel_tol=1e-6)
    assert cooc.get(0, 0) == 0.0
    np.testing.assert_allclose(cooc.counts[:300], [counts[i] for i in range(300)])
    for user in list(history)[:20]:
        h = history[user][-10:]
        expected = np.zeros(300)
        for prev in h:
            for (a, b), c in truth.items():
                if a == prev:
                    expected[b] += c / math.sqrt(counts[a] * counts[b])
        np.testing.assert_allclose(cooc.scores(h, 300), expected, rtol=1e-6, atol=1e-12)


def test_full_rows_keep_every_heavy_neighbour_space_saving():
    K = 8
    cooc = CoOccurrence(window=20, max_neighbours=K)
    events = stream(2, 20000, 400, 2000, skew=1.4)
    _, truth, _ = replay(events, cooc)
    assert cooc.size.max() == K  # rows did overflow
    rows = defaultdict(dict)
    for (a, b), c in truth.items():
        rows[a][b] = c
    heavy = evicted = 0
    for a, row in rows.items():
        total = sum(row.values())
        for b, c in row.items():
            stored = cooc.get(a, b)
            if c > total / K:  # Metwally et al.: every neighbour above total / K is kept
                assert stored >= c - 1e-3
                heavy += 1
            if not stored:
                evicted += 1
            else:  # the counter overestimates by at most the smallest counter <= total / K
                assert c - 1e-3 <= stored <= c + total / K + 1e-3
    assert heavy > 100 and evicted > 100


def test_memory_is_a_fixed_table_that_learning_does_not_grow():
    cooc = CoOccurrence(window=20, max_neighbours=8)
    cooc.grow(200)
    table = (cooc.keys, cooc.vals)
    nbytes = cooc.keys.nbytes + cooc.vals.nbytes
    replay(stream(4, 5000, 20, 200), cooc)
    entries = cooc.entries()
    replay(stream(5, 5000, 20, 200), cooc)  # a burst of new pairs on full rows
    assert cooc.keys is table[0] and cooc.vals is table[1]  # never reallocated
    assert cooc.keys.nbytes + cooc.vals.nbytes == nbytes
    assert cooc.size[:200].max() == 8 and cooc.entries() >= entries


def test_copy_into_is_exact_and_copies_only_changed_rows():
    a = CoOccurrence(window=20, max_neighbours=16)
    events = stream(6, 9000, 100, 400, skew=1.3)
    history, _, _ = replay(events[:3000], a)
    copy = a.copy_into()
    for k, v in a.state().items():
        np.testing.assert_array_equal(copy.state()[k], v)
    untouched = next(r for r in range(400) if a.size[r] == 0)
    copy.keys[untouched, 0], copy.vals[untouched, 0] = 999, 7.0  # a marker only a full copy would erase
    for user, item in events[3000:6000]:
        if item != untouched and untouched not in history[user][-20:]:
            a.add(history[user], item)
            history[user].append(item)
    assert a.copy_into(copy) is copy  # reused, synced incrementally
    for k, v in a.state().items():
        np.testing.assert_array_equal(copy.state()[k], v)
    assert copy.keys[untouched, 0] == 999  # the unchanged row was not copied
    # a buffer last synced from another table gets a full copy, in its own buffers
    b = CoOccurrence(window=20, max_neighbours=16)
    replay(events[6000:], b)
    other = b.copy_into(copy)
    assert other is copy and copy.keys[untouched, 0] != 999  # overwritten whole: the marker is gone
    for k, v in b.state().items():
        np.testing.assert_array_equal(other.state()[k], v)


def test_state_round_trip_continues_identically():
    a = CoOccurrence(window=20, max_neighbours=16)
    events = stream(5, 6000, 100, 400, skew=1.3)
    history, _, _ = replay(events[:3000], a)
    b = CoOccurrence(window=20, max_neighbours=16)
    b.load({k: v.copy() for k, v in a.state().items()})
    for user, item in events[3000:]:
        a.add(history[user], item)
        b.add(history[user], item)
        history[user].append(item)
    for k, v in a.state().items():
        np.testing.assert_array_equal(b.state()[k], v)


def test_loads_snapshots_written_with_shared_pools():
    """Earlier snapshots: int64 / float64 pools with per-row blocks and holes."""
    cooc = CoOccurrence(window=20, max_neighbours=4)
    arrays = {  # row 0 -> {1: 3, 2: 1, 3: 5}, row 1 -> {0: 3}, a hole at 8..12
        "cooc_keys": np.array([1, 2, 3, 0, 0, 0, 0, 0, 9, 9, 9, 9], dtype=np.int64),
        "cooc_vals": np.array([3.0, 1.0, 5.0, 0.0, 3.0, 0.0, 0.0, 0.0, 9, 9, 9, 9]),
        "cooc_offset": np.array([0, 4, 0, 0], dtype=np.int64),
        "cooc_capacity": np.array([4, 4, 0, 0], dtype=np.int64),
        "cooc_size": np.array([3, 1, 0, 0], dtype=np.int64),
        "cooc_counts": np.array([4.0, 3.0, 1.0, 5.0]),
    }
    cooc.load(arrays)
    assert [cooc.get(0, b) for b in range(4)] == [0.0, 3.0, 1.0, 5.0]
    assert cooc.get(1, 0) == 3.0 and cooc.entries() == 4
    cooc.add([0], 1)  # learning continues on the loaded layout
    assert cooc.get(0, 1) == 4.0 and cooc.get(1, 0) == 4.0


def test_deferred_snapshot_arrays_gather_the_same_entries():
    from engine.core.cooccurrence import RowPrefixes
    from engine.core.snapshot_codec import decode, encode, pack, sign

    cooc = CoOccurrence(window=20, max_neighbours=16)
    replay(stream(7, 3000, 50, 300, skew=1.3), cooc)
    eager, deferred = cooc.state(), cooc.state(deferred=True)
    assert isinstance(deferred["cooc_keys"], RowPrefixes)
    for name in ("cooc_keys", "cooc_vals"):
        np.testing.assert_array_equal(deferred[name].copy(), eager[name])
    key = b"k" * 32
    assert bytes(sign(pack(deferred, {}), key)) == bytes(encode(eager, {}, key))
    back = CoOccurrence(window=20, max_neighbours=16)
    back.load(decode(bytes(encode(eager, {}, key)), key)[0])
    for name, value in cooc.state().items():
        np.testing.assert_array_equal(back.state()[name], value)
