"""Co-occurrence table: exact below capacity, Space-Saving above it, fixed memory, snapshots."""

import math
from collections import Counter, defaultdict

import numpy as np

from engine.cooccurrence import CoOccurrence


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


def counter(cooc, a, b):
    """(Space-Saving counter, error) of neighbour b in row a, or None when b is not kept."""
    slot = np.flatnonzero(cooc.keys[a] == b + 1)
    return (float(cooc.vals[a, slot[0]]), float(cooc.eps[a, slot[0]])) if len(slot) else None


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
            kept = counter(cooc, a, b)
            if c > total / K:  # Metwally et al.: every neighbour above total / K is kept
                assert kept is not None
                heavy += 1
            if kept is None:
                evicted += 1
                continue
            val, err = kept
            assert val - err - 1e-3 <= c <= val + 1e-3  # guaranteed count <= true <= counter
            assert cooc.get(a, b) == val - err  # scores use the guaranteed count
    assert heavy > 100 and evicted > 100


def test_memory_is_fixed_per_item_whatever_the_stream():
    cooc = CoOccurrence(window=20, max_neighbours=16)
    replay(stream(3, 2000, 50, 500), cooc)
    before = (cooc.keys.nbytes, cooc.vals.nbytes)
    replay(stream(4, 20000, 50, 500), cooc)
    assert (cooc.keys.nbytes, cooc.vals.nbytes) == before
    assert cooc.size.max() == 16


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


def test_loads_the_old_row_pool_layout():
    """Snapshots written before the fixed table (row pools at offsets, indices unshifted)."""
    cooc = CoOccurrence(window=20, max_neighbours=2)
    # row 0 -> {1: 3, 2: 1, 3: 5} (capacity 4), row 1 -> {0: 3} (capacity 4), rows 2, 3 empty
    arrays = {
        "cooc_keys": np.array([1, 2, 3, 0, 0, 0, 0, 0], dtype=np.int64),
        "cooc_vals": np.array([3.0, 1.0, 5.0, 0.0, 3.0, 0.0, 0.0, 0.0]),
        "cooc_offset": np.array([0, 4, 0, 0], dtype=np.int64),
        "cooc_capacity": np.array([4, 4, 0, 0], dtype=np.int64),
        "cooc_size": np.array([3, 1, 0, 0], dtype=np.int64),
        "cooc_counts": np.array([4.0, 3.0, 1.0, 5.0]),
    }
    cooc.load(arrays)
    assert cooc.get(0, 3) == 5.0 and cooc.get(0, 1) == 3.0 and cooc.get(0, 2) == 0.0  # top 2 kept
    assert cooc.get(1, 0) == 3.0 and cooc.get(1, 2) == 0.0
    assert cooc.entries() == 3
    np.testing.assert_array_equal(cooc.counts[:4], [4.0, 3.0, 1.0, 5.0])
