"""Logistic-regression models around the heavy ranker (REFERENCE.md): the light ranker and a learned
RealGraph. Each trainer returns `(tensors, config, metrics)` ready for
`ModelRegistry.register(name, tensors, config=config, metrics=metrics, ...)`; `tensors` is the state
dict of a `foryou.models.logistic.LogisticRegression` (rebuild with `logistic_from_tensors`).

- Light ranker: two models (in-network / out-of-network rows, split by the `in_network` feature) on
  cheap features. Label: "engaged" = any of reply / like / profile_click / repost / click, as a
  *weighted positive*: target 1 when any of those heads fired, sample weight = the largest REFERENCE
  label weight among the heads that fired (reply 9, like 1, profile click 1, repost 1, click 0.3);
  negatives weigh 1. A click-only impression therefore counts 0.3 of a positive and a reply 9 — one
  binary model whose ranking favours costly engagements, instead of a regression on the weighted sum.
- RealGraph: the classifier REFERENCE describes (decayed counts → interaction in the next window)
  on exactly `RealGraph.features`; `realgraph_coefficients` turns it into `RealGraphCoefficients`.
"""

from __future__ import annotations

import time
from typing import Any

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
from foryou.models.logistic import LogisticRegression, logistic_from_tensors, predict_proba
from foryou.training.heavy_ranker import Rows
from foryou.training.logistic import fit_logistic
from foryou.training.metrics import auc, head_metrics, pr_auc
from foryou.vocab import RANKER_HEADS, SAFETY_LABELS

Trained = tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]

LIGHT_LABEL_WEIGHTS: dict[str, float] = {"reply": 9.0, "like": 1.0, "profile_click": 1.0, "repost": 1.0,
                                         "click": 0.3}
LIGHT_FEATURES: tuple[str, ...] = (
    "age_log_h",  # post age
    "post_positive_log", "post_impressions_log", "post_rate", "post_positive_24h_log", "post_negative_rate",
    "has_media", "has_link",
    "author_rate", "author_impressions_log", "author_negative_rate", "author_followers_log",  # reputation
    *SAFETY_LABELS,
)
REALGRAPH_POSITIVE = ("like", "repost", "reply", "profile_click", "click")
L2 = 1e-4


def _tensors(module: LogisticRegression) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def _round(m: dict[str, Any]) -> dict[str, Any]:
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
        def part(rows: Rows, in_net: bool = in_net) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            keep = (rows.x[:, net_col] > 0.5) == in_net
            target, weight = light_labels(rows.y[keep])
            return rows.x[keep][:, cols], target, weight

        x, y, w = part(train)
        module, info = fit_logistic(x, y, w, l2=l2, seed=seed)
        metrics: dict[str, Any] = {"fit": info,
                                   "train_positive_share": round(float(y.mean()), 4) if len(y) else float("nan")}
        for split, rows in (("valid", valid), ("test", test)):
            xe, ye, _ = part(rows)
            metrics[split] = _round(head_metrics(ye, predict_proba(module, xe)))
        config = {"model": "logistic_regression", "segment": "in_network" if in_net else "out_of_network",
                  "features": list(LIGHT_FEATURES), "label": "any engagement, weighted positive",
                  "label_weights": dict(LIGHT_LABEL_WEIGHTS), "l2": l2, "seed": seed,
                  "store_as_of": None if store is None else int(store.as_of)}
        out[name] = (_tensors(module), config, metrics)
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
    if train_w.end is None or valid_w.end is None:
        raise ValueError("RealGraph's labels need a bounded train and validation window")
    t_end, v_end = int(train_w.end), int(valid_w.end)
    t0 = time.perf_counter()
    h = history(dataset, t_end)
    users = np.sort(h.users["user_id"].to_numpy())  # RealGraph's user rows
    n = len(users)
    x, user_row, target_row = _realgraph_pairs(RealGraph.build(h, half_life_days), n, t_end)
    y = np.isin(user_row * n + target_row, _engaged_pairs(dataset, valid_w, users)).astype(np.float32)
    build_seconds = round(time.perf_counter() - t0, 3)

    rng = np.random.default_rng(seed)
    held = np.zeros(n, dtype=bool)
    held[rng.permutation(n)[:round(holdout * n)]] = True
    test = held[user_row]
    module, info = fit_logistic(x[~test], y[~test], l2=l2, seed=seed)
    p = predict_proba(module, x[test])
    heuristic = RealGraphCoefficients()
    p_heuristic = 1.0 / (1.0 + np.exp(-(x[test].astype(np.float64) @ heuristic.vector() + heuristic.bias)))
    metrics = {"fit": info, "build_seconds": build_seconds, "pairs": len(y), "train_pairs": int((~test).sum()),
               "test": _round({"auc": auc(y[test], p), "pr_auc": pr_auc(y[test], p),
                               "heuristic_auc": auc(y[test], p_heuristic),
                               "heuristic_pr_auc": pr_auc(y[test], p_heuristic),
                               "positives": int(y[test].sum()), "rows": int(test.sum())}),
               "train_positives": int(y[~test].sum())}
    tensors = _tensors(module)
    coefficients = realgraph_coefficients(tensors).model_dump()
    config = {"model": "logistic_regression", "features": list(REALGRAPH_FEATURES), "half_life_days": half_life_days,
              "label": f"any of {list(REALGRAPH_POSITIVE)} on the target's posts in [train_end, valid_end)",
              "features_at": t_end, "label_window": [t_end, v_end], "holdout_users": holdout, "l2": l2,
              "seed": seed, "coefficients": coefficients}
    return tensors, config, metrics


def _realgraph_pairs(rg: RealGraph, n_users: int, now: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, user row, target row) for every user's follows and interacted accounts (not themselves)."""
    arrays = rg.to_arrays()
    indptr, indices = arrays["pair_indptr"], arrays["pair_indices"]  # CSR: the accounts each user interacted with
    xs, us, ts = [], [], []
    for u in range(n_users):
        targets = np.union1d(rg.follows(u), indices[indptr[u]:indptr[u + 1]])
        targets = targets[targets != u]
        if len(targets):
            xs.append(rg.features(u, targets, now))
            us.append(np.full(len(targets), u, np.int64))
            ts.append(targets)
    x = np.concatenate(xs).astype(np.float32) if xs else np.empty((0, len(REALGRAPH_FEATURES)), np.float32)
    empty = np.empty(0, np.int64)
    return x, np.concatenate(us) if us else empty, np.concatenate(ts) if ts else empty


def _engaged_pairs(dataset: Dataset, window: Window, users: np.ndarray) -> np.ndarray:
    """Unique keys user_row · n + author_row of the window's positive engagements by known users on
    known authors' posts (rows in the sorted `users`)."""
    e = window.rows(dataset, "engagements")
    e = e.filter(pc.is_in(e["kind"], pa.array(list(REALGRAPH_POSITIVE))))
    posts = dataset.posts
    p_sorted = np.argsort(posts["post_id"].to_numpy())
    post_ids = posts["post_id"].to_numpy()[p_sorted]
    post_author = posts["author_id"].to_numpy()[p_sorted]
    e_author_id = post_author[rows_of(post_ids, e["post_id"].to_numpy(), "post")]
    (u_known, e_u), (a_known, e_a) = member(users, e["user_id"].to_numpy()), member(users, e_author_id)
    known = u_known & a_known
    return np.unique(e_u[known] * len(users) + e_a[known])
