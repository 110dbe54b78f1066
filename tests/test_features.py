"""The feature store's point-in-time counters: built and live events counted exactly."""

from __future__ import annotations

import numpy as np
import pytest

from foryou.features import LIVE_RUN, EventCounter


@pytest.mark.parametrize("size", [None, 60])  # searched only; and with every key's total kept densely
def test_event_counter_counts_built_and_live_events_before_t(size):
    rng = np.random.default_rng(0)
    keys, times = rng.integers(0, 50, 1_000), rng.integers(0, 10_000, 1_000)
    counter = EventCounter(keys, times, size)
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
            at_last = int(times.max())  # not after every event: the event at t itself is not counted
            np.testing.assert_array_equal(counter.count_before(q, at_last), ((keys[None, :] == q[:, None])
                                          & (times[None, :] < at_last)).sum(1))
    assert len(counter._runs) <= 3  # merged runs stay few (5 runs of 512 → 4 + 1 by the binary counter)
    assert (counter.dense is not None) == (size is not None)
    reloaded = EventCounter.from_arrays(counter.to_arrays())  # a snapshot keeps the dense totals' key space
    q = np.arange(60)
    np.testing.assert_array_equal(reloaded.count_before(q, 10**9), counter.count_before(q, 10**9))
    assert (reloaded.dense is not None) == (size is not None)


def test_event_counter_answers_a_served_clock_and_a_sliding_cut_exactly():
    """A server's queries: at its clock (which only moves on) and at clock − window, while live events
    arrive — some at the clock's very second (not counted before it), some late (older than the cut) —
    and now and then an instant from the past (answered by the searches). Brute force agrees throughout."""
    rng = np.random.default_rng(1)
    keys, times = rng.integers(0, 40, 2_000), rng.integers(0, 10_000, 2_000)
    counter = EventCounter(keys, times, size=40, window=3_000)
    clock, window = 10_000, 3_000
    for step in range(400):
        clock += int(rng.integers(0, 3))  # often the same second as the last query
        for _ in range(int(rng.integers(0, 4))):
            k, t = int(rng.integers(0, 40)), clock - int(rng.choice([0, 0, 1, 5_000]))
            counter.add(k, t)
            keys, times = np.r_[keys, k], np.r_[times, t]
        q = rng.integers(0, 40, 30)

        def brute(at: int, q: np.ndarray = q, keys: np.ndarray = keys, times: np.ndarray = times) -> np.ndarray:
            return ((keys[None, :] == q[:, None]) & (times[None, :] < at)).sum(1)

        np.testing.assert_array_equal(counter.count_before(q, clock), brute(clock))
        np.testing.assert_array_equal(counter.count_in_window(q, clock), brute(clock) - brute(clock - window))
        if step % 17 == 0:  # an instant from the past: the searches answer, the cut stays where it is
            past = clock - int(rng.integers(1, 20_000))
            np.testing.assert_array_equal(counter.count_before(q, past), brute(past))
            assert counter.count_in_window(q, past) is None
    assert counter._cut is not None and counter._cut.cut == clock - window  # the cut kept up, not reset


def test_event_counter_leaves_the_dense_totals_for_a_key_outside_its_space():
    counter = EventCounter(np.array([0, 1, 1]), np.array([10, 20, 30]), size=2)
    assert counter.count_before(np.array([1]), 100).tolist() == [2.0]
    counter.add(5, 40)  # a key the space was not built for: still counted, by the searches
    assert counter.dense is None
    assert counter.count_before(np.array([1, 5, 7]), 100).tolist() == [2.0, 1.0, 0.0]


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

    def followers(t: int) -> float:
        return float(s.features.compute(np.array([user]), np.array([post]), t, ("author_followers_log",))[0, 0])

    # Following again is a no-op: one unfollow ends it, and the author's followers are counted once.
    before = followers(now + 21)
    engine.relate(int(s.index.user_ids[user]), int(s.index.user_ids[author]), "follow", t=now + 22)
    assert followers(now + 23) == before
    engine.relate(int(s.index.user_ids[user]), int(s.index.user_ids[author]), "unfollow", t=now + 24)
    assert in_network(now + 25) == 0.0 and followers(now + 25) < before
    engine.relate(int(s.index.user_ids[user]), int(s.index.user_ids[author]), "unfollow", t=now + 26)
    assert followers(now + 27) == followers(now + 25)  # unfollowing a non-followee changes nothing
    engine.relate(int(s.index.user_ids[user]), int(s.index.user_ids[author]), "follow", t=now + 28)
    assert in_network(now + 28) == 1.0 and followers(now + 29) == before
    engine.record_interaction(int(s.index.user_ids[user]), int(s.features.post_id[post]), "dwell", t=now + 30)
    engine.close()


def test_a_repost_shows_its_source_post(tiny_world_dir):
    """A repost's post and author features are its source's (X hydrates a retweet's source tweet);
    its age, is_repost flag and in_network stay its own; a like on the repost counts for the source,
    built (history) and live alike."""
    from foryou.data.dataset import Dataset
    from foryou.features import FEATURE_NAMES
    from foryou.timeline.engine import RecommendationEngine

    engine = RecommendationEngine(Dataset.load(tiny_world_dir))
    f = engine.state.features
    reposts = np.flatnonzero(f.static["is_repost"] > 0)
    assert len(reposts), "the tiny world has reposts"
    r = int(reposts[0])
    src = int(f.content_row[r])
    assert src != r and f.author_row[src] != f.author_row[r]  # reposted someone else's post
    viewer = int(next(u for u in range(f.n_users) if u not in (f.author_row[r], f.author_row[src])))
    t = engine.now
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}
    x = f.compute(np.array([viewer, viewer]), np.array([r, src]), t)
    own = {"age_log_h", "is_repost", "in_network"}
    same = [i for name, i in col.items() if name not in own]
    np.testing.assert_array_equal(x[0, same], x[1, same])
    assert x[0, col["is_repost"]] == 1.0 and x[1, col["is_repost"]] == 0.0
    assert x[0, col["age_log_h"]] < x[1, col["age_log_h"]]  # the repost is younger than its source
    np.testing.assert_array_equal(f.content_author([r]), f.author_row[[src]])

    before = f.compute(np.array([viewer]), np.array([src]), t + 10)[0, col["post_positive_log"]]
    engine.record_interaction(int(f.user_ids[viewer]), int(f.post_id[r]), "like", t=t + 1)
    after = f.compute(np.array([viewer]), np.array([src]), t + 10)[0, col["post_positive_log"]]
    assert after > before

    # A live repost shows its source too.
    new_id = int(f.post_id.max()) + 1
    row = engine.add_post(new_id, int(f.user_ids[viewer]), t=t + 2, kind="repost", parent_id=int(f.post_id[src]))
    assert f.content_row[row] == src and f.static["has_media"][row] == f.static["has_media"][src]
    engine.close()


def test_one_request_at_one_instant_gets_the_row_by_row_features(tiny_world_dir):
    """A served request (one viewer, one instant) counts each distinct key once; the features must equal
    the definition row by row (rows at several instants take the general path)."""
    from foryou.data.dataset import Dataset
    from foryou.data.split import history
    from foryou.features import FeatureStore

    d = Dataset.load(tiny_world_dir)
    store = FeatureStore(history(d, d.manifest.time_range[1] + 1))
    rng = np.random.default_rng(1)
    posts = rng.choice(len(store.post_id), 400, replace=False)
    user, now = 7, int(store.as_of) - 3600
    served = store.compute(np.full(len(posts), user), posts, now)
    # the same rows plus one at another instant: no row shares the shortcut
    general = store.compute(np.r_[np.full(len(posts), user), user], np.r_[posts, posts[0]],
                            np.r_[np.full(len(posts), now), now - 1])
    np.testing.assert_array_equal(served, general[:-1])
    assert np.unique(served, axis=0).shape[0] > 100  # real features: the candidates differ
