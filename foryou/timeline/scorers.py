"""Scorers: the light ranker, the heavy ranker (heuristic heads until trained), X's weighted
utility with the negative-offset rule, and the rescoring factors. Every factor is kept as a
`factor_<name>` column so the explanation can show exactly what moved a post."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.special import expit, logit

from foryou.config import EngagementWeights
from foryou.mixer import CandidateBatch, Scorer
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import UsesState
from foryou.vocab import DAY, RANKER_HEADS


def weighted_score(probs: dict[str, np.ndarray], weights: EngagementWeights) -> tuple[np.ndarray, np.ndarray]:
    """(utility Σ wᵢ·pᵢ, score) with X's negative-offset rule: a negative sum becomes
    (sum + Σ|negative w|) / Σ|w| × 0.001, a positive one sum + 0.001 — positive, order-preserving."""
    w = weights.as_dict()
    utility = sum(w[h] * probs[h] for h in RANKER_HEADS).astype(np.float32)
    neg = sum(abs(v) for v in w.values() if v < 0)
    total = sum(abs(v) for v in w.values())
    score = np.where(utility < 0, (utility + neg) / total * 0.001, utility + 0.001)
    return utility, score.astype(np.float32)


class _StateScorer(UsesState, Scorer):
    pass


class LightRanker(_StateScorer):
    """Cheap per-source ranking before the heavy ranker (a documented heuristic until trained):
    retrieval score, freshness, recent engagement and media — the light ranker's features."""

    name = "light_ranker"

    def score(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        idx, ov = self.state.index, self.state.overlay
        rows = batch["post_row"]
        # The trained logistic regressions (one per network side) run only when the cut binds: below
        # `light_ranker_keep` every candidate goes through and the order is irrelevant.
        if len(rows) > self.state.config.timeline.ranking.light_ranker_keep:
            side = "in_network" if str(batch["source"][0]) == "in_network" else "out_of_network"
            model = self.state.models.get(f"light_ranker_{side}")
            if model is not None:
                return {"light_score": model.score(query, rows).astype(np.float32)}
        age_h = (query.now - idx.created_at[rows]) / 3600.0
        retrieval = batch["retrieval_score"]
        spread = retrieval.std() or 1.0
        light = ((retrieval - retrieval.mean()) / spread + 0.5 * np.log1p(ov.counts_24h[rows])
                 + 0.3 * idx.has_media[rows] - 0.5 * np.log1p(age_h))
        return {"light_score": light.astype(np.float32)}


class HeavyRanker(_StateScorer):
    """One probability per engagement head, then X's weighted sum.

    Uses the trained multi-task model when the registry provides one (issue 4); until then these
    heuristic heads: each head's base rate, moved on the logit scale by one shared interest logit
    built from topic affinity, post and author engagement rates, RealGraph, social proof,
    SimClusters similarity and freshness; negative heads rise with unsafe labels and low interest.
    """

    name = "heavy_ranker"
    SLOPES: ClassVar[dict[str, float]] = {
        "click": 0.8, "like": 1.0, "repost": 1.1, "reply": 0.9, "profile_click": 0.7, "dwell": 0.6,
        "follow_author": 0.8}

    def score(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        model = self.state.models.get("heavy_ranker")
        probs = model.predict(query, batch) if model is not None else self.heuristic(query, batch)
        utility, score = weighted_score(probs, self.state.config.weights)
        return {**{f"p_{h}": probs[h] for h in RANKER_HEADS}, "utility": utility, "heavy_score": score, "score": score}

    def heuristic(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        base = self.state.index.base_rate
        r0 = max(base["like"] + base["repost"] + base["reply"], 1e-4)
        k = len(query.features["topic_profile"])
        z = (0.9 * np.log(k * batch["topic_affinity"])
             + 0.6 * np.log(batch["post_rate"] / r0)
             + 0.4 * np.log(batch["author_rate"] / r0)
             + 1.0 * batch["realgraph"]
             + 0.1 * np.log1p(batch["social_proof"])
             + 0.5 * batch["simclusters_score"]
             + 0.3 * batch["has_media"]
             + 0.2 * batch["in_network"]
             - 0.35 * np.log1p(np.maximum(batch["age_h"], 0)))
        unsafe = (1.0 * batch["is_nsfw"] + 1.0 * batch["is_toxic"] + 1.5 * batch["is_spam"]
                  + 0.8 * batch["is_misinfo"])

        def at(rate: float) -> float:
            return float(logit(np.clip(rate, 1e-5, 0.5)))

        probs = {h: expit(at(base[h]) + slope * (z - 0.8 * unsafe)) for h, slope in self.SLOPES.items()}
        negative = max(base["not_interested"] + base["mute"] + base["block"], 1e-5)
        probs["negative_feedback"] = expit(at(negative) - 0.5 * z + 1.5 * unsafe)
        probs["report"] = expit(at(max(base["report"], 1e-6)) - 0.2 * z + 2.0 * unsafe)
        return {h: p.astype(np.float32) for h, p in probs.items()}


class _Factor(_StateScorer):
    """A multiplicative rescoring step; subclasses return the factor per candidate."""

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        raise NotImplementedError

    def score(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        f = self.factor(query, batch).astype(np.float32)
        return {f"factor_{self.name}": f, "score": (batch["score"] * f).astype(np.float32)}


class OutOfNetworkScorer(_Factor):
    name = "out_of_network"

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        oon = self.state.config.timeline.ranking.out_of_network_factor
        return np.where(batch["in_network"], 1.0, oon)


class ReplyScorer(_Factor):
    name = "reply"

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return np.where(batch["is_reply"], self.state.config.timeline.ranking.reply_factor, 1.0)


class FeedbackFatigueScorer(_Factor):
    """After the drop window, an author the viewer said 'see fewer' about climbs back from 0.2 to 1.0."""

    name = "feedback_fatigue"

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.ranking
        authors, times = query.features["fatigue_authors"], query.features["fatigue_times"]
        out = np.ones(len(batch), dtype=np.float32)
        if len(authors) == 0:
            return out
        order = np.lexsort((times, authors))  # the latest time per author wins below
        last = np.r_[authors[order][1:] != authors[order][:-1], True]
        a, t = authors[order][last], times[order][last]
        pos = np.minimum(np.searchsorted(a, batch["author_row"]), len(a) - 1)
        hit = a[pos] == batch["author_row"]
        days = (query.now - t[pos]) / DAY - cfg.fatigue_drop_days
        climb = cfg.fatigue_min + (1 - cfg.fatigue_min) * np.clip(days / cfg.fatigue_recover_days, 0, 1)
        return np.where(hit, climb, out)


class SafetyScorer(_Factor):
    """Downrank toxic, spam and misinformation posts (out-of-network NSFW is dropped by a filter)."""

    name = "safety"

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.safety
        return (np.where(batch["is_toxic"], cfg.toxic_factor, 1.0) * np.where(batch["is_spam"], cfg.spam_factor, 1.0)
                * np.where(batch["is_misinfo"], cfg.misinfo_factor, 1.0))


class AuthorDiversityScorer(_Factor):
    """The n-th post (0-based, by score) of the same author × (1 − f)·0.5ⁿ + f."""

    name = "author_diversity"

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.ranking
        authors = batch["author_row"]
        order = np.lexsort((-batch["score"], authors))
        a = authors[order]
        starts = np.r_[0, np.flatnonzero(a[1:] != a[:-1]) + 1]
        rank_sorted = np.arange(len(a)) - np.repeat(starts, np.diff(np.r_[starts, len(a)]))
        rank = np.empty(len(a), dtype=np.int64)
        rank[order] = rank_sorted
        f = cfg.author_diversity_floor
        return (1 - f) * cfg.author_diversity_decay ** rank + f
