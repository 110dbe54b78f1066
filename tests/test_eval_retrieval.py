"""Retrieval as evaluation sees it: the trending count window, the seen set on data without impressions,
and per-stage recall@K against test-window engagements."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from foryou.config import ForYouConfig, apply_overrides
from foryou.data.dataset import Dataset
from foryou.data.schema import empty_table
from foryou.data.split import history
from foryou.eval import metrics as M
from foryou.eval.evaluator import _retrieval
from foryou.eval.protocols import temporal
from foryou.eval.system import retrieve, serve_pages
from foryou.graph.index import ServingIndex
from foryou.timeline.engine import RecommendationEngine
from foryou.vocab import POSITIVE

WIDE = {"timeline": {"sources": {"max_age_hours": 1e5, "in_network_hours": 1e5, "in_network_hours_light": 1e5,
                                 "trending_hours": 1e5}}}


@pytest.fixture(scope="module")
def ds(tiny_world_dir) -> Dataset:
    return Dataset.load(tiny_world_dir)


def _config(**sources) -> ForYouConfig:
    tree = {"timeline": {"sources": {**WIDE["timeline"]["sources"], **sources}}}
    return apply_overrides(ForYouConfig(), tree)


def test_positives_since_counts_positive_engagements_in_the_window(ds):
    t = ds.manifest.split.valid_end
    idx = ServingIndex(history(ds, t))
    e = ds.engagements
    for hours in (24, 72, 1e5):
        since = t - int(hours * 3600)
        ok = pc.and_(pc.and_(pc.greater_equal(e["created_at"], since), pc.less(e["created_at"], t)),
                     pc.is_in(e["kind"], pa.array(list(POSITIVE))))
        want = np.bincount(idx.post_rows(e.filter(ok)["post_id"].to_numpy()), minlength=len(idx.post_id))
        assert np.array_equal(idx.positives_since(since), want)
    assert np.array_equal(idx.positives_since(t - 86_400), idx.counts_24h)  # the default window is the 24 h one


@pytest.mark.parametrize("hours", [24.0, 24.0 * 30])
def test_trending_ranks_by_the_configured_count_window(ds, hours):
    t = ds.manifest.split.valid_end
    engine = RecommendationEngine(ds, _config(trending_count_hours=hours), as_of=t)
    idx = engine.state.index
    counts = idx.positives_since(t - int(hours * 3600))
    user = int(idx.user_ids[0])
    trending = retrieve(engine, _one_user_split(ds, user), 35).sources["trending"][0]
    trending = trending[trending >= 0]
    got = counts[idx.post_rows(trending)]
    assert len(trending) == engine.config.timeline.sources.trending
    # The source returns the top of the window's counts: nothing left out counts more than what it kept.
    rest = np.setdiff1d(np.arange(len(idx.post_id)), idx.post_rows(trending))
    assert got.min() >= counts[rest].max()  # (the light ranker then reorders them)


def test_windows_change_trending(ds):
    t = ds.manifest.split.valid_end
    lists = []
    for hours in (24.0, 24.0 * 30):
        engine = RecommendationEngine(ds, _config(trending_count_hours=hours), as_of=t)
        user = int(engine.state.index.user_ids[0])
        lists.append(retrieve(engine, _one_user_split(ds, user), 35).sources["trending"][0])
    assert not np.array_equal(lists[0], lists[1])  # the window is really used (the test can fail)


def _one_user_split(ds: Dataset, user: int):
    split = temporal(ds)
    return type(split)(**{**split.__dict__, "users": np.array([user])})


def _without_impressions(ds: Dataset) -> Dataset:
    return Dataset({**ds.tables, "impressions": empty_table("impressions")}, ds.manifest, None)


def test_engaged_posts_count_as_seen_without_impressions(ds):
    """On data that logs no impressions (MovieLens, Last.fm, minirecsys) a post the user engaged with
    before the split is retrieved (trending is the same for everyone) but never served back to them."""
    bare = _without_impressions(ds)
    split = temporal(bare)
    users = split.users[:40]
    sub = type(split)(**{**split.__dict__, "users": users})
    engine = RecommendationEngine(bare, _config(), as_of=split.as_of)
    e = split.train.engagements
    eu, ep = e["user_id"].to_numpy(), e["post_id"].to_numpy()
    got = retrieve(engine, sub, 35)
    pages = serve_pages(engine, sub, 35)
    retrieved_engaged = 0
    for i, u in enumerate(users.tolist()):
        engaged = ep[eu == u]
        retrieved_engaged += int(np.isin(got.merged[i], engaged).sum())
        assert not np.isin(got.filtered[i], engaged).any()
        assert not np.isin(pages.post_id[i], engaged).any()
    assert retrieved_engaged > 0  # there was something to filter


def test_retrieval_recall_per_stage(ds):
    split = temporal(ds)
    sub = type(split)(**{**split.__dict__, "users": split.users[:60]})
    keep = np.isin(split.truth_user, np.arange(60))
    sub.truth_user, sub.truth_post = split.truth_user[keep], split.truth_post[keep]
    engine = RecommendationEngine(ds, as_of=split.as_of)
    got = retrieve(engine, sub, 35)
    pages = serve_pages(engine, sub, 35)
    r = _retrieval(got, pages, sub, M.bootstrap_indices(60, 50))["stages"]
    assert {"in_network", "trending", "merged", "after_filters", "page"} <= set(r)
    # Brute force for one source and the merged set.
    for name, ids in (("in_network", got.sources["in_network"]), ("merged", got.merged)):
        per_user = [len(set(ids[i][ids[i] >= 0].tolist()) & set(sub.truth_of(i).tolist())) / len(sub.truth_of(i))
                    for i in range(60)]
        assert r[name]["recall"]["mean"] == pytest.approx(np.mean(per_user), abs=1e-6)
        assert r[name]["candidates_per_user"] == pytest.approx((ids >= 0).sum(1).mean(), abs=0.05)
    merged = r["merged"]["recall"]["mean"]
    assert all(r[s]["recall"]["mean"] <= merged + 1e-9 for s in got.sources)
    assert r["after_filters"]["recall"]["mean"] <= merged + 1e-9
    assert r["page"]["recall"]["mean"] <= r["after_filters"]["recall"]["mean"] + 1e-9
    assert r["merged"]["hits"] > 0 and r["page"]["candidates_per_user"] <= 35
