"""Scatter-gather over author shards returns exactly the unsharded index's candidates: in process and with
each shard a Ray actor on a local Ray cluster."""

from __future__ import annotations

import os

import numpy as np
import pytest

from foryou.embeddings.ann import PostIndex
from foryou.embeddings.sharded import ShardedPostIndex, shard_of


def _posts(n: int = 5000, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    authors = rng.integers(0, 300, n)
    created = np.sort(rng.integers(0, 10_000, n))
    return np.arange(n, dtype=np.int64) * 7, authors, vectors, created, rng.standard_normal((25, dim), dtype=np.float32)


def test_every_author_lives_on_one_shard_and_the_shards_are_balanced():
    authors = np.arange(10_000)
    s = shard_of(authors, 4)
    assert set(s.tolist()) == {0, 1, 2, 3}
    assert np.array_equal(s, shard_of(authors, 4))  # stable
    assert np.bincount(s).min() > 2_200  # consecutive ids spread evenly


@pytest.mark.parametrize("shards", [2, 4, 7])
def test_sharded_search_equals_the_unsharded_index(shards):
    rows, authors, vectors, created, q = _posts()
    one = PostIndex.build(rows, vectors, created=created)
    split = ShardedPostIndex.build(rows, authors, vectors, shards, created=created)
    for k in (1, 50, 400):
        a_rows, a_scores = one.search(q, k)
        b_rows, b_scores = split.search(q, k)
        assert np.array_equal(a_rows, b_rows) and np.allclose(a_scores, b_scores)
    window = (2_000, 6_000)  # time filtering works per shard
    a_rows, _ = one.search(q[0], 100, created_range=window)
    b_rows, _ = split.search(q[0], 100, created_range=window)
    assert np.array_equal(a_rows, b_rows) and len(b_rows) == 100
    assert len(split.search(q[0], 10_000)[0]) == len(rows)  # k beyond the posts: all of them, no padding


@pytest.mark.slow
def test_shards_as_ray_actors_return_the_same_candidates():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'foryou[scale]')")
    rows, authors, vectors, created, q = _posts(seed=1)
    one = PostIndex.build(rows, vectors, created=created)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, log_to_driver=False)
    try:
        split = ShardedPostIndex.build(rows, authors, vectors, 4, created=created, on_ray=True)
        a_rows, a_scores = one.search(q, 200)
        b_rows, b_scores = split.search(q, 200)
        assert np.array_equal(a_rows, b_rows) and np.allclose(a_scores, b_scores)
        split.close()
    finally:
        if started:
            ray.shutdown()
