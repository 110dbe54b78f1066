"""Filters, scorers and selectors of the For You pipeline on small hand-built batches."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from foryou.config import EngagementWeights, ForYouConfig, TimelineConfig
from foryou.mixer import CandidateBatch
from foryou.timeline import filters as f
from foryou.timeline import scorers as s
from foryou.timeline.exploration import ExplorationScorer
from foryou.timeline.query import TimelineQuery
from foryou.timeline.selectors import DiversitySelector, MixSelector, NetworkCapSelector
from foryou.vocab import RANKER_HEADS

NOW = 1_000_000


def state(n_posts: int = 10, **timeline) -> SimpleNamespace:
    idx = SimpleNamespace(
        created_at=np.full(n_posts, NOW - 3600), kind=np.zeros(n_posts, np.int8), parent_row=np.full(n_posts, -1),
        topic=np.zeros(n_posts, np.int16), is_nsfw=np.zeros(n_posts, bool),
        base_rate={"like": 0.05, "repost": 0.01, "reply": 0.005},
    )
    overlay = SimpleNamespace(impressions_count=np.zeros(n_posts, np.int32),
                              counts={k: np.zeros(n_posts, np.int32) for k in ("like", "repost", "reply")})
    cfg = ForYouConfig(timeline=TimelineConfig(**timeline))
    return SimpleNamespace(index=idx, overlay=overlay, config=cfg)


def query(**features) -> TimelineQuery:
    return TimelineQuery(user_id=1, user_row=0, now=NOW, n=35, features=features)


def batch(**cols) -> CandidateBatch:
    return CandidateBatch({k: np.asarray(v) for k, v in cols.items()})


def test_own_posts_and_blocked_authors_are_dropped():
    st = state()
    b = batch(post_row=[1, 2, 3, 4], author_row=[0, 5, 6, 5])
    assert f.OwnPostsFilter(st).keep(query(), b).tolist() == [False, True, True, True]
    q = query(blocked_authors=np.array([5]))
    assert f.AuthorBlockFilter(st).keep(q, b).tolist() == [True, False, True, False]


def test_previously_seen_and_previously_served_are_dropped():
    st = state()
    b = batch(post_row=[1, 2, 3, 4], author_row=[9, 9, 9, 9])
    q = query(seen=np.array([2]))
    q.served = np.array([4])
    assert f.PreviouslySeenFilter(st).keep(q, b).tolist() == [True, False, True, False]


def test_repost_dedup_keeps_the_original_or_one_repost():
    st = state()
    st.index.kind[[5, 6, 7]] = 2  # reposts
    st.index.parent_row[[5, 6, 7]] = [1, 1, 3]
    b = batch(post_row=[5, 1, 6, 7, 7 * 0 + 8], author_row=[2, 3, 4, 5, 6])
    keep = f.RepostDedupFilter(st).keep(query(), b).tolist()
    assert keep == [False, True, False, True, True]  # original 1 beats its reposts 5, 6; repost 7 alone stays


def test_feedback_fatigue_drops_within_14_days_then_climbs_back():
    st = state()
    b = batch(post_row=[1, 2, 3], author_row=[4, 5, 6], score=np.ones(3, np.float32))
    q = query(fatigue_authors=np.array([4, 5]), fatigue_times=np.array([NOW - 86_400, NOW - 84 * 86_400]))
    assert f.FeedbackFatigueFilter(st).keep(q, b).tolist() == [False, True, True]
    factor = s.FeedbackFatigueScorer(st).factor(q, b)
    # author 5: 84 days ago = 70 days past the 14-day drop → halfway through 140 days: 0.2 + 0.8·0.5
    assert factor[1] == pytest.approx(0.6) and factor[2] == 1.0


def test_too_old_posts_are_dropped():
    st = state()
    st.index.created_at[2] = NOW - 49 * 3600
    b = batch(post_row=[1, 2], author_row=[3, 3])
    assert f.TooOldFilter(st).keep(query(), b).tolist() == [True, False]


def test_out_of_network_needs_social_proof_or_topic_and_never_nsfw():
    st = state()
    st.index.is_nsfw[3] = True
    b = batch(post_row=[1, 2, 3, 4], in_network=[True, False, False, False], social_proof=[0, 0, 2, 1],
              topic_affinity=np.array([0.0, 0.05, 0.0, 0.9], np.float32))
    q = query(topic_profile=np.full(4, 0.25, np.float32))
    assert f.OutOfNetworkSocialProofFilter(st).keep(q, b).tolist() == [True, False, True, True]
    assert f.OutOfNetworkNsfwFilter(st).keep(q, b).tolist() == [True, True, False, True]


def test_weighted_score_uses_x_weights_and_the_negative_offset_rule():
    w = EngagementWeights()
    zero = {h: np.zeros(2, np.float32) for h in RANKER_HEADS}
    probs = {**zero, "reply": np.array([0.1, 0.0], np.float32), "report": np.array([0.0, 0.01], np.float32)}
    utility, score = s.weighted_score(probs, w)
    assert utility[0] == pytest.approx(1.35) and score[0] == pytest.approx(1.351)
    neg = 74 + 369
    total = 0.5 + 1 + 13.5 + 12 + 11 + 10 + 4 + 74 + 369
    assert utility[1] == pytest.approx(-3.69)
    assert score[1] == pytest.approx((-3.69 + neg) / total * 0.001)
    assert 0 < score[1] < score[0]


def test_author_diversity_decays_each_authors_later_posts():
    st = state()
    b = batch(author_row=[1, 1, 1, 2], score=np.array([3.0, 5.0, 1.0, 2.0], np.float32))
    factor = s.AuthorDiversityScorer(st).factor(query(), b)
    # ranks by score within author 1: post1 → 0, post0 → 1, post2 → 2
    assert factor.tolist() == pytest.approx([0.625, 1.0, 0.4375, 1.0])


def test_out_of_network_and_reply_factors():
    st = state()
    b = batch(in_network=[True, False], is_reply=[False, True])
    assert s.OutOfNetworkScorer(st).factor(query(), b).tolist() == [1.0, 0.75]
    assert s.ReplyScorer(st).factor(query(), b).tolist() == [1.0, 0.75]


@pytest.mark.parametrize("strategy", ["epsilon_greedy", "ucb", "thompson"])
def test_exploration_is_deterministic_per_request_and_favours_the_unexplored(strategy):
    st = state(n_posts=4, exploration={"strategy": strategy, "epsilon": 0.5, "weight": 1.0})
    st.overlay.impressions_count[:] = [0, 10_000, 0, 10_000]
    st.overlay.counts["like"][:] = [0, 500, 0, 500]
    b = batch(post_row=[0, 1, 2, 3], score=np.ones(4, np.float32))
    a1 = ExplorationScorer(st).factor(query(), b)
    a2 = ExplorationScorer(st).factor(query(), b)
    assert np.array_equal(a1, a2)
    if strategy == "ucb":
        assert a1[0] > a1[1]  # the unexplored post gets the bonus
    if strategy == "thompson":  # spread is wide for unexplored posts, tiny for well-known ones
        draws = [ExplorationScorer(st).factor(TimelineQuery(user_row=0, now=NOW + i, features={}), b)
                 for i in range(200)]
        spread = np.std(draws, axis=0)
        assert spread[0] > 3 * spread[1]


def test_network_cap_and_diversity_author_cap():
    st = state(n_posts=10, ranking={"max_in_network": 2, "max_out_of_network": 1}, diversity={"max_per_author": 1})
    b = batch(post_row=np.arange(5), in_network=[True, True, True, False, False],
              score=np.array([5, 4, 3, 2, 1], np.float32), author_row=[1, 1, 2, 3, 4],
              has_media=np.ones(5, bool))
    assert NetworkCapSelector(st).select(query(), b).tolist() == [0, 1, 3]
    st.index.topic[:] = np.arange(10)
    assert DiversitySelector(st).select(query(), b).tolist() == [0, 2, 3, 4]


def test_mix_never_puts_more_than_two_out_of_network_in_a_row():
    st = state(mixing={"out_of_network_share": 1.0})
    in_net = np.array([False] * 6 + [True] * 2)
    score = np.array([10, 9, 8, 7, 6, 5, 1, 0.5], np.float32)
    b = batch(in_network=in_net, score=score)
    q = query()
    page = MixSelector(st).select(q, b)
    flags = in_net[page].tolist()
    assert flags == [False, False, True, False, False, True, False, False]
    runs = max(len(r) for r in "".join("o" if not x else "i" for x in flags).split("i"))
    assert runs <= 2
