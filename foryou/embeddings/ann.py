"""`PostIndex`: maximum-inner-product search over post vectors with faiss.

Exact (`IndexFlatIP`) by default: a 48 h window is small, and exact top-500 over 1M × 64 vectors
takes ~12 ms per query on one thread (BENCHMARKS / issue 4 measurements). Optional IVF
(`kind="ivf"`, `nlist`, `nprobe`) for larger windows, with `recall_at(k, queries)` measuring its
recall against exact search; only use it where that recall is ≥ 0.95.

Vectors are float32; normalise them for cosine. Internal ids are insertion positions; when posts
are added in non-decreasing `created` order, `search(..., created_range=(lo, hi))` restricts the
search to posts created in [lo, hi) with a faiss range selector (exact filtering, no over-fetch).
"""

from __future__ import annotations

from typing import Literal

import faiss
import numpy as np


class PostIndex:
    def __init__(self, dim: int, *, kind: Literal["flat", "ivf"] = "flat", nlist: int | None = None,
                 nprobe: int = 32, seed: int = 0):
        if kind not in ("flat", "ivf"):
            raise ValueError(f"unknown index kind {kind!r} (flat | ivf)")
        self.dim, self.kind, self.nlist, self.nprobe, self.seed = dim, kind, nlist, nprobe, seed
        self._index: faiss.Index | None = faiss.IndexFlatIP(dim) if kind == "flat" else None
        self._rows = np.empty(0, np.int64)
        self._created: np.ndarray | None = np.empty(0, np.int64)
        self._vectors: list[np.ndarray] = []  # kept for IVF training / recall (a copy; flat needs none)

    @classmethod
    def build(cls, post_rows: np.ndarray, vectors: np.ndarray, *, created: np.ndarray | None = None,
              kind: Literal["flat", "ivf"] = "flat", nlist: int | None = None, nprobe: int = 32,
              seed: int = 0) -> PostIndex:
        vectors = np.asarray(vectors, dtype=np.float32)
        index = cls(vectors.shape[1], kind=kind, nlist=nlist, nprobe=nprobe, seed=seed)
        index.add(post_rows, vectors, created)
        return index

    def __len__(self) -> int:
        return len(self._rows)

    def _ivf(self, vectors: np.ndarray) -> faiss.Index:
        n = len(vectors)
        nlist = self.nlist or int(np.clip(4 * np.sqrt(n), 1, max(n // 39, 1)))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.seed
        index.train(vectors)
        index.nprobe = self.nprobe
        self.nlist = nlist
        return index

    def add(self, post_rows: np.ndarray, vectors: np.ndarray, created: np.ndarray | None = None) -> None:
        """Append posts (an IVF index is trained on its first batch). `created` keeps time filtering
        available as long as every batch comes with it and times never go backwards."""
        post_rows = np.asarray(post_rows, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(post_rows), self.dim):
            raise ValueError(f"vectors must be ({len(post_rows)}, {self.dim}), got {vectors.shape}")
        if len(post_rows) == 0:
            return
        if self._index is None:
            self._index = self._ivf(vectors)
        self._index.add(vectors)
        self._rows = np.concatenate([self._rows, post_rows])
        if self._created is not None and created is not None:
            created = np.asarray(created, dtype=np.int64)
            last = self._created[-1] if len(self._created) else np.iinfo(np.int64).min
            ok = len(created) == len(post_rows) and (np.diff(created) >= 0).all() and created[0] >= last
            self._created = np.concatenate([self._created, created]) if ok else None
        else:
            self._created = None
        if self.kind == "ivf":
            self._vectors.append(vectors)

    def search(self, user_vectors: np.ndarray, k: int, *,
               created_range: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k posts by inner product: (post_rows, scores), best first. A 1-D query gives 1-D
        arrays of at most k; a 2-D batch gives (nq, k) arrays padded with row −1 / score −inf."""
        q = np.asarray(user_vectors, dtype=np.float32)
        single = q.ndim == 1
        q = np.ascontiguousarray(q.reshape(-1, self.dim))
        lo, hi = 0, len(self._rows)
        if created_range is not None:
            if self._created is None:
                raise ValueError("created_range needs posts added with non-decreasing `created` times")
            lo, hi = (int(i) for i in np.searchsorted(self._created, created_range, side="left"))
        k_eff = min(k, max(hi - lo, 0))
        if self._index is None or k_eff == 0:
            rows, scores = np.full((len(q), k), -1, np.int64), np.full((len(q), k), -np.inf, np.float32)
        else:
            params = None
            if created_range is not None and (lo, hi) != (0, len(self._rows)):
                sel = faiss.IDSelectorRange(lo, hi)
                # faiss's Python layer takes the fields as keywords; its type stubs do not say so.
                params = (faiss.SearchParametersIVF(sel=sel, nprobe=self.nprobe)  # type: ignore[call-arg]
                          if self.kind == "ivf" else faiss.SearchParameters(sel=sel))  # type: ignore[call-arg]
            elif self.kind == "ivf":
                params = faiss.SearchParametersIVF(nprobe=self.nprobe)  # type: ignore[call-arg]
            scores, ids = self._index.search(q, k_eff, params=params)
            rows = np.where(ids >= 0, self._rows[np.maximum(ids, 0)], -1)
            scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
            if k_eff < k:
                rows = np.pad(rows, ((0, 0), (0, k - k_eff)), constant_values=-1)
                scores = np.pad(scores, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
        if single:
            keep = rows[0] >= 0
            return rows[0][keep], scores[0][keep]
        return rows, scores

    def exact_search(self, user_vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the same posts (for IVF: a temporary flat index)."""
        if self.kind == "flat":
            return self.search(user_vectors, k)
        flat = PostIndex.build(self._rows, np.concatenate(self._vectors) if self._vectors else
                               np.empty((0, self.dim), np.float32))
        return flat.search(user_vectors, k)

    def recall_at(self, k: int, queries: np.ndarray) -> float:
        """Mean over queries of |approximate top-k ∩ exact top-k| / |exact top-k|."""
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dim)
        approx, _ = self.search(queries, k)
        exact, _ = self.exact_search(queries, k)
        hits = [len(np.intersect1d(a[a >= 0], e[e >= 0])) / max((e >= 0).sum(), 1)
                for a, e in zip(approx, exact, strict=True)]
        return float(np.mean(hits)) if hits else 1.0
