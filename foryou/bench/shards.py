"""Scatter-gather retrieval's cost (SCALING.md): one request's exact top-k over N posts from one index, from
the same posts split by author over S shards in this process, and over S Ray actors asked in parallel."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from foryou.embeddings.ann import PostIndex
from foryou.embeddings.sharded import ShardedPostIndex


def bench_shards(posts: int = 1_000_000, dim: int = 64, shards: int = 4, queries: int = 200, k: int = 500,
                 seed: int = 0) -> dict[str, Any]:
    """p50/p99 ms per single-user search for each layout, and whether every layout returned the same posts."""
    import faiss
    import ray

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((posts, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    authors = rng.integers(0, max(posts // 20, 1), posts)
    rows = np.arange(posts, dtype=np.int64)
    q = rng.standard_normal((queries, dim), dtype=np.float32)
    faiss.omp_set_num_threads(1)  # one request on one core, as a serving worker does
    layouts: dict[str, Any] = {"one_index": PostIndex.build(rows, vectors),
                               f"{shards}_shards_in_process": ShardedPostIndex.build(rows, authors, vectors, shards)}
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False, log_to_driver=False)
    try:
        layouts[f"{shards}_shards_ray_actors"] = ShardedPostIndex.build(rows, authors, vectors, shards, on_ray=True)
        out: dict[str, Any] = {"posts": posts, "dim": dim, "shards": shards, "queries": queries, "k": k}
        answers = {}
        for name, index in layouts.items():
            index.search(q[0], k)  # warm
            ms, got = [], []
            for i in range(queries):
                t0 = time.perf_counter()
                r, _ = index.search(q[i], k)
                ms.append((time.perf_counter() - t0) * 1000)
                got.append(r)
            answers[name] = got
            out[name] = {"p50_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}
        base = answers["one_index"]
        out["same_posts_as_one_index"] = all(
            all(np.array_equal(np.sort(a), np.sort(b)) for a, b in zip(got, base, strict=True))
            for got in answers.values())
        layouts[f"{shards}_shards_ray_actors"].close()
        return out
    finally:
        if started:
            ray.shutdown()
