"""`EmbeddingRetriever`: user × post vectors → nearest recent posts (the embedding-ANN source).

`retrieve(user_row, now, k)` returns posts created in [now − window, now), best inner product first.
The faiss index is built lazily, per hour bucket: for `now` in bucket b = ⌊now / bucket_s⌋ it holds
the posts created in [b·bucket_s − window, (b+1)·bucket_s) — a superset of every window of the
bucket — added in creation order, so each query restricts the search to exactly [now − window, now)
with a range selector. The index is rebuilt only when `now` leaves the bucket (one build an hour in
steady serving; a query for another hour rebuilds for that hour). Posts whose vector is all zeros
(no information, e.g. users with no history when the vectors were computed) are never indexed.

Rows: users by position in sorted user ids, posts by position in posts sorted by post_id — the
same rows as `ServingIndex`. Posts created after the vectors were computed are not retrievable
until `add_posts` (or a rebuilt retriever) gives them vectors.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from foryou.embeddings.ann import PostIndex
from foryou.vocab import HOUR


class EmbeddingRetriever:
    def __init__(self, user_vectors: np.ndarray, post_vectors: np.ndarray, post_created: np.ndarray,
                 window_s: int = 48 * HOUR, version: str = "", *, bucket_s: int = HOUR,
                 index_kind: Literal["flat", "ivf"] = "flat", nlist: int | None = None, nprobe: int = 32):
        self.user_vectors = np.ascontiguousarray(user_vectors, dtype=np.float32)
        self.post_vectors = np.ascontiguousarray(post_vectors, dtype=np.float32)
        self.post_created = np.asarray(post_created, dtype=np.int64)
        if len(self.post_vectors) != len(self.post_created):
            raise ValueError("post_vectors and post_created must have one row per post")
        self.window_s, self.bucket_s, self.version = int(window_s), int(bucket_s), version
        self.index_kind, self.nlist, self.nprobe = index_kind, nlist, nprobe
        self.dim = self.post_vectors.shape[1]
        self._bucket: int | None = None
        self._index: PostIndex | None = None
        self.builds = 0

    def __repr__(self) -> str:
        return (f"EmbeddingRetriever(version={self.version!r}, users={len(self.user_vectors)}, "
                f"posts={len(self.post_vectors)}, dim={self.dim})")

    # -- vectors ----------------------------------------------------------------------------------

    def user_vector(self, user_row: int) -> np.ndarray:
        """The user's vector (zeros for a row the vectors do not know)."""
        if 0 <= user_row < len(self.user_vectors):
            return self.user_vectors[user_row]
        return np.zeros(self.dim, np.float32)

    def score(self, user_row: int, post_rows: np.ndarray) -> np.ndarray:
        """⟨user, post⟩ for many posts (0 for rows without vectors): a ranker feature."""
        rows = np.asarray(post_rows, dtype=np.int64)
        known = (rows >= 0) & (rows < len(self.post_vectors))
        out = np.zeros(len(rows), np.float32)
        out[known] = self.post_vectors[rows[known]] @ self.user_vector(user_row)
        return out

    def add_posts(self, post_vectors: np.ndarray, post_created: np.ndarray) -> np.ndarray:
        """Append vectors for new post rows (rows len, len+1, …); returns their rows. The current
        index takes them too when they fall in its bucket span in creation order; otherwise it is
        rebuilt at the next query."""
        v = np.ascontiguousarray(post_vectors, dtype=np.float32).reshape(-1, self.dim)
        c = np.asarray(post_created, dtype=np.int64)
        rows = np.arange(len(self.post_vectors), len(self.post_vectors) + len(v))
        self.post_vectors = np.concatenate([self.post_vectors, v])
        self.post_created = np.concatenate([self.post_created, c])
        if self._index is not None and self._bucket is not None:
            lo, hi = self._span(self._bucket)
            keep = (c >= lo) & (c < hi) & np.any(v != 0, axis=1)
            order = np.argsort(c[keep], kind="stable")
            self._index.add(rows[keep][order], v[keep][order], c[keep][order])
            if self._index._created is None:  # out of order: rebuild lazily
                self._index, self._bucket = None, None
        return rows

    # -- retrieval --------------------------------------------------------------------------------

    def _span(self, bucket: int) -> tuple[int, int]:
        return bucket * self.bucket_s - self.window_s, (bucket + 1) * self.bucket_s

    def index_for(self, now: int) -> PostIndex:
        bucket = int(now) // self.bucket_s
        if self._index is None or self._bucket != bucket:
            lo, hi = self._span(bucket)
            c = self.post_created
            rows = np.flatnonzero((c >= lo) & (c < hi))
            rows = rows[np.any(self.post_vectors[rows] != 0, axis=1)]
            rows = rows[np.argsort(c[rows], kind="stable")]
            self._index = PostIndex.build(rows, self.post_vectors[rows], created=c[rows], kind=self.index_kind,
                                          nlist=self.nlist, nprobe=self.nprobe)
            self._bucket = bucket
            self.builds += 1
        return self._index

    def retrieve(self, user_row: int, now: int, k: int = 200) -> tuple[np.ndarray, np.ndarray]:
        """(post_rows, scores) of the k best posts created in [now − window, now), best first."""
        u = self.user_vector(user_row)
        if not u.any():
            return np.empty(0, np.int64), np.empty(0, np.float32)
        now = int(now)
        return self.index_for(now).search(u, k, created_range=(now - self.window_s, now))
