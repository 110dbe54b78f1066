"""Ranking and calibration metrics for binary heads (numpy/scipy; ties averaged)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney U statistic with average ranks for ties (NaN if one class)."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def rce(y: np.ndarray, p: np.ndarray) -> float:
    """Relative cross entropy (X's metric): % improvement of log loss over predicting the base rate."""
    base = log_loss(y, np.full(len(y), np.clip(np.mean(y), 1e-7, 1 - 1e-7)))
    return float((1 - log_loss(y, p) / base) * 100) if base > 0 else float("nan")


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision: Σ (recall step) × precision at each threshold, ties grouped."""
    y = np.asarray(y, dtype=bool)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-np.asarray(p), kind="stable")
    ps, ys = np.asarray(p)[order], y[order]
    last = np.r_[ps[1:] != ps[:-1], True]  # the end of each group of tied scores
    tp = np.cumsum(ys)[last]
    fp = np.cumsum(~ys)[last]
    precision = tp / (tp + fp)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-mass bins of the predictions."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    order = np.argsort(p)
    err = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            err += len(chunk) * abs(p[chunk].mean() - y[chunk].mean())
    return float(err / len(p))


def head_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"auc": auc(y, p), "rce": rce(y, p), "pr_auc": pr_auc(y, p), "ece": calibration_error(y, p),
            "positives": int(np.sum(y)), "rows": len(y)}
