"""Exploration strategies as experiment arms: real posteriors, ε-greedy explores ε of the page,
arms served through engine overrides."""

from __future__ import annotations

import numpy as np
import pytest

from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.exploration import ExplorationScorer


@pytest.fixture(scope="module")
def engine(tiny_world_dir):
    e = RecommendationEngine.open(tiny_world_dir, cache=False)
    yield e
    e.close()


def _user(engine) -> int:
    idx = engine.state.index
    return int(idx.user_ids[int(np.argmax(idx.follows.out_degree()))])


def test_overrides_serve_an_arm_with_its_own_cached_pipeline(engine):
    u = _user(engine)
    base = [it.post_id for it in engine.recommend(u).items]
    rand = [it.post_id for it in engine.recommend(u, overrides={"timeline": {"exploration": {"strategy": "random"}}})
            .items]
    assert base and rand and base != rand
    p1 = engine.pipeline_for({"timeline": {"exploration": {"strategy": "ucb"}}})
    assert engine.pipeline_for({"timeline": {"exploration": {"strategy": "ucb"}}}) is p1
    assert p1.candidate_pipelines[0].source.state.index is engine.state.index  # shared state, own config
    with pytest.raises(ValueError):
        engine.pipeline_for({"timeline": {"exploration": {"strategy": "nope"}}})


def test_posteriors_follow_live_impressions_and_engagements(engine):
    scorer = ExplorationScorer(engine.state)
    idx = engine.state.index
    u = _user(engine)
    post = int(idx.post_id[-1])
    row = np.array([len(idx.post_id) - 1])
    a0, b0 = scorer.post_posterior(row)
    for _ in range(10):
        engine.record_interaction(u, post, "impression")
    engine.record_interaction(u, post, "like")
    a1, b1 = scorer.post_posterior(row)
    assert a1[0] == pytest.approx(a0[0] + 1) and b1[0] == pytest.approx(b0[0] + 9)


def test_epsilon_greedy_explores_epsilon_of_the_page():
    rng = np.random.default_rng(0)
    score = rng.random(700) + 0.01
    explored = []
    for _ in range(400):
        f = ExplorationScorer._epsilon_greedy(rng, score, 35, 0.1)
        new = score * f
        page = np.argsort(-new)[:35]
        explored.append(np.sum(f[page] != 1.0))
    assert np.mean(explored) == pytest.approx(3.5, rel=0.15)  # ε · page size, not the whole page


def test_thompson_and_ucb_explore_new_posts_more_than_proven_ones(engine):
    from foryou.timeline.query import TimelineQuery

    idx = engine.state.index
    rows = np.argsort(-engine.state.overlay.impressions_count)[:50]  # proven posts
    new = np.argsort(engine.state.overlay.impressions_count, kind="stable")[:50]  # barely shown
    from foryou.mixer import CandidateBatch

    r = np.r_[rows, new]  # one request's candidates: the same N for UCB
    batch = CandidateBatch({"post_row": r, "score": np.ones(len(r), np.float32), "post_id": idx.post_id[r]})
    for strategy in ("thompson", "ucb"):
        arm = engine.pipeline_for({"timeline": {"exploration": {"strategy": strategy, "weight": 1.0}}})
        scorer = next(s for sp in arm.scoring_pipelines for s in sp.scorers if isinstance(s, ExplorationScorer))
        fs = np.stack([scorer.factor(TimelineQuery(user_row=0, now=int(engine.now) + k, n=35), batch)
                       for k in range(20)])
        moved = np.abs(fs - 1).mean(0)
        assert moved[50:].mean() > moved[:50].mean(), strategy


def test_epsilon_greedy_explores_only_candidates_the_post_filters_keep(engine):
    rng = np.random.default_rng(1)
    score = rng.random(300) + 0.01
    eligible = rng.random(300) < 0.3
    for _ in range(200):
        f = ExplorationScorer._epsilon_greedy(rng, score, 35, 0.2, eligible)
        assert np.all(f[~eligible] == 1.0)
    # Served through the engine: the explored posts reach the page (≈ ε · page, not half of it).
    eps = {"timeline": {"exploration": {"strategy": "epsilon_greedy", "epsilon": 0.2}}}
    idx = engine.state.index
    on_page = [sum(it.post_id not in {g.post_id for g in engine.recommend(int(u), overrides={
        "timeline": {"exploration": {"strategy": "none"}}}).items} for it in engine.recommend(int(u), overrides=eps)
        .items) for u in idx.user_ids[:60]]
    assert np.mean(on_page) > 0.5 * 0.2 * 35
