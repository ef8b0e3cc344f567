"""The learner shares the event loop with the API: it must hand the loop back while it works
through a backlog, and still apply every event in order."""

import asyncio
import time

from engine import EngineConfig, Event
from engine.core.guard import GuardedRecommender
from engine.roles.live_model import LiveModel
from engine.roles.live_model import behind as _behind


def test_a_backlog_is_applied_in_time_slices_that_yield_to_the_event_loop():
    n_events = 4000
    events = [Event(f"u{n % 50}", f"i{n % 300}", "click", timestamp=1e9 + n, received_at=1e9 + n,
                    event_id=f"{n + 1}-0") for n in range(n_events)]

    async def scenario():
        learner = LiveModel(GuardedRecommender(EngineConfig()))  # what the learner applies batches into
        seen_at_ticks = []
        done = asyncio.Event()

        async def other_requests():  # stands in for /recommend handlers on the same loop
            while not done.is_set():
                seen_at_ticks.append(learner.recommender.events_learned)
                await asyncio.sleep(0)

        ticker = asyncio.create_task(other_requests())
        await asyncio.sleep(0)
        await learner.apply(events, backlog=True)
        done.set()
        await ticker
        return learner, seen_at_ticks

    learner, seen = asyncio.run(scenario())
    assert learner.recommender.events_learned == n_events
    assert learner.recommender.last_event_id == f"{n_events}-0"
    during = [s for s in seen if 0 < s < n_events]
    assert len(during) >= 2  # other coroutines ran while the batch was being applied
    gaps = [b - a for a, b in zip(seen, seen[1:])]
    assert max(gaps) <= n_events // 2  # no slice swallowed most of the batch


def test_the_learner_counts_as_behind_on_a_full_batch_or_an_event_waiting_over_50_ms():
    now = time.time()
    fresh = Event("u", "i", "click", received_at=now + 3600)  # accepted "later": never waited
    waited = Event("u", "i", "click", received_at=now - 1.0)  # accepted a second ago
    assert not _behind([], 1024)
    assert not _behind([fresh, fresh], 1024)
    assert _behind([fresh, fresh], 2)  # a full batch: more are waiting in the stream
    assert _behind([waited, fresh], 1024)  # the oldest event has waited too long
