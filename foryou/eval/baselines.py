"""Baselines ranked on the same split and candidates as the For You engine.

The candidate catalog is shared by every method: posts known at the split instant that pass the
engine's TooOldFilter (created within `timeline.sources.max_age_hours`). Per user, a baseline never
lists the user's own posts, posts already shown to them (impressions) or posts they already engaged
with before the split. Everything is fitted on `split.train` (a History: nothing at or after the split).

random · popularity (train-window engagements) · reverse-chronological in-network · implicit ALS ·
implicit BPR · item-kNN (implicit's cosine ItemItem). LightFM is left out: its source-only release
does not build here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from foryou.data.lookup import member
from foryou.data.split import History
from foryou.eval.protocols import EvalError, EvalSplit
from foryou.vocab import HOUR, NEGATIVE

BASELINES = ("random", "popularity", "reverse_chron", "als", "bpr", "item_knn")


@dataclass
class Catalog:
    """The candidate posts every method ranks (sorted by post id) and who may not see which."""

    post_id: np.ndarray
    author_id: np.ndarray
    created_at: np.ndarray
    topic: np.ndarray
    exclude: sparse.csr_matrix  # evaluated users × catalog, True = never list it for this user

    def __len__(self) -> int:
        return len(self.post_id)


@dataclass
class Lists:
    """One ranked list per evaluated user: post ids (−1 = empty slot) and the method's scores."""

    post_id: np.ndarray  # users × n
    score: np.ndarray  # users × n (NaN in empty slots)


def build_catalog(split: EvalSplit, max_age_hours: float | None) -> Catalog:
    h = split.train
    p = h.posts
    if max_age_hours is not None:
        p = p.filter(pc.greater_equal(p["created_at"], split.as_of - int(max_age_hours * HOUR)))
    p = p.sort_by("post_id")
    post_id = p["post_id"].to_numpy()
    author = p["author_id"].to_numpy()
    users = split.users
    # Exclusions: own posts, impressions and engagements of each evaluated user before the split.
    rows, cols = [], []
    ok, own = member(users, author)
    rows.append(own[ok])
    cols.append(np.flatnonzero(ok))
    for table in (h.impressions, h.engagements):
        u, q = table["user_id"].to_numpy(), table["post_id"].to_numpy()
        (u_ok, ui), (q_ok, qi) = member(users, u), member(post_id, q)
        hit = u_ok & q_ok
        rows.append(ui[hit])
        cols.append(qi[hit])
    r, c = np.concatenate(rows), np.concatenate(cols)
    exclude = sparse.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=(len(users), len(post_id)))
    return Catalog(post_id, author, p["created_at"].to_numpy(), p["topic"].to_numpy().astype(np.int64), exclude)


def top_n(catalog: Catalog, scores: Callable[[np.ndarray], np.ndarray], n_users: int, n: int,
          chunk: int = 256, progress: Callable[[float], None] | None = None) -> Lists:
    """Score users in chunks (`scores(user_indices)` → chunk × catalog, −inf = not a candidate), drop
    the excluded, keep the best n per user (argpartition; a tiny stable tie-break by catalog order)."""
    out_id = np.full((n_users, n), -1, dtype=np.int64)
    out_score = np.full((n_users, n), np.nan, dtype=np.float64)
    m = len(catalog)
    for start in range(0, n_users, chunk):
        idx = np.arange(start, min(start + chunk, n_users))
        s = np.asarray(scores(idx), dtype=np.float64).copy()
        ex = catalog.exclude[idx].tocoo()
        s[ex.row, ex.col] = -np.inf
        k = min(n, m)
        if k == 0:
            continue
        part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (len(idx), 1))
        vals = np.take_along_axis(s, part, 1)
        order = np.lexsort((part, -vals), axis=1)
        part, vals = np.take_along_axis(part, order, 1), np.take_along_axis(vals, order, 1)
        valid = np.isfinite(vals)
        out_id[idx, :k] = np.where(valid, catalog.post_id[part], -1)
        out_score[idx, :k] = np.where(valid, vals, np.nan)
        if progress is not None:
            progress(min(start + chunk, n_users) / n_users)
    return Lists(out_id, out_score)


# -- train-side matrices ----------------------------------------------------------------------


def interaction_matrix(h: History, user_ids: np.ndarray, post_ids: np.ndarray) -> sparse.csr_matrix:
    """Users × posts counts of every non-negative engagement before the split (the implicit signal)."""
    e = h.engagements
    e = e.filter(pc.invert(pc.is_in(e["kind"], pa.array(list(NEGATIVE)))))
    u = np.searchsorted(user_ids, e["user_id"].to_numpy())
    p = np.searchsorted(post_ids, e["post_id"].to_numpy())
    m = sparse.csr_matrix((np.ones(len(u), dtype=np.float32), (u, p)), shape=(len(user_ids), len(post_ids)))
    m.sum_duplicates()
    return m


class Baseline:
    name = "baseline"

    def fit(self, split: EvalSplit, catalog: Catalog) -> None:
        self.split, self.catalog = split, catalog

    def scores(self, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, n: int, progress: Callable[[float], None] | None = None) -> Lists:
        return top_n(self.catalog, self.scores, len(self.split.users), n, progress=progress)


class RandomBaseline(Baseline):
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def scores(self, idx: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([self.seed, int(idx[0])])
        return rng.random((len(idx), len(self.catalog)))


class PopularityBaseline(Baseline):
    """Engagements per catalog post in the train window (non-negative kinds); newer first on ties."""

    name = "popularity"

    def fit(self, split: EvalSplit, catalog: Catalog) -> None:
        super().fit(split, catalog)
        e = split.train.engagements
        e = e.filter(pc.invert(pc.is_in(e["kind"], pa.array(list(NEGATIVE)))))
        q = e["post_id"].to_numpy()
        ok, qi = member(catalog.post_id, q)
        counts = np.bincount(qi[ok], minlength=len(catalog)).astype(np.float64)
        span = float(np.ptp(catalog.created_at)) if len(catalog) else 0.0
        age = (split.as_of - catalog.created_at) / (span + 1.0)
        self.popularity = counts - 1e-3 * age

    def scores(self, idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(idx), len(self.catalog)))


class ReverseChronBaseline(Baseline):
    """The old Following timeline: posts by accounts the user follows, newest first (nothing else)."""

    name = "reverse_chron"

    def fit(self, split: EvalSplit, catalog: Catalog) -> None:
        super().fit(split, catalog)
        f = split.train.follows
        src, dst = f["src_id"].to_numpy(), f["dst_id"].to_numpy()
        authors = np.unique(catalog.author_id)
        (s_ok, si), (d_ok, di) = member(split.users, src), member(authors, dst)
        ok = s_ok & d_ok
        self.follows = sparse.csr_matrix((np.ones(ok.sum(), dtype=bool), (si[ok], di[ok])),
                                         shape=(len(split.users), len(authors)))
        self.author_col = np.searchsorted(authors, catalog.author_id)

    def scores(self, idx: np.ndarray) -> np.ndarray:
        in_network = self.follows[idx][:, self.author_col].toarray()
        return np.where(in_network, self.catalog.created_at.astype(np.float64), -np.inf)


class _ImplicitBaseline(Baseline):
    """A model from the `implicit` library fitted on the train-window users × posts matrix."""

    def make(self):
        raise NotImplementedError

    def fit(self, split: EvalSplit, catalog: Catalog) -> None:
        from threadpoolctl import threadpool_limits

        super().fit(split, catalog)
        h = split.train
        self.user_ids = np.sort(h.users["user_id"].to_numpy())
        self.post_ids = np.sort(h.posts["post_id"].to_numpy())
        matrix = interaction_matrix(h, self.user_ids, self.post_ids)
        # implicit parallelises itself (BLAS threads would oversubscribe); its cosine kNN converts a matrix of
        # its own to CSR and warns about it.
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            self.model = self.make()
            self.model.fit(matrix, show_progress=False)
        self.matrix = matrix
        self.user_rows = np.searchsorted(self.user_ids, split.users)
        self.item_cols = np.searchsorted(self.post_ids, catalog.post_id)

    def scores(self, idx: np.ndarray) -> np.ndarray:
        m = self.model
        return np.asarray(m.user_factors[self.user_rows[idx]] @ m.item_factors[self.item_cols].T)


class ALSBaseline(_ImplicitBaseline):
    name = "als"

    def make(self):
        from implicit.als import AlternatingLeastSquares

        return AlternatingLeastSquares(factors=64, regularization=0.05, alpha=2.0, iterations=15, random_state=0)


class BPRBaseline(_ImplicitBaseline):
    name = "bpr"

    def make(self):
        from implicit.bpr import BayesianPersonalizedRanking

        # One thread: implicit's BPR is Hogwild SGD, so more threads make its lists differ run to run.
        return BayesianPersonalizedRanking(factors=64, learning_rate=0.05, regularization=0.01, iterations=100,
                                           random_state=0, num_threads=1)


class ItemKNNBaseline(_ImplicitBaseline):
    """Item-based kNN (cosine, 100 neighbours): score = Σ similarity to the user's train items."""

    name = "item_knn"

    def make(self):
        from implicit.nearest_neighbours import CosineRecommender

        return CosineRecommender(K=100)

    def fit(self, split: EvalSplit, catalog: Catalog) -> None:
        super().fit(split, catalog)
        self.similarity = sparse.csc_matrix(self.model.similarity)[:, self.item_cols].tocsr()

    def scores(self, idx: np.ndarray) -> np.ndarray:
        return (self.matrix[self.user_rows[idx]] @ self.similarity).toarray()


def make_baseline(name: str, seed: int = 0) -> Baseline:
    classes = {"random": lambda: RandomBaseline(seed), "popularity": PopularityBaseline,
               "reverse_chron": ReverseChronBaseline, "als": ALSBaseline, "bpr": BPRBaseline,
               "item_knn": ItemKNNBaseline}
    if name not in classes:
        raise EvalError(f"unknown baseline {name!r}; one of {', '.join(BASELINES)}")
    return classes[name]()
