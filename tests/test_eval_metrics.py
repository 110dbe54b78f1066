"""Evaluation metrics: hand-computed answers, and scikit-learn where it has the same metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from foryou.eval import metrics as M


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(3)
    y = rng.random(2_000) < 0.2
    p = np.round(np.clip(0.3 * y + rng.random(2_000) * 0.7, 0, 1), 2)  # rounded: many ties
    return y, p


def test_hits_matrix_marks_relevant_posts_per_user():
    recs = np.array([[10, 11, 12], [12, 10, -1]])
    hits = M.hits_matrix(recs, truth_user=np.array([0, 0, 1]), truth_post=np.array([12, 99, 10]))
    assert hits.tolist() == [[False, False, True], [False, True, False]]


def test_ranking_metrics_by_hand():
    # user 0: hits at ranks 1 and 3 of 4, |gt| = 3; user 1: no hit, |gt| = 1; user 2: hit at rank 2, |gt| = 1
    hits = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
    n_rel = np.array([3, 1, 1])
    ndcg = M.ndcg_at_k(hits, n_rel, 4)
    ideal0 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg[0] == pytest.approx((1 + 1 / math.log2(4)) / ideal0)
    assert ndcg[1] == 0.0
    assert ndcg[2] == pytest.approx(1 / math.log2(3))  # ideal over min(K, |gt|) = 1 slot
    assert M.ndcg_at_k(hits, n_rel, 2)[0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert M.precision_at_k(hits, 4).tolist() == [0.5, 0.0, 0.25]
    assert M.recall_at_k(hits, n_rel, 4).tolist() == pytest.approx([2 / 3, 0.0, 1.0])
    assert M.recall_at_k(hits, n_rel, 1).tolist() == pytest.approx([1 / 3, 0.0, 0.0])
    assert M.hit_rate_at_k(hits, 1).tolist() == [1.0, 0.0, 0.0]
    assert M.mrr(hits).tolist() == [1.0, 0.0, 0.5]
    out = M.ranking_metrics(hits, n_rel, (1, 4))
    assert set(out) == {"ndcg@1", "precision@1", "recall@1", "hit_rate@1", "ndcg@4", "precision@4", "recall@4",
                        "hit_rate@4", "mrr"}


def test_ndcg_matches_sklearn_for_binary_relevance():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 50, 30, 10
    rel = rng.random((n_users, n_items)) < 0.15
    score = rng.random((n_users, n_items))
    order = np.argsort(-score, axis=1)
    hits = np.take_along_axis(rel, order, 1)
    ours = M.ndcg_at_k(hits, rel.sum(1), k)
    # sklearn's ideal DCG ranks all of a user's relevant items: the same as min(K, |gt|) when gt ⊆ items.
    theirs = [skm.ndcg_score(rel[i:i + 1].astype(float), score[i:i + 1], k=k) if rel[i].any() else 0.0
              for i in range(n_users)]
    assert ours == pytest.approx(theirs)


def test_auc_pr_auc_match_sklearn_with_ties(scores):
    y, p = scores
    assert M.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p))
    assert M.pr_auc(y, p) == pytest.approx(skm.average_precision_score(y, p))
    assert M.log_loss(y, np.clip(p, 0.01, 0.99)) == pytest.approx(skm.log_loss(y, np.clip(p, 0.01, 0.99)))


def test_auc_by_hand_averages_ties():
    # pairs (pos, neg): (0.8, 0.5) win, (0.8, 0.8) tie = ½, (0.3, 0.5) loss, (0.3, 0.8) loss → 1.5 / 4
    assert M.auc(np.array([1, 1, 0, 0]), np.array([0.8, 0.3, 0.5, 0.8])) == pytest.approx(0.375)


def test_precision_at_recall():
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 0])
    p = np.linspace(1, 0.1, 10)
    # positives at ranks 1, 3, 4, 7: recall 0.75 at rank 4, 1.0 at rank 7 → precision 4/7
    assert M.precision_at_recall(y, p, 0.9) == pytest.approx(4 / 7)
    assert M.precision_at_recall(y, p, 0.5) == pytest.approx(2 / 3)
    prec, rec, _ = skm.precision_recall_curve(y, p)
    assert M.precision_at_recall(y, p, 0.9) == pytest.approx(prec[rec >= 0.9].max())


def test_rce_and_calibration():
    y = np.array([1, 0, 0, 0])
    assert M.rce(y, np.full(4, 0.25)) == pytest.approx(0.0)  # the base rate itself: 0 % better
    assert M.rce(y, np.array([0.9, 0.1, 0.1, 0.1])) > 50
    curve = M.calibration_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.7, 0.8]), bins=2)
    assert curve == {"predicted": pytest.approx([0.15, 0.75]), "observed": [0.0, 1.0], "count": [2, 2]}
    # ECE = ½·|0.15 − 0| + ½·|0.75 − 1|
    assert M.calibration_error(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.7, 0.8]), bins=2) == pytest.approx(0.2)


def test_beyond_accuracy_by_hand():
    recs = np.array([[1, 2, -1], [2, 3, 4]])
    assert M.catalog_coverage(recs, 8) == pytest.approx(4 / 8)
    assert M.gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    assert M.gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)  # (n − 1)/n for all on one
    # authors 7 (twice), 8 (once); catalog authors 7, 8, 9 → exposures [2, 1, 0]
    assert M.author_exposure_gini(np.array([[7, 7, 8]]), np.array([7, 8, 9, 9])) == pytest.approx(M.gini([2, 1, 0]))
    ild = M.intra_list_diversity(np.array([[0, 0, 1, -1], [2, 2, 2, 2]]))
    assert ild.tolist() == pytest.approx([2 / 3, 0.0])  # pairs (0,0) same, (0,1) ×2 different
    nov = M.novelty(np.array([[5, 6]]), item_ids=np.array([5]), item_users=np.array([3]), n_users=7)
    assert nov[0] == pytest.approx((-math.log2(4 / 8) - math.log2(1 / 8)) / 2)


def test_bootstrap_interval_covers_the_mean_and_ratio():
    rng = np.random.default_rng(1)
    v = rng.random(500)
    idx = M.bootstrap_indices(len(v), 500, seed=0)
    b = M.bootstrap(v, idx)
    assert b["lo"] < b["mean"] < b["hi"] and b["mean"] == pytest.approx(v.mean())
    assert b["hi"] - b["lo"] == pytest.approx(2 * 1.96 * v.std() / np.sqrt(len(v)), rel=0.25)
    r = M.bootstrap(v, idx, denominator=2 * v)
    assert r["mean"] == pytest.approx(0.5) and r["lo"] == pytest.approx(0.5) and r["hi"] == pytest.approx(0.5)
