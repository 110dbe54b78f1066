"""Offline metrics, vectorised over users: ranking (per-user arrays), classification, beyond accuracy,
and bootstrap intervals.

Ranking metrics take a boolean hits matrix (users × list length, True where the recommended post is
in the user's ground truth) and each user's number of relevant posts; they return one value per user
so that intervals can be bootstrapped over users. Definitions follow the reference mimic's:
NDCG gain 1/log2(rank + 1) with the ideal over min(K, |relevant|), P@K = hits/K, R@K = hits/|relevant|,
MRR = 1/rank of the first hit (0 without one), HitRate@K = any hit in the top K.
"""

from __future__ import annotations

import numpy as np

from foryou.monitoring.exposure import gini

# Binary-head metrics live with training (the registry stores them); one definition, re-exported here.
from foryou.training.metrics import auc, calibration_error, log_loss, pr_auc, rce

__all__ = [
    "auc", "author_exposure_gini", "bootstrap", "calibration_curve", "calibration_error", "catalog_coverage",
    "gini", "hit_rate_at_k", "hits_matrix", "intra_list_diversity", "log_loss", "mrr", "ndcg_at_k", "novelty",
    "pr_auc", "precision_at_k", "precision_at_recall", "ranking_metrics", "rce", "recall_at_k",
]


# -- ranking ------------------------------------------------------------------------------------


def hits_matrix(recs: np.ndarray, truth_user: np.ndarray, truth_post: np.ndarray) -> np.ndarray:
    """recs: users × n post ids (−1 = empty slot); truth: aligned (user index, post id) pairs.
    Returns users × n booleans: whether each recommended post is relevant to its user."""
    recs = np.asarray(recs, dtype=np.int64)
    u, n = recs.shape
    ids = np.unique(np.r_[recs.ravel(), np.asarray(truth_post, np.int64)])
    width = np.int64(len(ids) + 1)
    rec_key = np.repeat(np.arange(u, dtype=np.int64), n) * width + np.searchsorted(ids, recs.ravel())
    truth_key = np.asarray(truth_user, np.int64) * width + np.searchsorted(ids, truth_post)
    return (np.isin(rec_key, truth_key) & (recs.ravel() >= 0)).reshape(u, n)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    disc = _discounts(k)
    h = hits[:, :k].astype(np.float64)
    dcg = h @ disc[: h.shape[1]]
    ideal_n = np.minimum(k, np.asarray(n_relevant))
    idcg = np.r_[0.0, np.cumsum(disc)][ideal_n]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def precision_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    return hits[:, :k].sum(1) / k


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    n = np.asarray(n_relevant, dtype=np.float64)
    return np.divide(hits[:, :k].sum(1), n, out=np.zeros(len(n)), where=n > 0)


def hit_rate_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(hits[:, :k].any(1), dtype=np.float64)


def mrr(hits: np.ndarray) -> np.ndarray:
    first = np.argmax(hits, axis=1)
    return np.where(hits.any(1), 1.0 / (first + 1), 0.0)


def ranking_metrics(hits: np.ndarray, n_relevant: np.ndarray, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per-user values of every ranking metric at every K (plus MRR over the whole list)."""
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"ndcg@{k}"] = ndcg_at_k(hits, n_relevant, k)
        out[f"precision@{k}"] = precision_at_k(hits, k)
        out[f"recall@{k}"] = recall_at_k(hits, n_relevant, k)
        out[f"hit_rate@{k}"] = hit_rate_at_k(hits, k)
    out["mrr"] = mrr(hits)
    return out


# -- classification -----------------------------------------------------------------------------


def precision_at_recall(y: np.ndarray, p: np.ndarray, target: float = 0.9) -> float:
    """Precision at the highest threshold whose recall reaches `target` (tied scores enter together)."""
    y = np.asarray(y, dtype=bool)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-np.asarray(p), kind="stable")
    ps, ys = np.asarray(p)[order], y[order]
    last = np.r_[ps[1:] != ps[:-1], True]
    tp = np.cumsum(ys)[last]
    seen = np.flatnonzero(last) + 1
    i = int(np.argmax(tp / y.sum() >= target - 1e-12))
    return float(tp[i] / seen[i])


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    """Equal-mass bins of the predictions: mean prediction, mean outcome and size of each bin.
    `y` may be a probability (a known ground truth) as well as a 0/1 outcome."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    chunks = [c for c in np.array_split(np.argsort(p, kind="stable"), bins) if len(c)]
    return {"predicted": [float(p[c].mean()) for c in chunks], "observed": [float(y[c].mean()) for c in chunks],
            "count": [len(c) for c in chunks]}


# -- beyond accuracy ------------------------------------------------------------------------------


def catalog_coverage(recs: np.ndarray, catalog_size: int) -> float:
    """Share of the candidate catalog that appears in at least one list."""
    r = np.asarray(recs)
    return float(len(np.unique(r[r >= 0])) / catalog_size) if catalog_size else float("nan")


def author_exposure_gini(rec_authors: np.ndarray, catalog_authors: np.ndarray) -> float:
    """Gini of list slots per author over every author with a post in the catalog (zeros included)."""
    authors = np.unique(np.asarray(catalog_authors))
    a = np.asarray(rec_authors).ravel()
    a = a[a >= 0]
    return gini(np.bincount(np.searchsorted(authors, a), minlength=len(authors)))


def intra_list_diversity(rec_topics: np.ndarray) -> np.ndarray:
    """Per list: the share of item pairs with different topics (−1 = empty slot, skipped)."""
    t = np.asarray(rec_topics, dtype=np.int64)
    u, _ = t.shape
    valid = t >= 0
    n = valid.sum(1).astype(np.float64)
    n_topics = int(t.max(initial=-1)) + 1
    rows = np.repeat(np.arange(u), t.shape[1])[valid.ravel()]
    counts = np.bincount(rows * n_topics + t.ravel()[valid.ravel()], minlength=u * max(n_topics, 1))
    counts = counts.reshape(u, max(n_topics, 1)).astype(np.float64)
    same = (counts * (counts - 1)).sum(1)
    pairs = n * (n - 1)
    return np.divide(pairs - same, pairs, out=np.full(u, np.nan), where=pairs > 0)


def novelty(recs: np.ndarray, item_ids: np.ndarray, item_users: np.ndarray, n_users: int) -> np.ndarray:
    """Per list: mean self-information −log2 P(a user engaged with the item), smoothed by +1,
    from the train-side counts of distinct engaging users (`item_ids` sorted)."""
    r = np.asarray(recs, dtype=np.int64)
    pos = np.clip(np.searchsorted(item_ids, r), 0, max(len(item_ids) - 1, 0))
    known = (len(item_ids) > 0) & (np.asarray(item_ids)[pos] == r) if len(item_ids) else np.zeros(r.shape, bool)
    count = np.where(known, np.asarray(item_users)[pos] if len(item_ids) else 0, 0)
    info = -np.log2((count + 1.0) / (n_users + 1.0))
    valid = r >= 0
    n = valid.sum(1)
    return np.divide((info * valid).sum(1), n, out=np.full(len(r), np.nan), where=n > 0)


# -- intervals --------------------------------------------------------------------------------


def bootstrap_indices(n: int, reps: int = 1000, seed: int = 0) -> np.ndarray:
    """reps × n resampled user indices; shared across methods so their intervals are comparable."""
    return np.random.default_rng(seed).integers(0, n, size=(reps, n)) if n else np.empty((reps, 0), np.int64)


def bootstrap(values: np.ndarray, idx: np.ndarray, denominator: np.ndarray | None = None) -> dict[str, float]:
    """Mean (or ratio of sums with `denominator`) and its 95 % percentile interval over resamples."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0 or np.isnan(v).all():
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan")}
    if denominator is None:
        point, stats = float(np.nanmean(v)), np.nanmean(v[idx], axis=1)
    else:
        d = np.asarray(denominator, dtype=np.float64)
        point, stats = float(v.sum() / d.sum()), v[idx].sum(1) / d[idx].sum(1)
    lo, hi = np.nanpercentile(stats, [2.5, 97.5])
    return {"mean": point, "lo": float(lo), "hi": float(hi)}
