"""Logistic-regression models around the heavy ranker (REFERENCE.md): the light ranker, the trust-and-
safety classifiers and a learned RealGraph. Each trainer returns `(tensors, config, metrics)` ready for
`ModelRegistry.register(name, tensors, config=config, metrics=metrics, ...)`; `tensors` is the state
dict of a `foryou.models.logistic.LogisticRegression` (rebuild with `logistic_from_tensors`).

- Light ranker: two models (in-network / out-of-network rows, split by the `in_network` feature) on
  cheap features. Label: "engaged" = any of reply / like / profile_click / repost / click, as a
  *weighted positive*: target 1 when any of those heads fired, sample weight = the largest REFERENCE
  label weight among the heads that fired (reply 9, like 1, profile click 1, repost 1, click 0.3);
  negatives weigh 1. A click-only impression therefore counts 0.3 of a positive and a reply 9 — one
  binary model whose ranking favours costly engagements, instead of a regression on the weighted sum.
- Safety: one classifier per post label (NSFW, toxic, spam, misinfo) on features that never include
  the post's own labels: the author's point-in-time label history (`author_label_history`), media /
  link / length, and the author's negative-feedback rate from the FeatureStore at creation time.
- RealGraph: the classifier REFERENCE describes (decayed counts → interaction in the next window)
  on exactly `RealGraph.features`; `realgraph_coefficients` turns it into `RealGraphCoefficients`.
"""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from foryou.data.dataset import Dataset
from foryou.data.lookup import member, rows_of
from foryou.data.split import Window, history
from foryou.features import FEATURE_NAMES, FeatureStore
from foryou.graph.realgraph import FEATURES as REALGRAPH_FEATURES
from foryou.graph.realgraph import RealGraph, RealGraphCoefficients
from foryou.models.logistic import LogisticRegression, fit_logistic, logistic_from_tensors, predict_proba
from foryou.training.heavy_ranker import Rows
from foryou.training.metrics import auc, head_metrics, pr_auc
from foryou.vocab import RANKER_HEADS, SAFETY_LABELS

Trained = tuple[dict[str, torch.Tensor], dict, dict]

LIGHT_LABEL_WEIGHTS: dict[str, float] = {"reply": 9.0, "like": 1.0, "profile_click": 1.0, "repost": 1.0,
                                         "click": 0.3}
LIGHT_FEATURES: tuple[str, ...] = (
    "age_log_h",  # post age
    "post_positive_log", "post_impressions_log", "post_rate", "post_positive_24h_log", "post_negative_rate",
    "has_media", "has_link",
    "author_rate", "author_impressions_log", "author_negative_rate", "author_followers_log",  # reputation
    "is_nsfw", "is_toxic", "is_spam", "is_misinfo",
)
SAFETY_FEATURES: tuple[str, ...] = (
    *(f"author_prior_{lb.removeprefix('is_')}_share" for lb in SAFETY_LABELS),
    "author_prior_posts_log", "has_media", "has_link", "length_log", "author_negative_rate",
)
SAFETY_PSEUDO_COUNT = 2.0
REALGRAPH_POSITIVE = ("like", "repost", "reply", "profile_click", "click")
L2 = 1e-4


def _tensors(module: LogisticRegression) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def _round(m: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}


# -- light ranker -----------------------------------------------------------------------------------


def light_labels(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(target, sample weight) from heavy-ranker label columns (rows × RANKER_HEADS); see the module doc."""
    target = np.zeros(len(y), dtype=np.float32)
    weight = np.zeros(len(y), dtype=np.float32)
    for head, w in LIGHT_LABEL_WEIGHTS.items():
        fired = y[:, RANKER_HEADS.index(head)] > 0
        target[fired] = 1.0
        weight[fired] = np.maximum(weight[fired], w)
    weight[target == 0] = 1.0
    return target, weight


def train_light_ranker(train: Rows, valid: Rows, test: Rows, store: FeatureStore | None = None,
                       *, l2: float = L2, seed: int = 0) -> dict[str, Trained]:
    """{"light_ranker_in_network": ..., "light_ranker_out_of_network": ...}; metrics on valid and test
    ("any positive" AUC / RCE / PR-AUC). `store` is only recorded (its as_of) in the config."""
    cols = [FEATURE_NAMES.index(f) for f in LIGHT_FEATURES]
    net_col = FEATURE_NAMES.index("in_network")
    out: dict[str, Trained] = {}
    for name, in_net in (("light_ranker_in_network", True), ("light_ranker_out_of_network", False)):
        def part(rows: Rows, in_net=in_net) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            keep = (rows.x[:, net_col] > 0.5) == in_net
            target, weight = light_labels(rows.y[keep])
            return rows.x[keep][:, cols], target, weight

        x, y, w = part(train)
        module, info = fit_logistic(x, y, w, l2=l2, seed=seed)
        metrics: dict = {"fit": info, "train_positive_share": round(float(y.mean()), 4) if len(y) else float("nan")}
        for split, rows in (("valid", valid), ("test", test)):
            xe, ye, _ = part(rows)
            metrics[split] = _round(head_metrics(ye, predict_proba(module, xe)))
        config = {"model": "logistic_regression", "segment": "in_network" if in_net else "out_of_network",
                  "features": list(LIGHT_FEATURES), "label": "any engagement, weighted positive",
                  "label_weights": dict(LIGHT_LABEL_WEIGHTS), "l2": l2, "seed": seed,
                  "store_as_of": None if store is None else int(store.as_of)}
        out[name] = (_tensors(module), config, metrics)
    return out


# -- trust and safety -------------------------------------------------------------------------------


def author_label_history(author: np.ndarray, created_at: np.ndarray, labels: np.ndarray,
                         prior: np.ndarray, pseudo_count: float = SAFETY_PSEUDO_COUNT) -> tuple[np.ndarray, np.ndarray]:
    """Per post: (smoothed share of the author's earlier posts carrying each label (posts × labels),
    number of earlier posts). "Earlier" is strictly before the post's created_at: the post itself,
    later posts and posts created in the same second are never counted.

    share = (earlier labelled + pseudo_count · prior) / (earlier posts + pseudo_count). Vectorised:
    sort by (author, created_at), cumulative counts, then read each (author, second) group's count
    at the group's first row minus the author's first row."""
    author = np.asarray(author, np.int64)
    created_at = np.asarray(created_at, np.int64)
    labels = np.asarray(labels, np.float64).reshape(len(author), -1)
    prior = np.broadcast_to(np.asarray(prior, np.float64), (labels.shape[1],))
    n = len(author)
    if n == 0:
        return np.empty((0, labels.shape[1])), np.empty(0)
    order = np.lexsort((created_at, author))
    a, t, lab = author[order], created_at[order], labels[order]
    cum = np.vstack([np.zeros((1, lab.shape[1])), np.cumsum(lab, axis=0)])  # cum[i] = Σ lab[:i]
    idx = np.arange(n)
    new_author = np.r_[True, a[1:] != a[:-1]]
    new_group = new_author | np.r_[True, t[1:] != t[:-1]]
    author_start = np.maximum.accumulate(np.where(new_author, idx, 0))
    group_start = np.maximum.accumulate(np.where(new_group, idx, 0))
    prev_posts = (group_start - author_start).astype(np.float64)
    prev_labelled = cum[group_start] - cum[author_start]
    share = (prev_labelled + pseudo_count * prior) / (prev_posts + pseudo_count)[:, None]
    out_share, out_prev = np.empty_like(share), np.empty(n)
    out_share[order], out_prev[order] = share, prev_posts
    return out_share, out_prev


def safety_features(posts: pa.Table, store: FeatureStore, prior: np.ndarray) -> np.ndarray:
    """SAFETY_FEATURES for every post of `posts` (all must be in `store`), at each post's creation time."""
    author = posts["author_id"].to_numpy()
    t = posts["created_at"].to_numpy()
    labels = np.stack([posts[lb].to_numpy(zero_copy_only=False).astype(np.float64) for lb in SAFETY_LABELS], 1)
    share, prev = author_label_history(author, t, labels, prior)
    post_rows = rows_of(store.post_id, posts["post_id"].to_numpy(), "post")
    author_rows = store.author_row[post_rows]
    f = store.compute(author_rows, post_rows, t)  # any valid user row; only post/author columns are read
    pick = {name: f[:, FEATURE_NAMES.index(name)] for name in ("has_media", "has_link", "length_log",
                                                               "author_negative_rate")}
    cols = [*share.T, np.log1p(prev), *(pick[name] for name in SAFETY_FEATURES[len(SAFETY_LABELS) + 1:])]
    return np.stack(cols, axis=1).astype(np.float32)


def train_safety(dataset: Dataset, store: FeatureStore, windows: tuple[Window, Window, Window],
                 *, l2: float = L2, seed: int = 0) -> dict[str, Trained]:
    """{"safety_nsfw", "safety_toxic", "safety_spam", "safety_misinfo"}: trained on posts created in the
    train window, evaluated (AUC / PR-AUC) on test-window posts. The smoothing prior of the author
    history is each label's share among train-window posts (stored in the config)."""
    train_w, _, test_w = windows
    posts = dataset.posts
    posts = posts.filter(pc.is_in(posts["post_id"], pa.array(store.post_id)))  # posts the store knows
    t = posts["created_at"]
    in_train = train_w.mask(t).to_numpy(zero_copy_only=False)
    in_test = test_w.mask(t).to_numpy(zero_copy_only=False)
    labels = np.stack([posts[lb].to_numpy(zero_copy_only=False).astype(np.float32) for lb in SAFETY_LABELS], 1)
    prior = labels[in_train].mean(0) if in_train.any() else np.full(len(SAFETY_LABELS), 0.01, np.float32)
    prior = np.clip(prior, 1e-4, 0.5)
    t0 = time.perf_counter()
    x = safety_features(posts, store, prior)
    feature_seconds = round(time.perf_counter() - t0, 3)
    out: dict[str, Trained] = {}
    for j, lb in enumerate(SAFETY_LABELS):
        module, info = fit_logistic(x[in_train], labels[in_train, j], l2=l2, seed=seed)
        p = predict_proba(module, x[in_test])
        y = labels[in_test, j]
        metrics = {"fit": info, "feature_seconds": feature_seconds,
                   "test": _round({"auc": auc(y, p), "pr_auc": pr_auc(y, p), "positives": int(y.sum()),
                                   "rows": len(y), "base_rate": float(y.mean()) if len(y) else float("nan")}),
                   "train_positives": int(labels[in_train, j].sum())}
        config = {"model": "logistic_regression", "label": lb, "features": list(SAFETY_FEATURES),
                  "author_history": {"prior": [float(v) for v in prior], "pseudo_count": SAFETY_PSEUDO_COUNT,
                                     "labels": list(SAFETY_LABELS)},
                  "l2": l2, "seed": seed}
        out[f"safety_{lb.removeprefix('is_')}"] = (_tensors(module), config, metrics)
    return out


# -- RealGraph --------------------------------------------------------------------------------------


def realgraph_coefficients(tensors: dict[str, torch.Tensor]) -> RealGraphCoefficients:
    """The learned model as RealGraph's coefficients (standardisation folded in), so that
    `RealGraph.build(h, coefficients=realgraph_coefficients(tensors))` weighs with it."""
    w, b = logistic_from_tensors(tensors).raw_coefficients()
    return RealGraphCoefficients.learned(w[0], b[0])


def train_realgraph(dataset: Dataset, windows: tuple[Window, Window, Window], *, half_life_days: float = 7.0,
                    holdout: float = 0.2, l2: float = L2, seed: int = 0) -> Trained:
    """Decayed counts at train_end → P(a positive engagement on the target's posts in [train_end, valid_end)).

    Pairs: each user's follows plus every account they interacted with before train_end. 20 % of users
    (seeded) are held out; metrics compare the model's AUC with the heuristic weight's on them."""
    train_w, valid_w, _ = windows
    t_end, v_end = int(train_w.end), int(valid_w.end)
    t0 = time.perf_counter()
    h = history(dataset, t_end)
    rg = RealGraph.build(h, half_life_days)
    users = np.sort(h.users["user_id"].to_numpy())  # RealGraph's user rows
    n = len(users)
    xs, us, ts = [], [], []
    for u in range(n):
        interacted = rg._p_indices[rg._p_indptr[u]:rg._p_indptr[u + 1]]  # interacted accounts (same package)
        targets = np.union1d(rg.follows(u), interacted)
        targets = targets[targets != u]
        if len(targets):
            xs.append(rg.features(u, targets, t_end))
            us.append(np.full(len(targets), u, np.int64))
            ts.append(targets)
    x = np.concatenate(xs).astype(np.float32) if xs else np.empty((0, len(REALGRAPH_FEATURES)), np.float32)
    u = np.concatenate(us) if us else np.empty(0, np.int64)
    tgt = np.concatenate(ts) if ts else np.empty(0, np.int64)

    # Labels: positive engagements in the validation window by known users on known authors' posts.
    e = valid_w.rows(dataset, "engagements")
    e = e.filter(pc.is_in(e["kind"], pa.array(list(REALGRAPH_POSITIVE))))
    posts = dataset.posts
    p_sorted = np.argsort(posts["post_id"].to_numpy())
    post_ids = posts["post_id"].to_numpy()[p_sorted]
    post_author = posts["author_id"].to_numpy()[p_sorted]
    e_author_id = post_author[rows_of(post_ids, e["post_id"].to_numpy(), "post")]
    (u_known, e_u), (a_known, e_a) = member(users, e["user_id"].to_numpy()), member(users, e_author_id)
    known = u_known & a_known
    y = np.isin(u * n + tgt, np.unique(e_u[known] * n + e_a[known])).astype(np.float32)
    build_seconds = round(time.perf_counter() - t0, 3)

    rng = np.random.default_rng(seed)
    held = np.zeros(n, dtype=bool)
    held[rng.permutation(n)[:round(holdout * n)]] = True
    test = held[u]
    module, info = fit_logistic(x[~test], y[~test], l2=l2, seed=seed)
    p = predict_proba(module, x[test])
    heuristic = RealGraphCoefficients()
    h = 1.0 / (1.0 + np.exp(-(x[test].astype(np.float64) @ heuristic.vector() + heuristic.bias)))
    metrics = {"fit": info, "build_seconds": build_seconds, "pairs": len(y), "train_pairs": int((~test).sum()),
               "test": _round({"auc": auc(y[test], p), "pr_auc": pr_auc(y[test], p),
                               "heuristic_auc": auc(y[test], h), "heuristic_pr_auc": pr_auc(y[test], h),
                               "positives": int(y[test].sum()), "rows": int(test.sum())}),
               "train_positives": int(y[~test].sum())}
    tensors = _tensors(module)
    coefficients = realgraph_coefficients(tensors).model_dump()
    config = {"model": "logistic_regression", "features": list(REALGRAPH_FEATURES), "half_life_days": half_life_days,
              "label": f"any of {list(REALGRAPH_POSITIVE)} on the target's posts in [train_end, valid_end)",
              "features_at": t_end, "label_window": [t_end, v_end], "holdout_users": holdout, "l2": l2,
              "seed": seed, "coefficients": coefficients}
    return tensors, config, metrics
