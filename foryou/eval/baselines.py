"""Baselines ranked on the same split and candidates as the For You engine.

The candidate catalog is shared by every method: posts known at the split instant that pass the
engine's TooOldFilter (created within `timeline.sources.max_age_hours`). Per user, a baseline never
lists the user's own posts, posts already shown to them (impressions) or posts they already engaged
with before the split. Everything is fitted on `split.train` (a History: nothing at or after the split).

random · popularity (train-window engagements, all time) · recent popularity (the same in a window
before the split, the window tuned) · reverse-chronological in-network · implicit ALS · BPR (ours,
Rendle's uniform negatives: eval/bpr.py) · item-kNN (implicit's cosine ItemItem) · EASE (eval/ease.py).
Every hyperparameter is a constructor argument; eval/tuning.py picks them on a validation split. All are
deterministic: seeded, one thread where a library's threads would race. LightFM is left out: its
source-only release does not build here.
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
from foryou.vocab import DAY, HOUR, NEGATIVE

BASELINES = ("random", "popularity", "recent_popularity", "reverse_chron", "als", "bpr", "item_knn", "ease")


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
    m.sort_indices()
    return m


@dataclass
class TrainMatrix:
    """The users × posts matrix of a split's history, with the rows of its evaluated users and the columns
    of its catalog (built once per split: every grid point of a tuning run reuses it)."""

    matrix: sparse.csr_matrix
    user_rows: np.ndarray
    item_cols: np.ndarray


def train_matrix(split: EvalSplit, catalog: Catalog) -> TrainMatrix:
    cached = getattr(split, "_train_matrix", None)
    if cached is not None and cached[0] is catalog:
        return cached[1]
    h = split.train
    user_ids = np.sort(h.users["user_id"].to_numpy())
    post_ids = np.sort(h.posts["post_id"].to_numpy())
    tm = TrainMatrix(interaction_matrix(h, user_ids, post_ids), np.searchsorted(user_ids, split.users),
                     np.searchsorted(post_ids, catalog.post_id))
    split._train_matrix = (catalog, tm)  # type: ignore[attr-defined]
    return tm


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
    """Engagements per catalog post (non-negative kinds) in the `window_days` before the split (all of the
    history when None); ties by all-time engagements, then newer first."""

    name = "popularity"

    def __init__(self, window_days: float | None = None):
        self.window_days = window_days

    def fit(self, split: EvalSplit, catalog: Catalog) -> None:
        super().fit(split, catalog)
        e = split.train.engagements
        e = e.filter(pc.invert(pc.is_in(e["kind"], pa.array(list(NEGATIVE)))))
        ok, qi = member(catalog.post_id, e["post_id"].to_numpy())
        counts = np.bincount(qi[ok], minlength=len(catalog)).astype(np.float64)
        recent = counts
        if self.window_days is not None:
            since = split.as_of - int(self.window_days * DAY)
            r = ok & (e["created_at"].to_numpy() >= since)
            recent = np.bincount(qi[r], minlength=len(catalog)).astype(np.float64)
        span = float(np.ptp(catalog.created_at)) if len(catalog) else 0.0
        age = (split.as_of - catalog.created_at) / (span + 1.0)
        self.popularity = recent + (0.5 * counts / (counts.max(initial=0) + 1) if self.window_days else 0) - 1e-3 * age

    def scores(self, idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(idx), len(self.catalog)))


class RecentPopularityBaseline(PopularityBaseline):
    """Popularity in a window before the split, the window tuned (default 7 days)."""

    name = "recent_popularity"

    def __init__(self, window_days: float | None = 7.0):
        super().__init__(window_days)


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


class _FactorBaseline(Baseline):
    """A model fitted on the history's users × posts matrix, scored by user · item factors."""

    def make(self):
        raise NotImplementedError

    def fit(self, split: EvalSplit, catalog: Catalog) -> None:
        from threadpoolctl import threadpool_limits

        super().fit(split, catalog)
        tm = train_matrix(split, catalog)
        self.matrix, self.user_rows, self.item_cols = tm.matrix, tm.user_rows, tm.item_cols
        # One thread everywhere: implicit's kernels and BLAS in several threads order floating-point sums
        # differently run to run. Its cosine kNN converts a matrix of its own to CSR and warns about it.
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            self.model = self.make()
            self.model.fit(self.matrix.copy(), show_progress=False)

    def scores(self, idx: np.ndarray) -> np.ndarray:
        m = self.model
        return np.asarray(m.user_factors[self.user_rows[idx]] @ m.item_factors[self.item_cols].T)


class ALSBaseline(_FactorBaseline):
    """implicit's ALS (Hu, Koren & Volinsky 2008): confidence 1 + alpha·count, conjugate-gradient solves."""

    name = "als"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0, iterations: int = 15,
                 seed: int = 0):
        self.params = dict(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations)
        self.seed = seed

    def make(self):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(**self.params, random_state=self.seed, num_threads=1)


class BPRBaseline(_FactorBaseline):
    """BPR-MF as Rendle et al. (2009) define it (eval/bpr.py): implicit's BPR draws its negatives in
    proportion to popularity, which pushes the popular items a user will like down the list."""

    name = "bpr"

    def __init__(self, factors: int = 64, learning_rate: float = 0.05, regularization: float = 0.001,
                 iterations: int = 60, seed: int = 0):
        self.params = dict(factors=factors, learning_rate=learning_rate, regularization=regularization,
                           iterations=iterations)
        self.seed = seed

    def make(self):
        from foryou.eval.bpr import BPR

        return BPR(**self.params, seed=self.seed)


class ItemKNNBaseline(_FactorBaseline):
    """Item-based kNN (cosine, K neighbours): score = Σ similarity to the user's history items."""

    name = "item_knn"

    def __init__(self, neighbours: int = 100):
        self.neighbours = neighbours

    def make(self):
        from implicit.nearest_neighbours import CosineRecommender

        return CosineRecommender(K=self.neighbours, num_threads=1)

    def fit(self, split: EvalSplit, catalog: Catalog) -> None:
        super().fit(split, catalog)
        self.similarity = sparse.csc_matrix(self.model.similarity)[:, self.item_cols].tocsr()

    def scores(self, idx: np.ndarray) -> np.ndarray:
        return (self.matrix[self.user_rows[idx]] @ self.similarity).toarray()


def make_baseline(name: str, seed: int = 0, **params) -> Baseline:
    """A baseline by name with the given hyperparameters (its defaults otherwise)."""
    from foryou.eval.ease import EASEBaseline

    classes: dict[str, Callable[..., Baseline]] = {
        "random": lambda: RandomBaseline(seed), "popularity": PopularityBaseline,
        "recent_popularity": RecentPopularityBaseline, "reverse_chron": ReverseChronBaseline,
        "als": lambda **p: ALSBaseline(**p, seed=seed), "bpr": lambda **p: BPRBaseline(**p, seed=seed),
        "item_knn": ItemKNNBaseline, "ease": EASEBaseline}
    if name not in classes:
        raise EvalError(f"unknown baseline {name!r}; one of {', '.join(BASELINES)}")
    return classes[name](**params)
