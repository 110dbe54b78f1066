"""The post index split by author past one machine's memory: `ShardedPostIndex` keeps each author's posts on
shard `hash(author) mod n` and answers a search by scatter-gather — every shard's exact top-k, then the
global top-k of their union, which is exactly the unsharded index's top-k (each of its posts is in its
shard's top-k). Shards are `PostIndex`es in this process, or Ray actors (`on_ray=True`: one per shard, each
possibly on another machine), asked in parallel. SCALING.md measures the fan-out's cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from foryou.embeddings.ann import PostIndex

_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: consecutive author ids spread over the shards


def shard_of(author_ids: np.ndarray, shards: int) -> np.ndarray:
    """The shard of each author: a multiplicative hash of the id, mod the shard count (stable across runs)."""
    h = (np.asarray(author_ids, np.int64).astype(np.uint64) * _MIX) >> np.uint64(33)
    return (h % np.uint64(shards)).astype(np.int64)


class ShardedPostIndex:
    def __init__(self, shards: list[Any], on_ray: bool):
        self.shards = shards
        self.on_ray = on_ray

    @classmethod
    def build(cls, post_rows: np.ndarray, author_ids: np.ndarray, vectors: np.ndarray, shards: int, *,
              created: np.ndarray | None = None, on_ray: bool = False) -> ShardedPostIndex:
        """Split the posts by author hash and build one exact index per shard (a Ray actor each with
        `on_ray`; ray must be initialised)."""
        which = shard_of(author_ids, shards)
        vectors = np.asarray(vectors, np.float32)
        parts = [np.flatnonzero(which == s) for s in range(shards)]
        args = [(np.asarray(post_rows)[p], vectors[p], None if created is None else np.asarray(created)[p])
                for p in parts]
        if not on_ray:
            return cls([PostIndex.build(r, v, created=c) for r, v, c in args], on_ray=False)
        import ray

        actor = ray.remote(num_cpus=0)(_Shard)  # searches are short: do not reserve a core per shard
        return cls([actor.remote(r, v, c) for r, v, c in args], on_ray=True)

    def search(self, user_vectors: np.ndarray, k: int, *,
               created_range: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k posts by inner product over every shard: (nq, k) rows and scores, best first, padded with
        row −1 / score −inf (a 1-D query gives 1-D arrays without padding), as `PostIndex.search`."""
        q = np.asarray(user_vectors, np.float32)
        single = q.ndim == 1
        q2 = q.reshape(1, -1) if single else q
        if self.on_ray:
            import ray

            answers = ray.get([s.search.remote(q2, k, created_range) for s in self.shards])
        else:
            answers = [s.search(q2, k, created_range=created_range) for s in self.shards]
        rows = np.concatenate([a[0] for a in answers], axis=1)
        scores = np.concatenate([a[1] for a in answers], axis=1)
        # the global top-k: by score, then by post row (a deterministic order for ties)
        order = np.lexsort((rows, -scores), axis=1)[:, :k]
        rows, scores = np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1)
        if single:
            keep = rows[0] >= 0
            return rows[0][keep], scores[0][keep]
        return rows, scores

    def close(self) -> None:
        if self.on_ray:
            import ray

            for s in self.shards:
                ray.kill(s)
        self.shards = []


class _Shard:
    """One shard as a Ray actor: an exact index over its authors' posts."""

    def __init__(self, rows: np.ndarray, vectors: np.ndarray, created: np.ndarray | None):
        import faiss

        faiss.omp_set_num_threads(1)  # shards share the machine's cores: one each, asked in parallel
        self.index = PostIndex.build(rows, vectors, created=created)

    def search(self, q: np.ndarray, k: int, created_range: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(q, k, created_range=created_range)
