"""The feature store's point-in-time counters: built and live events counted exactly."""

from __future__ import annotations

import numpy as np

from foryou.features import LIVE_RUN, EventCounter


def test_event_counter_counts_built_and_live_events_before_t():
    rng = np.random.default_rng(0)
    keys, times = rng.integers(0, 50, 1_000), rng.integers(0, 10_000, 1_000)
    counter = EventCounter(keys, times)
    # Enough live events for several merged sorted runs plus an unsorted tail, queried as they arrive.
    for i in range(5 * LIVE_RUN + 37):
        k, t = int(rng.integers(0, 60)), int(rng.integers(0, 20_000))
        counter.add(k, t)
        keys, times = np.r_[keys, k], np.r_[times, t]
        if i % 300 == 0 or i == 5 * LIVE_RUN + 36:
            q, qt = rng.integers(0, 60, 200), rng.integers(0, 25_000, 200)
            brute = ((keys[None, :] == q[:, None]) & (times[None, :] < qt[:, None])).sum(1)
            np.testing.assert_array_equal(counter.count_before(q, qt), brute)
            np.testing.assert_array_equal(counter.count_before(q, 10**9), (keys[None, :] == q[:, None]).sum(1))
    assert len(counter._runs) <= 3  # merged runs stay few (5 runs of 512 → 4 + 1 by the binary counter)


def test_live_follow_graph_changes_reach_the_features(tiny_world_dir):
    """An unfollow turns `in_network` off from the next request on; a dwell event is accepted by
    every real-time structure (RealGraph does not model it and must not fail on it)."""
    from foryou.data.dataset import Dataset
    from foryou.timeline.engine import RecommendationEngine

    engine = RecommendationEngine(Dataset.load(tiny_world_dir))
    s = engine.state
    user = int(next(u for u in range(len(s.index.user_ids)) if len(s.index.following_rows(u))))
    author = int(s.index.following_rows(user)[0])
    post = int(np.flatnonzero(s.features.author_row == author)[0])

    def in_network(t: int) -> float:
        col = s.features.compute(np.array([user]), np.array([post]), t, ("in_network",))
        return float(col[0, 0])

    now = engine.now
    assert in_network(now) == 1.0
    engine.relate(int(s.index.user_ids[user]), int(s.index.user_ids[author]), "unfollow", t=now + 10)
    assert in_network(now) == 1.0 and in_network(now + 10) == 0.0  # point in time: from the unfollow on
    engine.relate(int(s.index.user_ids[user]), int(s.index.user_ids[author]), "follow", t=now + 20)
    assert in_network(now + 20) == 1.0
    engine.record_interaction(int(s.index.user_ids[user]), int(s.features.post_id[post]), "dwell", t=now + 30)
    engine.close()
