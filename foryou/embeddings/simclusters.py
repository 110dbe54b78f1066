"""SimClusters (REFERENCE.md): sparse community embeddings for users and posts.

1. KnownFor — the `max_producers` most-followed accounts (≥ `min_followers`) are compared by the
   cosine similarity of their follower sets (S = ÂᵀÂ with Â the users×producers follow matrix,
   columns L2-normalised), computed in row blocks keeping each producer's `top_k` neighbours
   above `min_similarity`. Leiden (leidenalg, seeded) partitions that weighted graph; each producer
   is in at most one community, communities smaller than `min_cluster_size` are dropped. A
   producer's KnownFor weight is the share of its pruned similarity that stays in its community.
2. InterestedIn = follows × KnownFor, rows L1-normalised, weights < `min_interest` dropped, at most
   `interested_in_top` clusters per user.
3. Post vectors start empty; every like (and repost, weighted) adds the liker's InterestedIn vector
   decayed with an 8 h half-life. Weights are stored relative to a reference time t_ref:
   w·2^((t − t_ref)/half_life), so decaying everything to `now` is one global factor and a
   real-time like needs no rescan. Each cluster keeps its top posts by weight for retrieval.

Retrieval: the user's top `retrieval_clusters` clusters → their top posts → keep the
`retrieval_dot_top` best by dot product → exact cosine, threshold `min_cosine`.

Settings: `foryou.config.SimClustersConfig`, the `simclusters` section of the one config tree
(`--set simclusters.resolution=1.5`).

Rows: users by position in sorted user ids (`follow_graph(h).user_ids`), posts by position in
posts sorted by post_id — the same rows as `ServingIndex`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from foryou.config import SimClustersConfig
from foryou.data.lookup import member, rows_of
from foryou.data.snapshot import Arrays, csr_arrays, csr_from, nest, unnest
from foryou.data.split import History, _require_history, follow_graph
from foryou.vocab import HOUR


def _top_per_row(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, k: int) -> np.ndarray:
    """Mask of the k largest values of each row (ties broken by column), vectorised."""
    order = np.lexsort((cols, -vals, rows))
    r = rows[order]
    starts = np.r_[0, np.flatnonzero(np.diff(r)) + 1]
    rank = np.arange(len(r)) - np.repeat(starts, np.diff(np.r_[starts, len(r)]))
    keep = np.zeros(len(rows), dtype=bool)
    keep[order[rank < k]] = True
    return keep


def _gather(indptr: np.ndarray, values: np.ndarray, rs: np.ndarray) -> np.ndarray:
    starts, ends = indptr[rs], indptr[rs + 1]
    counts = ends - starts
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return values[np.repeat(starts, counts) + offsets]


BLOCK_MAX = 8_000_000  # floats in the dense top-list block (64 MB): beyond it retrieval uses the sparse rows

class SimClusters:
    def __init__(self, config: SimClustersConfig, t_ref: int, known_for: sparse.csr_matrix,
                 interested_in: sparse.csr_matrix, post_vectors: sparse.csr_matrix, created_at: np.ndarray,
                 n_producers: int):
        self.config = config
        self.t_ref = int(t_ref)
        self.known_for = known_for  # users × K (nonzero rows: producers in a community)
        self.interested_in = interested_in  # users × K, rows L1-normalised
        self._pv = post_vectors  # posts × K, weights relative to t_ref (float64)
        self.created_at = created_at
        self.n_producers = n_producers
        self._half_life = config.half_life_hours * HOUR
        self._ov_post = np.empty(0, np.int64)
        self._ov_cluster = np.empty(0, np.int64)
        self._ov_w = np.empty(0, np.float64)
        self._ov_n = 0
        self._new_created: list[int] = []
        self._rebuild_top_lists()

    # -- build ------------------------------------------------------------------------------------

    @classmethod
    def build(cls, h: History, config: SimClustersConfig | None = None) -> SimClusters:
        h = _require_history(h)
        cfg = config or SimClustersConfig()
        graph = follow_graph(h)
        follows = graph.adjacency
        n_users = len(graph.user_ids)
        known_for, n_producers = _known_for(follows, graph.in_degree(), cfg)
        interested_in = _interested_in(follows, known_for, cfg)
        posts = h.posts.sort_by("post_id")
        post_ids = posts["post_id"].to_numpy()
        post_vectors = _post_vectors(h, graph.user_ids, post_ids, interested_in, cfg)
        assert interested_in.shape[0] == n_users
        return cls(cfg, h.as_of, known_for, interested_in, post_vectors, posts["created_at"].to_numpy(),
                   n_producers)

    # -- snapshot ---------------------------------------------------------------------------------

    def to_arrays(self) -> Arrays:
        """Matrices, top lists and the real-time overlay as named arrays (`foryou.data.snapshot`)."""
        n = self._ov_n
        return {
            "config": self.config.model_dump(), "t_ref": self.t_ref, "n_producers": int(self.n_producers),
            **nest("known_for", csr_arrays(self.known_for)), **nest("interested_in", csr_arrays(self.interested_in)),
            **nest("post_vectors", csr_arrays(self._pv)), "created_at": self.created_at,
            "overlay_post": self._ov_post[:n], "overlay_cluster": self._ov_cluster[:n], "overlay_w": self._ov_w[:n],
            "new_created": np.asarray(self._new_created, dtype=np.int64),
            "top_posts": self._top_posts, "top_indptr": self._top_indptr,
        }

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> SimClusters:
        sc = cls.__new__(cls)  # not __init__: the top lists are stored, not rebuilt
        sc.config = SimClustersConfig.model_validate(arrays["config"])
        sc.t_ref, sc.n_producers = int(arrays["t_ref"]), int(arrays["n_producers"])
        sc.known_for = csr_from(unnest(arrays, "known_for"))
        sc.interested_in = csr_from(unnest(arrays, "interested_in"))
        sc._pv = csr_from(unnest(arrays, "post_vectors"))
        sc.created_at = arrays["created_at"]
        sc._half_life = sc.config.half_life_hours * HOUR
        sc._ov_post, sc._ov_cluster, sc._ov_w = arrays["overlay_post"], arrays["overlay_cluster"], arrays["overlay_w"]
        sc._ov_n = len(sc._ov_post)
        sc._new_created = arrays["new_created"].tolist()
        sc._top_posts, sc._top_indptr = arrays["top_posts"], arrays["top_indptr"]
        sc._block = None
        return sc

    # -- properties -------------------------------------------------------------------------------

    @property
    def n_clusters(self) -> int:
        return self.known_for.shape[1]

    @property
    def n_posts(self) -> int:
        return len(self.created_at) + len(self._new_created)

    def stats(self) -> dict[str, int]:
        self.compact()
        return {
            "producers": int(self.n_producers),
            "producers_known_for": int(np.count_nonzero(np.diff(self.known_for.indptr))),
            "clusters": int(self.n_clusters),
            "users_with_interested_in": int(np.count_nonzero(np.diff(self.interested_in.indptr))),
            "posts_with_vectors": int(np.count_nonzero(np.diff(self._pv.indptr))),
        }

    def cluster_of(self, user_rows: np.ndarray) -> np.ndarray:
        """KnownFor cluster of each user row (−1 when not a clustered producer)."""
        kf = self.known_for[np.asarray(user_rows)]
        out = np.full(kf.shape[0], -1, dtype=np.int64)
        has = np.diff(kf.indptr) > 0
        out[has] = kf.indices[kf.indptr[:-1][has]]
        return out

    # -- vectors ----------------------------------------------------------------------------------

    def user_vector(self, user_row: int) -> np.ndarray:
        """The user's InterestedIn vector, dense (K,)."""
        ii = self.interested_in
        lo, hi = ii.indptr[int(user_row)], ii.indptr[int(user_row) + 1]
        u = np.zeros(self.n_clusters)
        u[ii.indices[lo:hi]] = ii.data[lo:hi]
        return u

    def _dot_norm(self, rows: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(⟨post vector, u⟩, ‖post vector‖) for unique post rows, straight from the CSR arrays
        (scipy's fancy row indexing costs ~1 ms of Python overhead per request)."""
        pv, n = self._pv, len(rows)
        inside = rows < pv.shape[0]
        r = np.where(inside, rows, 0)
        starts = pv.indptr[r]
        counts = np.where(inside, pv.indptr[r + 1] - starts, 0)
        owner = np.repeat(np.arange(n), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        idx = np.repeat(starts, counts) + offsets
        cl, w = pv.indices[idx].astype(np.int64), pv.data[idx]
        if self._ov_n:  # real-time likes: merge duplicate (post, cluster) entries before the norm
            order = np.argsort(rows)
            p, c, ow = self._ov_post[:self._ov_n], self._ov_cluster[:self._ov_n], self._ov_w[:self._ov_n]
            hit, pos = member(rows[order], p)
            owner = np.r_[owner, order[pos[hit]]]
            cl, w = np.r_[cl, c[hit]], np.r_[w, ow[hit]]
            keys, inv = np.unique(owner * self.n_clusters + cl, return_inverse=True)
            w = np.bincount(inv, weights=w, minlength=len(keys))
            owner, cl = keys // self.n_clusters, keys % self.n_clusters
        dot = np.bincount(owner, weights=w * u[cl], minlength=n)
        norm = np.sqrt(np.bincount(owner, weights=w * w, minlength=n))
        return dot, norm

    def _decay(self, now: int | None) -> float:
        return 1.0 if now is None else float(2.0 ** (-(now - self.t_ref) / self._half_life))

    def post_vector(self, post_rows: np.ndarray, now: int | None = None) -> sparse.csr_matrix:
        """Post vectors (len(post_rows) × K), decayed to `now` (default: the build time)."""
        rows = np.atleast_1d(np.asarray(post_rows, dtype=np.int64))
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_posts):
            raise IndexError("unknown post row")
        base_n = self._pv.shape[0]
        inside = rows < base_n
        base = self._pv[np.where(inside, rows, 0)]
        base = sparse.diags(inside.astype(np.float64)) @ base
        if self._ov_n:
            p, c, w = self._ov_post[:self._ov_n], self._ov_cluster[:self._ov_n], self._ov_w[:self._ov_n]
            uniq, inverse = np.unique(rows, return_inverse=True)
            hit = np.isin(p, uniq)
            if hit.any():
                extra = sparse.csr_matrix((w[hit], (rows_of(uniq, p[hit], "post row"), c[hit])),
                                          shape=(len(uniq), self.n_clusters))
                base = base + extra[inverse]
        out = sparse.csr_matrix(base)
        out.sum_duplicates()
        return out * self._decay(now) if now is not None else out

    def score(self, user_row: int, post_rows: np.ndarray) -> np.ndarray:
        """Cosine between the user's InterestedIn and each post's vector (0 when either is empty)."""
        u = self.user_vector(user_row)
        rows = np.atleast_1d(np.asarray(post_rows, dtype=np.int64))
        uniq, inv = np.unique(rows, return_inverse=True)
        dot, norm = self._dot_norm_top(uniq, u)
        with np.errstate(invalid="ignore", divide="ignore"):  # rounded: the same whichever path summed it
            cos = np.round(np.nan_to_num(dot / (norm * np.linalg.norm(u)), nan=0.0, posinf=0.0), 12)
        return cos[inv]

    # -- real time --------------------------------------------------------------------------------

    def add_post(self, created_at: int) -> int:
        """Register a post created after the build; returns its row (posts are appended in id order)."""
        self._new_created.append(int(created_at))
        return self.n_posts - 1

    def add_like(self, user_row: int, post_row: int, t: int, weight: float | None = None) -> None:
        """A like at time t adds the liker's InterestedIn (decayed) to the post vector; O(clusters)."""
        if not 0 <= post_row < self.n_posts:
            raise IndexError(f"unknown post row {post_row}")
        ii = self.interested_in
        lo, hi = ii.indptr[user_row], ii.indptr[user_row + 1]
        if hi == lo:
            return
        w = (self.config.like_weight if weight is None else weight) * 2.0 ** ((t - self.t_ref) / self._half_life)
        n = hi - lo
        if self._ov_n + n > len(self._ov_post):
            cap = max(2 * len(self._ov_post), self._ov_n + n, 1024)
            self._ov_post = np.resize(self._ov_post, cap)
            self._ov_cluster = np.resize(self._ov_cluster, cap)
            self._ov_w = np.resize(self._ov_w, cap)
        s = slice(self._ov_n, self._ov_n + n)
        self._ov_post[s] = post_row
        self._ov_cluster[s] = ii.indices[lo:hi]
        self._ov_w[s] = w * ii.data[lo:hi]
        self._ov_n += n
        if self._ov_n >= self.config.compact_every:
            self.compact()

    def compact(self) -> None:
        """Merge the real-time overlay (and new posts) into the base matrix and top lists."""
        if not self._ov_n and not self._new_created:
            return
        n, k = self.n_posts, self.n_clusters
        pv = self._pv.tocoo()
        p = np.r_[pv.row, self._ov_post[:self._ov_n]]
        c = np.r_[pv.col, self._ov_cluster[:self._ov_n]]
        w = np.r_[pv.data, self._ov_w[:self._ov_n]]
        self._pv = sparse.csr_matrix((w, (p, c)), shape=(n, k))
        self._pv.sum_duplicates()
        self.created_at = np.r_[self.created_at, np.asarray(self._new_created, dtype=np.int64)]
        self._new_created = []
        self._ov_n = 0
        self._rebuild_top_lists()

    def _rebuild_top_lists(self) -> None:
        coo = self._pv.tocoo()
        keep = _top_per_row(coo.col.astype(np.int64), coo.row.astype(np.int64), coo.data,
                            self.config.posts_per_cluster) if coo.nnz else np.zeros(0, bool)
        cl, posts = coo.col[keep].astype(np.int64), coo.row[keep].astype(np.int64)
        order = np.argsort(cl, kind="stable")
        self._top_posts = posts[order]
        self._top_indptr = np.r_[0, np.cumsum(np.bincount(cl, minlength=self.n_clusters))].astype(np.int64)
        self._block: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # built on first retrieval

    def _top_block(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(sorted rows, dense vectors, norms) of every post on a cluster's top list: retrieval's candidates,
        scored by one small matrix product instead of a gather over the sparse rows. None when the block
        would be large (many clusters × many top posts: the sparse path serves)."""
        if self._block is None:
            rows = np.unique(self._top_posts)
            if len(rows) * self.n_clusters > BLOCK_MAX:
                return None
            dense = self._pv[rows].toarray()
            self._block = rows, dense, np.sqrt((dense * dense).sum(1))
        return self._block

    def _dot_norm_top(self, rows: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_dot_norm` for sorted unique rows, from the top-list block where a row is in it and no live like
        changed its vector since the build; the rest (few) by the exact sparse path."""
        block = self._top_block()
        if block is None:
            return self._dot_norm(rows, u)
        top, dense, norms = block
        found, pos = member(top, rows)
        if self._ov_n:
            found &= ~np.isin(rows, self._ov_post[:self._ov_n])
        dot, norm = np.empty(len(rows)), np.empty(len(rows))
        dot[found], norm[found] = dense[pos[found]] @ u, norms[pos[found]]
        if not found.all():
            dot[~found], norm[~found] = self._dot_norm(rows[~found], u)
        return dot, norm

    # -- retrieval --------------------------------------------------------------------------------

    def retrieve(self, user_row: int, now: int, k: int = 200,
                 min_created: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(post rows, cosine scores), best first, of posts created in [min_created, now)."""
        cfg = self.config
        ii = self.interested_in
        lo, hi = ii.indptr[user_row], ii.indptr[user_row + 1]
        empty = np.empty(0, np.int64), np.empty(0, np.float64)
        if hi == lo:
            return empty
        clusters, weights = ii.indices[lo:hi], ii.data[lo:hi]
        top = clusters[np.argsort(-weights, kind="stable")[:cfg.retrieval_clusters]].astype(np.int64)
        cands = _gather(self._top_indptr, self._top_posts, top)
        if self._ov_n:
            hit = np.isin(self._ov_cluster[:self._ov_n], top)
            cands = np.r_[cands, self._ov_post[:self._ov_n][hit]]
        cands = np.unique(cands)
        created = self._created(cands)
        ok = created < now
        if min_created is not None:
            ok &= created >= min_created
        cands = cands[ok]
        if not len(cands):
            return empty
        u = np.zeros(self.n_clusters)
        u[clusters] = weights
        dot, norm = self._dot_norm_top(cands, u)
        # Rounded far below any real difference: posts with the same vector tie exactly and order by row,
        # whichever way (dense block or sparse rows) their sums were taken.
        dot = np.round(dot, 12)
        keep_dot = max(cfg.retrieval_dot_top, k)  # a caller asking for more than 200 gets them
        if len(cands) > keep_dot:
            best = np.argpartition(-dot, keep_dot - 1)[:keep_dot]
            cands, dot, norm = cands[best], dot[best], norm[best]
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.round(np.nan_to_num(dot / (norm * np.linalg.norm(u)), nan=0.0, posinf=0.0), 12)
        keep = cos >= cfg.min_cosine
        cands, cos = cands[keep], cos[keep]
        order = np.lexsort((cands, -cos))[:k]
        return cands[order], cos[order]

    def _created(self, rows: np.ndarray) -> np.ndarray:
        if not self._new_created:
            return self.created_at[rows]
        return np.r_[self.created_at, np.asarray(self._new_created, dtype=np.int64)][rows]


# -- build stages ---------------------------------------------------------------------------------

def _known_for(follows: sparse.csr_matrix, in_degree: np.ndarray, cfg: SimClustersConfig
               ) -> tuple[sparse.csr_matrix, int]:
    import igraph as ig
    import leidenalg

    n_users = follows.shape[0]
    eligible = np.flatnonzero(in_degree >= cfg.min_followers)
    order = np.lexsort((eligible, -in_degree[eligible]))
    producers = np.sort(eligible[order[:cfg.max_producers]])
    n_p = len(producers)
    if n_p < 2:
        return sparse.csr_matrix((n_users, 0)), n_p
    a = follows[:, producers].tocsr()
    # Cap each consumer's producer follows (seeded sample) so ÂᵀÂ costs Σ min(d, cap)².
    cap = cfg.max_follows_per_consumer
    deg = np.diff(a.indptr)
    if deg.max(initial=0) > cap:
        rows = np.repeat(np.arange(n_users), deg)
        key = np.random.default_rng(cfg.seed).random(a.nnz)
        keep = _top_per_row(rows, np.arange(a.nnz), key, cap)
        a = sparse.csr_matrix((a.data[keep], (rows[keep], a.indices[keep])), shape=a.shape)
    norm = np.sqrt(np.asarray(a.multiply(a).sum(axis=0)).ravel())
    norm[norm == 0] = 1.0
    a = (a @ sparse.diags((1.0 / norm).astype(np.float32))).tocsc()
    at = a.T.tocsr()
    src_parts, dst_parts, sim_parts = [], [], []
    k = min(cfg.top_k, n_p - 1)
    for start in range(0, n_p, cfg.similarity_block):
        stop = min(start + cfg.similarity_block, n_p)
        block = (at[start:stop] @ a).toarray()
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        nb = np.argpartition(-block, k - 1, axis=1)[:, :k]
        w = np.take_along_axis(block, nb, axis=1)
        r = np.repeat(np.arange(start, stop), k)
        keep = w.ravel() > cfg.min_similarity
        src_parts.append(r[keep])
        dst_parts.append(nb.ravel()[keep])
        sim_parts.append(w.ravel()[keep])
    src, dst = np.concatenate(src_parts), np.concatenate(dst_parts)
    sim = np.concatenate(sim_parts).astype(np.float64)
    # Undirected: one edge per pair (S is symmetric, so both directions carry the same weight).
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    pair, first = np.unique(lo.astype(np.int64) * n_p + hi, return_index=True)
    lo, hi, w = pair // n_p, pair % n_p, sim[first]
    g = ig.Graph(n=n_p, edges=np.column_stack([lo, hi]).tolist(), directed=False)
    g.es["weight"] = w.tolist()
    if cfg.partition == "cpm":
        part = leidenalg.find_partition(g, leidenalg.CPMVertexPartition, weights="weight",
                                        resolution_parameter=cfg.resolution, seed=cfg.seed)
    else:
        part = leidenalg.find_partition(g, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                        resolution_parameter=cfg.resolution, seed=cfg.seed)
    membership = np.asarray(part.membership, dtype=np.int64)
    sizes = np.bincount(membership)
    big = np.flatnonzero(sizes >= cfg.min_cluster_size)
    big = big[np.lexsort((big, -sizes[big]))]  # clusters numbered largest first
    remap = np.full(len(sizes), -1, dtype=np.int64)
    remap[big] = np.arange(len(big))
    cluster = remap[membership]
    # KnownFor weight: the share of a producer's pruned similarity that stays inside its cluster.
    ends = np.r_[lo, hi]
    other = np.r_[hi, lo]
    ww = np.r_[w, w]
    total = np.bincount(ends, weights=ww, minlength=n_p)
    inside = np.bincount(ends, weights=ww * (cluster[ends] == cluster[other]), minlength=n_p)
    score = np.divide(inside, total, out=np.zeros(n_p), where=total > 0)
    keep = (cluster >= 0) & (score > 0)
    kf = sparse.csr_matrix((score[keep].astype(np.float32), (producers[keep], cluster[keep])),
                           shape=(n_users, len(big)))
    return kf, n_p


def _interested_in(follows: sparse.csr_matrix, known_for: sparse.csr_matrix, cfg: SimClustersConfig
                   ) -> sparse.csr_matrix:
    n_users, k = known_for.shape
    if k == 0:
        return sparse.csr_matrix((n_users, 0), dtype=np.float64)
    m = (follows @ known_for).tocoo()
    rows, cols, vals = m.row.astype(np.int64), m.col.astype(np.int64), m.data.astype(np.float64)
    rows, cols, vals = _normalised(rows, cols, vals, n_users)
    keep = (vals >= cfg.min_interest) & _top_per_row(rows, cols, vals, cfg.interested_in_top)
    rows, cols, vals = _normalised(rows[keep], cols[keep], vals[keep], n_users)
    out = sparse.csr_matrix((vals, (rows, cols)), shape=(n_users, k))
    out.sort_indices()
    return out


def _normalised(rows, cols, vals, n_rows):
    sums = np.bincount(rows, weights=vals, minlength=n_rows)
    return rows, cols, vals / sums[rows]


def _post_vectors(h: History, user_ids: np.ndarray, post_ids: np.ndarray, interested_in: sparse.csr_matrix,
                  cfg: SimClustersConfig) -> sparse.csr_matrix:
    e = h.engagements
    kinds = pa.array(["like", "repost"])
    e = e.filter(pc.is_in(e["kind"], kinds))
    kind = pc.index_in(e["kind"], value_set=kinds).to_numpy(zero_copy_only=False)
    t = e["created_at"].to_numpy()
    w = np.where(kind == 0, cfg.like_weight, cfg.repost_weight) * 2.0 ** ((t - h.as_of) / (cfg.half_life_hours * HOUR))
    users = rows_of(user_ids, e["user_id"].to_numpy(), "user")
    posts = rows_of(post_ids, e["post_id"].to_numpy(), "post")
    likes = sparse.csr_matrix((w, (posts, users)), shape=(len(post_ids), len(user_ids)))
    pv = (likes @ interested_in).tocsr()
    pv.eliminate_zeros()
    pv.sort_indices()
    return pv
