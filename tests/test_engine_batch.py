"""recommend_many: many users' pages in one pass are the pages `recommend` serves each of them."""

from __future__ import annotations

import numpy as np
import pytest

from foryou.config import ForYouConfig, apply_overrides
from foryou.data.dataset import Dataset
from foryou.timeline.engine import RecommendationEngine, UnknownUser
from foryou.timeline.page import PageBatch
from foryou.vocab import RANKER_HEADS


@pytest.fixture(scope="module")
def engine(tiny_world_dir) -> RecommendationEngine:
    # 7 users per pass: the test crosses pass boundaries and a last, short pass
    config = apply_overrides(ForYouConfig(), {"timeline": {"batch": {"users_per_pass": 7}}})
    e = RecommendationEngine(Dataset.load(tiny_world_dir), config)
    yield e
    e.close()


def _users(engine: RecommendationEngine, n: int, seed: int = 0) -> list[int]:
    ids = np.random.default_rng(seed).choice(engine.user_ids, n, replace=False).tolist()
    cold = [int(engine.user_ids[r]) for r in np.flatnonzero(engine.state.index.follows.out_degree() == 0)][:2]
    return [int(u) for u in ids if u not in cold] + cold  # cold-start users too


def _assert_same_pages(batch: PageBatch, engine: RecommendationEngine, users: list[int], **kwargs) -> None:
    assert batch.user_id.tolist() == users
    for i, u in enumerate(users):
        one = engine.recommend(u, **kwargs)
        k = len(one.items)
        assert batch.lengths[i] == k
        assert batch.post_id[i, :k].tolist() == [it.post_id for it in one.items]
        assert batch.source[i, :k].tolist() == [it.source for it in one.items]
        assert batch.in_network[i, :k].tolist() == [it.in_network for it in one.items]
        assert batch.author_id[i, :k].tolist() == [it.author_id for it in one.items]
        np.testing.assert_allclose(batch.score[i, :k], [it.score for it in one.items], rtol=1e-6)
        for h in RANKER_HEADS:
            np.testing.assert_allclose(batch.predictions[h][i, :k], [it.predictions[h] for it in one.items],
                                       atol=1e-5)
        assert (batch.post_id[i, k:] == -1).all() and np.isnan(batch.score[i, k:]).all()
        assert batch.cold_start[i] == one.cold_start
        page = batch.page(i)
        assert [(it.rank, it.post_id, it.liked_by, it.network_reason) for it in page.items] == \
               [(it.rank, it.post_id, it.liked_by, it.network_reason) for it in one.items]


def test_recommend_many_serves_the_pages_recommend_serves(engine):
    users = _users(engine, 30)
    batch = engine.recommend_many(users)
    assert batch.post_id.shape == (len(users), engine.config.timeline.mixing.page_size)
    assert (batch.lengths > 0).all()
    _assert_same_pages(batch, engine, users)
    assert batch.rank[0, :3].tolist() == [1, 2, 3]
    assert all(t["total"] > 0 for t in batch.timings_ms) and all(batch.sources)


@pytest.mark.parametrize("strategy", ["epsilon_greedy", "random", "ucb"])
def test_exploration_draws_per_request_in_a_batch_too(engine, strategy):
    arm = {"timeline": {"exploration": {"strategy": strategy, "epsilon": 0.3}}}
    users = _users(engine, 12, seed=1)
    _assert_same_pages(engine.recommend_many(users, n=20, overrides=arm), engine, users, n=20, overrides=arm)


def test_recommend_many_excludes_what_each_user_was_served(engine):
    users = _users(engine, 9, seed=2)
    first = engine.recommend_many(users, n=10)
    served = [first.post_id[i, :first.lengths[i]].tolist() for i in range(len(users))]
    second = engine.recommend_many(users, n=10, exclude=served)
    for i in range(len(users)):
        assert not set(second.post_id[i, :second.lengths[i]].tolist()) & set(served[i])
    one = engine.recommend(users[0], n=10, exclude=served[0])
    assert second.post_id[0, :second.lengths[0]].tolist() == [it.post_id for it in one.items]


def test_recommend_many_edges(engine):
    with pytest.raises(UnknownUser):
        engine.recommend_many([int(engine.user_ids[0]), 99_999_999])
    empty = engine.recommend_many([])
    assert len(empty) == 0 and empty.post_id.shape == (0, engine.config.timeline.mixing.page_size)
    assert len(engine.recommend_many([int(engine.user_ids[3])] * 3).to_responses()) == 3  # repeats allowed


def test_page_batch_round_trips_through_responses(engine):
    batch = engine.recommend_many(_users(engine, 5, seed=3), n=12)
    back = PageBatch.from_responses(batch.to_responses(), 12)
    for name in ("user_id", "post_id", "author_id", "source", "in_network", "created_at", "lengths", "cold_start"):
        assert np.array_equal(getattr(back, name), getattr(batch, name)), name
    np.testing.assert_allclose(back.score, batch.score, rtol=1e-6)
    for h in RANKER_HEADS:
        np.testing.assert_allclose(back.predictions[h], batch.predictions[h], atol=1e-5)


def test_every_column_is_declared_with_its_dtype_and_producer(engine):
    from foryou.mixer import dtype_mismatches
    from foryou.timeline import columns as c

    users = _users(engine, 6, seed=4)
    out = engine.funnel(users, until="decorators")
    cols = out.batch.columns
    assert dtype_mismatches(c.CANDIDATE_COLUMNS, cols) == []
    declared = {str(col) for col in c.CANDIDATE_COLUMNS}
    assert {name for name in cols if not name.startswith("factor_")} <= declared
    writers = {}
    p = engine.pipeline
    for comp in (*[x for cp in p.candidate_pipelines for x in (cp.source, *cp.components)], *p.ranking_components()):
        for col in comp.writes:
            writers.setdefault(str(col), set()).add(comp.name)
    for col in c.CANDIDATE_COLUMNS:
        if col.producer not in ("every source", "the mixer"):
            assert col.producer in writers.get(str(col), set()), (str(col), col.producer)
    for feature in c.QUERY_FEATURES:
        assert any(feature in h.provides and h.name == feature.producer for h in p.query_hydrators), feature


def test_a_misordered_for_you_pipeline_fails_when_built(engine):
    from foryou.mixer import PipelineOrderError, ProductPipeline
    from foryou.timeline.filters import OutOfNetworkSocialProofFilter

    p = engine.pipeline
    with pytest.raises(PipelineOrderError, match=r"out_of_network_needs_proof_or_topic reads column 'in_network' "
                                                 r"before it exists \(written only later, by feature_hydrator "
                                                 r"post_features\)"):
        ProductPipeline("for_you", p.gates, p.query_hydrators, p.candidate_pipelines, "post_id",
                        (*p.filters, OutOfNetworkSocialProofFilter(engine.state)), p.scoring_pipelines,
                        selectors=p.selectors, decorators=p.decorators)
    with pytest.raises(PipelineOrderError, match="query feature 'top_follows'"):
        ProductPipeline("for_you", p.gates, tuple(reversed(p.query_hydrators)), p.candidate_pipelines, "post_id")
