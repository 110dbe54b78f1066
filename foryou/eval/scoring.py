"""Metrics of ranked lists on one split: every method's ranking, engagement and beyond-accuracy metrics,
retrieval recall per funnel stage, and the same per user segment (cold / warm, `protocols.SEGMENTS`),
each with bootstrap 95 % intervals over the segment's users."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from foryou.data.lookup import member
from foryou.eval import metrics as M
from foryou.eval.baselines import Catalog
from foryou.eval.protocols import SEGMENTS, EvalSplit
from foryou.eval.system import Pages, Retrieved

SYSTEM = "foryou"


def summary(values: np.ndarray, idx: np.ndarray, denominator: np.ndarray | None = None) -> dict[str, float]:
    return {k: round(v, 6) for k, v in M.bootstrap(values, idx, denominator).items()}


def method_metrics(split: EvalSplit, catalog: Catalog, recs: np.ndarray, ids: np.ndarray, s: np.ndarray,
                    idx: np.ndarray, probabilities: bool) -> dict[str, Any]:
    k_max = max(split.k_values)
    hits = M.hits_matrix(recs[:, :k_max], split.truth_user, split.truth_post)
    ranking = {k: summary(v, idx) for k, v in M.ranking_metrics(hits, split.n_relevant, split.k_values).items()}
    # Engagement prediction on the method's own list (the mimic's: label = in the user's ground truth).
    valid = ids >= 0
    y = M.hits_matrix(ids, split.truth_user, split.truth_post)[valid]
    p = np.nan_to_num(s[valid], nan=0.0, neginf=0.0)
    engagement = {"rows": int(valid.sum()), "positives": int(y.sum()), "auc": M.auc(y, p), "pr_auc": M.pr_auc(y, p),
                  "precision@recall0.9": M.precision_at_recall(y, p)}
    if probabilities and len(y):
        engagement.update(rce=M.rce(y, p), ece=M.calibration_error(y, p), mean_predicted=float(p.mean()),
                          mean_observed=float(y.mean()))
    engagement = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in engagement.items()}
    in_cat, pos = member(catalog.post_id, recs.ravel())
    in_cat, pos = in_cat.reshape(recs.shape), np.where(in_cat, pos, 0).reshape(recs.shape)
    topics = np.where(in_cat, catalog.topic[pos] if len(catalog) else -1, -1)
    authors = np.where(in_cat, catalog.author_id[pos] if len(catalog) else -1, -1)
    item_ids, item_users = item_popularity(split)
    n_users_total = split.train.users.num_rows
    beyond = {
        "catalog_coverage": round(M.catalog_coverage(np.where(in_cat, recs, -1), len(catalog)), 6),
        "author_gini": round(M.author_exposure_gini(authors, catalog.author_id), 6),
        "intra_list_diversity": summary(M.intra_list_diversity(topics), idx),
        "novelty": summary(M.novelty(recs, item_ids, item_users, n_users_total), idx),
        "mean_list_length": round(float((recs >= 0).sum(1).mean()), 3),
    }
    return {"ranking": ranking, "engagement": engagement, "beyond": beyond}


def item_popularity(split: EvalSplit) -> tuple[np.ndarray, np.ndarray]:
    """(post ids, distinct engaging users before the split): novelty's popularity."""
    e = split.train.engagements
    pairs = np.unique(np.stack([e["post_id"].to_numpy(), e["user_id"].to_numpy()], 1), axis=0) if e.num_rows \
        else np.empty((0, 2), np.int64)
    return np.unique(pairs[:, 0], return_counts=True)


def retrieval_recall(r: Retrieved, pages: Pages, split: EvalSplit, idx: np.ndarray) -> dict[str, Any]:
    """Recall of each retrieval stage against the test-window engagements a page served at the split
    could hold: per user |candidates ∩ relevant| / |relevant|, K = that stage's candidate count."""
    stages = {**r.sources, "merged": r.merged, "after_filters": r.filtered,
              "page": pages.post_id}
    n_rel = split.n_relevant.astype(np.float64)
    rows = {}
    for name, ids in stages.items():
        hits = M.hits_matrix(ids, split.truth_user, split.truth_post).sum(1) if ids.shape[1] else \
            np.zeros(len(split.users), np.int64)
        k = (ids >= 0).sum(1)
        rows[name] = {"candidates_per_user": round(float(k.mean()), 1), "recall": summary(hits / n_rel, idx),
                      "recall_pooled": round(float(hits.sum() / n_rel.sum()), 6), "hits": int(hits.sum()),
                      "users_with_candidates": int((k > 0).sum())}
    return {"what": "recall@K per retrieval stage: per user |candidates ∩ test-window engagements on posts that "
                    "existed at the split| / |those engagements|, K = the stage's candidates for that user "
                    "(each source after its light-ranker cut; merged = their deduplicated union; after_filters = "
                    "what the heavy ranker scores; page = the served page); mean over users with a bootstrap "
                    "95 % interval, pooled = Σ hits / Σ relevant", "stages": rows}


def segment_metrics(split: EvalSplit, catalog: Catalog, lists: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                    retrieved: Retrieved, pages: Pages, reps: int, seed: int) -> dict[str, Any]:
    """Every method's metrics (and our retrieval recall) for the cold and the warm users separately.
    `lists`: method → (its page, the list its engagement metrics read, that list's scores)."""
    prior = split.prior_positives()
    out: dict[str, Any] = {"all": {"users": len(split.users), "definition": "every evaluated user (see methods)"}}
    for seg, definition in SEGMENTS.items():
        mask = split.segment_mask(seg)
        entry: dict[str, Any] = {"users": int(mask.sum()), "definition": definition}
        if mask.any():
            sub = split.subset(mask)
            idx = M.bootstrap_indices(len(sub.users), reps, seed)
            entry["relevant_pairs"] = len(sub.truth_post)
            entry["median_prior_positives"] = float(np.median(prior[mask]))
            entry["methods"] = {name: method_metrics(sub, catalog, recs[mask], ids[mask], s[mask], idx,
                                                     probabilities=name == SYSTEM)
                                for name, (recs, ids, s) in lists.items()}
            r = Retrieved({k: v[mask] for k, v in retrieved.sources.items()}, retrieved.merged[mask],
                          retrieved.filtered[mask])
            stages = retrieval_recall(r, dataclasses.replace(pages, post_id=pages.post_id[mask]), sub, idx)["stages"]
            entry["retrieval"] = {name: st["recall"] for name, st in stages.items()}
        out[seg] = entry
    return out
