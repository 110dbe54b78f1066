"""Snapshots: named arrays on disk, no pickle, no class lookup; each structure round-trips its own arrays."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from foryou.config import SimClustersConfig
from foryou.data import snapshot
from foryou.data.split import History, history
from foryou.embeddings.simclusters import SimClusters
from foryou.features import FEATURE_NAMES, FeatureStore
from foryou.graph.index import ServingIndex
from foryou.graph.realgraph import RealGraph

COMPOSE = {"index": ServingIndex.from_arrays, "realgraph": RealGraph.from_arrays,
           "simclusters": SimClusters.from_arrays, "features": FeatureStore.from_arrays}


@pytest.fixture(scope="module")
def h(tiny_world) -> History:
    return history(tiny_world.dataset, tiny_world.dataset.manifest.split.valid_end)


@pytest.fixture(scope="module")
def parts(h) -> dict:
    return {"index": ServingIndex(h), "realgraph": RealGraph.build(h),
            "simclusters": SimClusters.build(h, SimClustersConfig()), "features": FeatureStore(h)}


def _same(a, b) -> None:
    """Every array and JSON value of two `to_arrays()` equal."""
    x, y = a.to_arrays(), b.to_arrays()
    assert x.keys() == y.keys()
    for name in x:
        if isinstance(x[name], np.ndarray):
            assert x[name].dtype == y[name].dtype and np.array_equal(x[name], y[name]), name
        else:
            assert x[name] == y[name], name


def test_every_part_round_trips_exactly_through_disk(parts, tmp_path):
    snapshot.save(parts, tmp_path / "snap", tag="t1")
    loaded = snapshot.load(tmp_path / "snap", tag="t1", compose=COMPOSE)
    for name, part in parts.items():
        assert type(loaded[name]) is type(part)
        _same(loaded[name], part)
    assert not list((tmp_path / "snap").glob("*.pkl")) and all(
        p.suffix in (".npy", ".json") for p in (tmp_path / "snap").iterdir())


def test_loaded_parts_serve_the_same_answers(parts, tmp_path, h):
    snapshot.save(parts, tmp_path / "snap", tag="t")
    got = snapshot.load(tmp_path / "snap", tag="t", compose=COMPOSE)
    users, posts = np.arange(20), np.arange(20) * 7
    t = np.full(20, h.as_of)
    assert np.array_equal(got["features"].compute(users, posts, t), parts["features"].compute(users, posts, t))
    assert np.allclose(got["realgraph"].weights(3, np.arange(50)), parts["realgraph"].weights(3, np.arange(50)))
    for u in range(10):
        a, b = got["simclusters"].retrieve(u, h.as_of), parts["simclusters"].retrieve(u, h.as_of)
        assert np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1])
    assert got["index"].user_row(int(parts["index"].user_ids[5])) == 5
    assert len(FEATURE_NAMES) == got["features"].compute(users[:1], posts[:1], t[:1]).shape[1]


def test_live_state_survives_a_round_trip(h, tmp_path):
    """What happened after the build (real-time likes, follows, live events) is part of the snapshot."""
    rg, sc, fs = RealGraph.build(h), SimClusters.build(h, SimClustersConfig()), FeatureStore(h)
    rg.record(1, 2, "like", h.as_of + 10)
    rg.record(1, 3, "follow", h.as_of + 20)
    sc.add_like(4, 5, h.as_of + 30)
    sc.add_post(h.as_of + 40)
    for i in range(700):  # past one sorted run of live events
        fs.counters["user_pos"].add(i % 9, h.as_of + i)
    snapshot.save({"realgraph": rg, "simclusters": sc, "features": fs}, tmp_path / "s", tag="t")
    got = snapshot.load(tmp_path / "s", tag="t", mmap=False, compose=COMPOSE)
    targets, at = np.arange(6), h.as_of + 60
    assert np.allclose(got["realgraph"].features(1, targets, at), rg.features(1, targets, at))
    assert np.array_equal(got["realgraph"].follows(1), rg.follows(1))
    assert got["simclusters"].n_posts == sc.n_posts
    assert (got["simclusters"].post_vector([5]) != sc.post_vector([5])).nnz == 0
    keys, at = np.arange(9), np.full(9, h.as_of + 1000)
    assert np.array_equal(got["features"].counters["user_pos"].count_before(keys, at),
                          fs.counters["user_pos"].count_before(keys, at))


def test_plain_arrays_stale_tags_and_refusals(tmp_path):
    m = sparse.random(5, 4, density=0.5, format="csr", random_state=0)
    x = {"a": np.arange(3), "cfg": {"k": [1, 2.5, "s", None]}, **snapshot.nest("m", snapshot.csr_arrays(m))}
    snapshot.save({"x": x, "none": None}, tmp_path / "snap", tag="t")
    got = snapshot.load(tmp_path / "snap", tag="t")
    assert got["none"] is None and got["x"]["cfg"] == {"k": [1, 2.5, "s", None]}
    assert (snapshot.csr_from(snapshot.unnest(got["x"], "m")) != m).nnz == 0
    with pytest.raises(snapshot.SnapshotError, match="stale"):
        snapshot.load(tmp_path / "snap", tag="other")

    class Foreign:
        x = 1

    with pytest.raises(TypeError, match="no to_arrays"):
        snapshot.save({"x": Foreign()}, tmp_path / "bad", tag="t")
    with pytest.raises(TypeError, match="object arrays"):
        snapshot.save({"x": {"a": np.array([object()])}}, tmp_path / "bad", tag="t")
    with pytest.raises(ValueError, match="snapshot name"):
        snapshot.save({"x": {"../up": np.arange(2)}}, tmp_path / "bad", tag="t")
    assert not (tmp_path / "bad").exists()  # nothing half-written


def test_a_corrupt_array_is_a_snapshot_error(parts, tmp_path):
    snapshot.save({"index": parts["index"]}, tmp_path / "snap", tag="t")
    next((tmp_path / "snap").glob("*.npy")).write_bytes(b"garbage")
    with pytest.raises(snapshot.SnapshotError, match="unreadable"):
        snapshot.load(tmp_path / "snap", tag="t", compose=COMPOSE)


def test_without_compose_parts_come_back_as_arrays(parts, tmp_path):
    """The snapshot names no class: a part nobody composes is its named arrays, whatever it was saved from."""
    snapshot.save({"index": parts["index"], "plain": {"a": np.arange(2)}}, tmp_path / "snap", tag="t")
    got = snapshot.load(tmp_path / "snap", tag="t")
    assert isinstance(got["index"], dict) and isinstance(got["plain"], dict)
    _same(ServingIndex.from_arrays(got["index"]), parts["index"])
