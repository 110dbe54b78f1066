"""Serving index, real-time overlay and snapshots."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from foryou.data import snapshot
from foryou.data.dataset import Dataset
from foryou.data.split import history
from foryou.graph.index import ServingIndex
from foryou.graph.overlay import RealtimeOverlay
from foryou.timeline.engine import RecommendationEngine


@pytest.fixture(scope="module")
def ds(tiny_world_dir) -> Dataset:
    return Dataset.load(tiny_world_dir)


@pytest.fixture(scope="module")
def index(ds) -> ServingIndex:
    return ServingIndex(history(ds, ds.manifest.split.valid_end))


def test_in_network_store_returns_exactly_the_authors_recent_posts(ds, index):
    posts = ds.posts
    author_ids = posts["author_id"].to_numpy()
    created = posts["created_at"].to_numpy()
    t = index.as_of
    authors = index.user_ids[:25]
    rows = index.recent_posts_by(np.searchsorted(index.user_ids, authors), t - 86_400, t)
    expected = posts["post_id"].to_numpy()[np.isin(author_ids, authors) & (created >= t - 86_400) & (created < t)]
    assert sorted(index.post_id[rows].tolist()) == sorted(expected.tolist())


def test_counters_seen_and_uteg_come_from_the_history_only(ds, index):
    e = ds.engagements
    before = e["created_at"].to_numpy() < index.as_of
    likes = (e["kind"].to_numpy(zero_copy_only=False) == "like") & before
    assert index.counts["like"].sum() == likes.sum()
    imp = ds.impressions
    assert index.impressions_count.sum() == int((imp["created_at"].to_numpy() < index.as_of).sum())
    # a user's seen set is their impressions before the cut
    u = int(imp["user_id"][0].as_py())
    mask = (imp["user_id"].to_numpy() == u) & (imp["created_at"].to_numpy() < index.as_of)
    seen = index.post_id[index.seen.row(index.user_row(u))]
    assert sorted(seen.tolist()) == sorted(set(imp["post_id"].to_numpy()[mask].tolist()))
    recent = e["created_at"].to_numpy() >= index.as_of - 48 * 3600
    assert len(index.uteg.values) == int((np.isin(e["kind"].to_numpy(zero_copy_only=False),
                                                  ["like", "repost", "reply"]) & before & recent).sum())


def test_overlay_records_without_touching_the_index(index):
    ov = RealtimeOverlay(index)
    u, p = 3, 10
    likes = int(index.counts["like"][p])
    ov.record(u, p, "like", index.as_of)
    ov.record(u, p + 1, "mute", index.as_of)
    assert ov.counts["like"][p] == likes + 1 and index.counts["like"][p] == likes
    assert p in ov.seen_rows(u) and index.author_row[p + 1] in ov.blocked_authors(u)
    posts, _ = ov.uteg_rows(np.array([u]))
    assert p in posts
    with pytest.raises(ValueError, match="unknown interaction"):
        ov.record(u, p, "teleport", index.as_of)


def test_snapshot_round_trip_is_exact_and_pickle_free(index, tmp_path):
    snapshot.save({"index": index}, tmp_path / "snap", tag="t1")
    loaded = snapshot.load(tmp_path / "snap", tag="t1", compose={"index": ServingIndex.from_arrays})["index"]
    assert type(loaded) is ServingIndex
    for name in ("post_id", "author_row", "created_at", "author_keys", "impressions_count", "user_topic"):
        assert np.array_equal(getattr(loaded, name), getattr(index, name)), name
    assert loaded.base_rate == index.base_rate
    assert (loaded.follows.adjacency != index.follows.adjacency).nnz == 0
    assert np.array_equal(loaded.seen.values, index.seen.values)
    with pytest.raises(snapshot.SnapshotError, match="stale"):
        snapshot.load(tmp_path / "snap", tag="other")


def test_snapshot_refuses_what_cannot_write_its_own_arrays(tmp_path):
    class Foreign:
        x = 1

    with pytest.raises(TypeError, match="no to_arrays"):
        snapshot.save({"x": Foreign()}, tmp_path / "snap", tag="t")
    assert not (tmp_path / "snap").exists()  # nothing half-written


def test_engine_reuses_its_snapshot_and_rebuilds_a_corrupt_one(tiny_world_dir, tmp_path):
    path = tmp_path / "w"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns(".serving"))
    first = RecommendationEngine.open(path)
    assert first.loaded_from is None
    page = [it.post_id for it in first.recommend(7).items]
    second = RecommendationEngine.open(path)
    assert second.loaded_from is not None
    assert [it.post_id for it in second.recommend(7).items] == page
    # corrupt one array file: the engine notices, rebuilds, and serves the same page
    victim = next(second.loaded_from.glob("*.npy"))
    victim.write_bytes(b"garbage")
    third = RecommendationEngine.open(path)
    assert third.loaded_from is None
    assert [it.post_id for it in third.recommend(7).items] == page
    for e in (first, second, third):
        e.close()
