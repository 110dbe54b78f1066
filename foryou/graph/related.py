"""Related posts: item-to-item co-engagement neighbours, precomputed at the index build.

X's cr-mixer has tweet-based candidate sources ("posts engaged by users who engaged the same posts as
you": GraphJet's UserTweetGraph RelatedTweets, the SimClusters/TwHIN tweet-based similarity engines). Here
the similarity of two posts comes from the users × posts matrix of non-negative engagements before the
build (each user's most recent `PER_USER` posts): EASE's closed-form item-item weights (Steck 2019) for a
catalog of up to EASE_MAX_POSTS engaged posts, the cosine of the engager sets above that; each post keeps
its top `NEIGHBOURS` neighbours. A request gathers the neighbours of the viewer's recent engagements (a
sparse gather, `score`), so serving never touches the matrix. Posts created after the build have no
neighbours yet; a live engagement still seeds the viewer's next request (the overlay adds it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

from foryou.data.snapshot import Arrays

NEIGHBOURS = 100  # per post (implicit's item-kNN default)
PER_USER = 300  # most recent engaged posts per user: bounds the build at users × PER_USER² pairs
SEEDS = 100  # the viewer's most recent engaged posts a request expands
EASE_MAX_POSTS = 12_000  # EASE's dense inverse up to this many engaged posts (0.6 GB, ~10 s), cosine above
EASE_LAMBDA = 200.0  # the validation-tuned EASE baseline's on MovieLens-100K and Last.fm alike


def _gather(indptr: np.ndarray, values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions into `values`, owning position in `rows`) for many CSR rows at once."""
    starts, ends = indptr[rows], indptr[rows + 1]
    counts = ends - starts
    owner = np.repeat(np.arange(len(rows)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + offsets, owner


def ease_weights(x: sparse.spmatrix, lam: float) -> np.ndarray:
    """EASE's item-item weights B (items × items, float32) for a binary users × items matrix X and L2 weight
    λ: B = I − P · diag(1 / diag(P)) with P = (XᵀX + λI)⁻¹, so diag(B) = 0 (Steck 2019). Cholesky in
    place on one dense matrix (a 12,000-item catalog: 0.6 GB, ~10 s on 2 cores)."""
    g = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    g[np.diag_indices_from(g)] += np.float32(lam)
    # G is symmetric: its transpose is the Fortran-ordered matrix LAPACK factors in place (no copy)
    c, info = linalg.lapack.spotrf(g.T, lower=False, overwrite_a=True)  # G + λI is positive definite
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky of XᵀX + λI failed ({info})")
    p, info = linalg.lapack.spotri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse of XᵀX + λI failed ({info})")
    n = len(p)
    for lo in range(0, n, 1024):  # potri fills the upper triangle: mirror it, a block of rows at a time
        hi = min(lo + 1024, n)
        p[lo:hi, :lo] = p[:lo, lo:hi].T
        block = p[lo:hi, lo:hi]
        block[np.tril_indices(hi - lo, -1)] = block.T[np.tril_indices(hi - lo, -1)]
    p /= -np.diag(p).copy()[None, :]
    p[np.diag_indices_from(p)] = 0.0
    return p


def _top_per_row(b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, weight) of each row's `k` largest positive weights of a dense matrix, a block at a time."""
    rows, cols, weights = [], [], []
    k = min(k, b.shape[1])
    for lo in range(0, len(b), 1024):
        block = np.ascontiguousarray(b[lo:lo + 1024])
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < b.shape[1] else \
            np.broadcast_to(np.arange(b.shape[1]), block.shape)
        w = np.take_along_axis(block, top, axis=1)
        i, j = np.nonzero(w > 0)  # what engaging with a post predicts: its positive weights only
        rows.append(lo + i)
        cols.append(top[i, j])
        weights.append(w[i, j])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)


def _similarity(x: sparse.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(post, post, weight) pairs, at most `k` per post: EASE's item-item weights where the engaged posts are
    few enough for its closed form (a dense inverse), else the cosine of the engager sets."""
    degree = np.asarray(x.sum(axis=0)).ravel()
    used = np.flatnonzero(degree > 0)
    if 1 < len(used) <= EASE_MAX_POSTS:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # one thread: the same sums, so the same neighbours, run to run
            b = ease_weights(x[:, used], EASE_LAMBDA)
        i, j, w = _top_per_row(b, k)
        return used[i].astype(np.int64), used[j].astype(np.int64), w.astype(np.float32)
    co = (x.T @ x).tocoo()
    off = co.row != co.col
    r, c, v = co.row[off].astype(np.int64), co.col[off].astype(np.int64), co.data[off]
    return r, c, (v / np.sqrt(degree[r] * degree[c])).astype(np.float32)


@dataclass(frozen=True)
class RelatedPosts:
    """Post row → its most similar post rows (best first) with cosine weights; user row → engaged posts."""

    indptr: np.ndarray
    neighbours: np.ndarray
    weights: np.ndarray
    engaged_indptr: np.ndarray  # user row → post rows, most recent first
    engaged: np.ndarray

    @classmethod
    def build(cls, user: np.ndarray, post: np.ndarray, time: np.ndarray, n_users: int, n_posts: int,
              k: int = NEIGHBOURS, per_user: int = PER_USER) -> RelatedPosts:
        """From engagement events (user row, post row, time): distinct pairs, each user's latest `per_user`."""
        user, post, time = (np.asarray(a, np.int64) for a in (user, post, time))
        order = np.lexsort((-time, post, user))  # per (user, post): the latest event first
        u, p = user[order], post[order]
        first = np.r_[True, (u[1:] != u[:-1]) | (p[1:] != p[:-1])] if len(u) else np.empty(0, bool)
        u, p, t = u[first], p[first], time[order][first]
        order = np.lexsort((-t, u))  # per user, most recent first
        u, p = u[order], p[order]
        starts = np.r_[0, np.cumsum(np.bincount(u, minlength=n_users))][:-1] if len(u) else np.zeros(0, np.int64)
        rank = np.arange(len(u)) - starts[u] if len(u) else np.empty(0, np.int64)
        keep = rank < per_user
        u, p = u[keep], p[keep]
        engaged_indptr = np.r_[0, np.cumsum(np.bincount(u, minlength=n_users))].astype(np.int64)
        x = sparse.csr_matrix((np.ones(len(u), np.float32), (u, p)), shape=(n_users, n_posts))
        r, c, sim = _similarity(x, k)
        # per post, most similar first: one stable sort of row + (1 − similarity scaled into [0, 1)) (ties keep
        # the product's own, deterministic order)
        scale = float(np.abs(sim).max(initial=0.0)) * 1.000001 + 1e-30
        order = np.argsort(r + (0.5 - 0.5 * sim.astype(np.float64) / scale), kind="stable")
        r, c, sim = r[order], c[order], sim[order]
        starts = np.r_[0, np.cumsum(np.bincount(r, minlength=n_posts))][:-1] if len(r) else np.zeros(0, np.int64)
        top = (np.arange(len(r)) - starts[r]) < k if len(r) else np.empty(0, bool)
        indptr = np.r_[0, np.cumsum(np.bincount(r[top], minlength=n_posts))].astype(np.int64)
        return cls(indptr, c[top], sim[top], engaged_indptr, p.astype(np.int64))

    @classmethod
    def empty(cls, n_users: int, n_posts: int) -> RelatedPosts:
        none = np.empty(0, np.int64)
        return cls(np.zeros(n_posts + 1, np.int64), none, np.empty(0, np.float32), np.zeros(n_users + 1, np.int64),
                   none)

    def engaged_by(self, user_row: int, n: int = SEEDS) -> np.ndarray:
        """The user's most recent engaged post rows at the build (at most `n`)."""
        if user_row >= len(self.engaged_indptr) - 1:
            return np.empty(0, np.int64)
        lo = self.engaged_indptr[user_row]
        return self.engaged[lo:min(lo + n, self.engaged_indptr[user_row + 1])]

    def score(self, seeds: np.ndarray, seed_weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(post rows, Σ over seeds of weight × similarity), sorted by row: the seeds' neighbours."""
        seeds = np.asarray(seeds, np.int64)
        built = seeds < len(self.indptr) - 1  # posts created after the build have no neighbours yet
        seeds = seeds[built]
        if len(seeds) == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        at, owner = _gather(self.indptr, self.neighbours, seeds)
        w = self.weights[at] if seed_weights is None else self.weights[at] * np.asarray(seed_weights)[built][owner]
        rows, inv = np.unique(self.neighbours[at], return_inverse=True)
        return rows, np.bincount(inv, weights=w, minlength=len(rows)).astype(np.float32)

    def to_arrays(self) -> Arrays:
        return {"indptr": self.indptr, "neighbours": self.neighbours, "weights": self.weights,
                "engaged_indptr": self.engaged_indptr, "engaged": self.engaged}

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> RelatedPosts:
        return cls(arrays["indptr"], arrays["neighbours"], arrays["weights"], arrays["engaged_indptr"],
                   arrays["engaged"])
