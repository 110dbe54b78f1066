"""Scorers: the light ranker, the heavy ranker (heuristic heads until trained), X's weighted
utility with the negative-offset rule, and the rescoring factors. Every factor is kept as a
`factor_<name>` column so the explanation can show exactly what moved a post."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit, logit

from foryou.config import EngagementWeights
from foryou.mixer import CandidateBatch, Scorer, Segments
from foryou.timeline import columns as c
from foryou.timeline.query import TimelineQuery
from foryou.timeline.selectors import rank_within
from foryou.timeline.state import TimelineState, UsesState
from foryou.vocab import DAY, NEGATIVE_FEEDBACK, RANKER_HEADS

Z_RANGE = 20.0  # the positives-only interest logit's span per viewer (heads stay distinct in float64)


def weighted_score(probs: dict[str, np.ndarray], weights: EngagementWeights) -> tuple[np.ndarray, np.ndarray]:
    """(utility Σ wᵢ·pᵢ, score) with X's negative-offset rule: a negative sum becomes
    (sum + Σ|negative w|) / Σ|w| × 0.001, a positive one sum + 0.001 — positive, order-preserving."""
    w = weights.as_dict()
    # float64 until the score: where the negative heads near 1 (a far-below-the-best candidate), utility + Σ|neg|
    # is a small difference of numbers near 1, and float32 would tie whole stretches of the order
    utility = np.asarray(sum(w[h] * np.asarray(probs[h], np.float64) for h in RANKER_HEADS), dtype=np.float64)
    neg = sum(abs(v) for v in w.values() if v < 0)
    total = sum(abs(v) for v in w.values())
    score = np.where(utility < 0, (utility + neg) / total * 0.001, utility + 0.001)
    return utility.astype(np.float32), score.astype(np.float32)


class _StateScorer(UsesState, Scorer[TimelineQuery]):
    pass


class LightRanker(_StateScorer):
    """Cheap per-source ranking before the heavy ranker (a documented heuristic until trained):
    retrieval score, freshness, recent engagement and media — the light ranker's features."""

    name = "light_ranker"
    reads = (c.POST_ROW, c.RETRIEVAL_SCORE, c.SOURCE)
    writes = (c.LIGHT_SCORE,)

    def score(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        return self.score_many([query], batch, Segments.single(len(batch)))

    def score_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch,
                   segments: Segments) -> dict[str, np.ndarray]:
        """One source's candidates of many queries: the heuristic in one pass (the retrieval score
        standardised per query), the trained model per query where the cut binds."""
        idx, ov = self.state.index, self.state.overlay
        rows, retrieval = batch[c.POST_ROW], batch[c.RETRIEVAL_SCORE]
        w = self.state.config.timeline.heuristics.light_ranker
        now = segments.per_row(np.fromiter((q.now for q in queries), np.int64, len(queries)))
        mean, spread = np.zeros(len(segments), np.float32), np.ones(len(segments), np.float32)
        for i, lo, hi in segments.bounds():  # numpy's own mean / std: the one-query values exactly
            part = retrieval[lo:hi]
            mean[i], spread[i] = part.mean(), part.std() or 1.0
        light = ((retrieval - segments.per_row(mean)) / segments.per_row(spread)
                 + w.engagement * np.log1p(ov.counts_24h[rows]) + w.media * idx.has_media[rows]
                 + w.age * np.log1p((now - idx.created_at[rows]) / 3600.0)).astype(np.float32)
        # The trained logistic regressions (one per network side) run only where the cut binds: below
        # `light_ranker_keep` every candidate goes through and the order is irrelevant.
        keep = self.state.config.timeline.ranking.light_ranker_keep
        for i, lo, hi in segments.bounds():
            if hi - lo > keep:
                side = "in_network" if str(batch[c.SOURCE][lo]) == "in_network" else "out_of_network"
                model = self.state.light_ranker(side)
                if model is not None:
                    light[lo:hi] = model.score(queries[i], rows[lo:hi])
        return {c.LIGHT_SCORE: light}


class HeavyRanker(_StateScorer):
    """One probability per engagement head, then X's weighted sum — once over every query's candidates.

    Uses the trained multi-task model when the registry provides one; until then heuristic heads
    (weights in `timeline.heuristics.heavy_ranker`): each head's base rate, moved on the logit scale by
    one shared interest logit built from topic affinity, post and author engagement rates, RealGraph,
    social proof, SimClusters similarity and freshness; negative heads rise with unsafe labels and
    low interest.
    """

    name = "heavy_ranker"
    reads = (c.POST_ROW, c.TOPIC_AFFINITY, c.POST_RATE, c.AUTHOR_RATE, c.REALGRAPH, c.SOCIAL_PROOF,
             c.SIMCLUSTERS_SCORE, c.RELATED, c.AUTHOR_AFFINITY, c.TRENDING_COUNT, c.HAS_MEDIA, c.IN_NETWORK,
             c.AGE_H, c.IS_NSFW, c.IS_TOXIC, c.IS_SPAM, c.IS_MISINFO)
    needs = (c.TOPIC_PROFILE,)
    writes = (*c.PREDICTIONS.values(), c.UTILITY, c.HEAVY_SCORE, c.SCORE)

    def score(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        return self._score([query], batch, Segments.single(len(batch)))

    def score_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch,
                   segments: Segments) -> dict[str, np.ndarray]:
        if len(segments) == 1:
            return self.score(queries[0], batch)
        return self._score(queries, batch, segments)

    def _score(self, queries: Sequence[TimelineQuery], batch: CandidateBatch,
               segments: Segments) -> dict[str, np.ndarray]:
        model = self.state.heavy_ranker()
        if model is None:
            probs = self.heuristic(len(queries[0].features[c.TOPIC_PROFILE]), batch, segments)
        elif len(segments) == 1:
            probs = model.predict(queries[0], batch)
        else:
            viewers = segments.per_row(np.fromiter((q.user_row for q in queries), np.int64, len(queries)))
            probs = model.predict_many(viewers, batch, int(queries[0].now))
        utility, score = weighted_score(probs, self.state.weights())
        return {**{c.PREDICTIONS[h]: np.asarray(probs[h], np.float32) for h in RANKER_HEADS}, c.UTILITY: utility,
                c.HEAVY_SCORE: score, c.SCORE: score}

    def heuristic(self, n_topics: int, batch: CandidateBatch,
                  segments: Segments | None = None) -> dict[str, np.ndarray]:
        base = self.state.index.base_rate
        w = self.state.config.timeline.heuristics.heavy_ranker
        r0 = max(base["like"] + base["repost"] + base["reply"], 1e-4)
        if not self.state.index.has_impressions:
            z = self.positives_only_logit(n_topics, batch, segments or Segments.single(len(batch)))
        else:
            z = (w.topic_affinity * np.log(n_topics * batch[c.TOPIC_AFFINITY])
                 + w.post_rate * np.log(batch[c.POST_RATE] / r0)
                 + w.author_rate * np.log(batch[c.AUTHOR_RATE] / r0)
                 + w.realgraph * batch[c.REALGRAPH]
                 + w.social_proof * np.log1p(batch[c.SOCIAL_PROOF])
                 + w.simclusters * batch[c.SIMCLUSTERS_SCORE]
                 + w.media * batch[c.HAS_MEDIA]
                 + w.in_network * batch[c.IN_NETWORK]
                 + w.age * np.log1p(np.maximum(batch[c.AGE_H], 0)))
        unsafe = sum(weight * batch[label] for label, weight in w.unsafe.items())

        def at(rate: float) -> float:
            return float(logit(np.clip(rate, 1e-5, 0.5)))

        probs = {h: expit(at(base[h]) + slope * (z - w.unsafe_penalty * unsafe)) for h, slope in w.slopes.items()}
        negative = max(sum(base[k] for k in NEGATIVE_FEEDBACK), 1e-5)
        probs["negative_feedback"] = expit(at(negative) + w.negative_feedback[0] * z + w.negative_feedback[1] * unsafe)
        probs["report"] = expit(at(max(base["report"], 1e-6)) + w.report[0] * z + w.report[1] * unsafe)
        return {h: np.asarray(p, np.float64) for h, p in probs.items()}  # float32 once scored (weighted_score)

    def positives_only_logit(self, n_topics: int, batch: CandidateBatch, segments: Segments) -> np.ndarray:
        """The interest logit where no impressions were logged: recent popularity (the trending count window),
        all-time popularity, co-engagement with the viewer's engagements (÷ their best candidate's: scale-free),
        engagements with the author, topic affinity, social proof, SimClusters and RealGraph. Terms are logs of
        counts or bounded, so the order does not depend on the dataset's size."""
        w = self.state.config.timeline.heuristics.heavy_ranker.positives_only
        related = batch[c.RELATED]
        best = np.zeros(len(segments), np.float32)
        np.maximum.at(best, segments.ids, related)
        z = np.asarray(w.trending * np.log1p(batch[c.TRENDING_COUNT])
                       + w.related * related / np.maximum(segments.per_row(best), 1e-9)
                       + w.topic_affinity * np.log(n_topics * batch[c.TOPIC_AFFINITY])
                       + w.social_proof * np.log1p(batch[c.SOCIAL_PROOF])
                       + w.simclusters * batch[c.SIMCLUSTERS_SCORE]
                       + w.realgraph * batch[c.REALGRAPH]
                       + w.in_network * batch[c.IN_NETWORK]
                       + w.author_affinity * np.log1p(batch[c.AUTHOR_AFFINITY]), np.float64)
        if w.popularity:
            z += w.popularity * np.log1p(self.state.index.positives_total(batch[c.POST_ROW]))
        # Relative to the viewer's best candidate: counts in the hundreds would saturate every head near 1
        # and flatten the order the rescoring factors then act on.
        top = np.full(len(segments), -np.inf)
        np.maximum.at(top, segments.ids, z)
        z = np.asarray(z - segments.per_row(top))
        # A viewer's logits compressed into [−Z_RANGE, 0] (order kept): with large learned weights the worst
        # candidates would sit so far below that the negative heads round to 1 and the scores above them tie.
        low = np.zeros(len(segments))
        np.minimum.at(low, segments.ids, z)
        return np.asarray(z * segments.per_row(np.minimum(1.0, Z_RANGE / np.maximum(-low, 1e-12))))


class Factor(_StateScorer):
    """A multiplicative rescoring step; subclasses return the factor per candidate.

    `per_query = False` says the factor reads no query (only columns), so one call covers every
    query's candidates; otherwise `factor_many` runs `factor` per query unless a subclass vectorises it."""

    per_query = True

    def __init__(self, state: TimelineState) -> None:
        super().__init__(state)
        self.column = c.factor(self.name)
        self.reads = (*type(self).reads, c.SCORE)
        self.writes = (self.column, c.SCORE)

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        raise NotImplementedError

    def factor_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        if len(segments) == 1 or not self.per_query:
            return self.factor(queries[0], batch)
        out = np.ones(len(batch), np.float32)
        for i, lo, hi in segments.bounds():
            out[lo:hi] = self.factor(queries[i], batch.rows(lo, hi))
        return out

    def _apply(self, f: np.ndarray, batch: CandidateBatch) -> dict[str, np.ndarray]:
        f = np.asarray(f).astype(np.float32)
        return {self.column: f, c.SCORE: (batch[c.SCORE] * f).astype(np.float32)}

    def score(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        return self._apply(self.factor(query, batch), batch)

    def score_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch,
                   segments: Segments) -> dict[str, np.ndarray]:
        return self._apply(self.factor_many(queries, batch, segments), batch)


class OutOfNetworkScorer(Factor):
    name = "out_of_network"
    reads = (c.IN_NETWORK,)
    per_query = False

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        oon = self.state.config.timeline.ranking.out_of_network_factor
        return np.where(batch[c.IN_NETWORK], 1.0, oon)


class ReplyScorer(Factor):
    name = "reply"
    reads = (c.IS_REPLY,)
    per_query = False

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return np.where(batch[c.IS_REPLY], self.state.config.timeline.ranking.reply_factor, 1.0)


class FeedbackFatigueScorer(Factor):
    """After the drop window, an author the viewer said 'see fewer' about climbs back from 0.2 to 1.0."""

    name = "feedback_fatigue"
    reads = (c.AUTHOR_ROW,)
    needs = (c.FATIGUE_AUTHORS, c.FATIGUE_TIMES)

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.ranking
        authors, times = query.features[c.FATIGUE_AUTHORS], query.features[c.FATIGUE_TIMES]
        out = np.ones(len(batch), dtype=np.float32)
        if len(authors) == 0:
            return out
        order = np.lexsort((times, authors))  # the latest time per author wins below
        last = np.r_[authors[order][1:] != authors[order][:-1], True]
        a, t = authors[order][last], times[order][last]
        pos = np.minimum(np.searchsorted(a, batch[c.AUTHOR_ROW]), len(a) - 1)
        hit = a[pos] == batch[c.AUTHOR_ROW]
        days = (query.now - t[pos]) / DAY - cfg.fatigue_drop_days
        climb = cfg.fatigue_min + (1 - cfg.fatigue_min) * np.clip(days / cfg.fatigue_recover_days, 0, 1)
        return np.where(hit, climb, out)

    def factor_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        out = np.ones(len(batch), np.float32)
        for i, lo, hi in segments.bounds():  # only viewers who said 'see fewer' about someone
            if len(queries[i].features[c.FATIGUE_AUTHORS]):
                out[lo:hi] = self.factor(queries[i], batch.rows(lo, hi))
        return out


class SafetyScorer(Factor):
    """Downrank toxic, spam and misinformation posts (out-of-network NSFW is dropped by a filter)."""

    name = "safety"
    reads = (c.IS_TOXIC, c.IS_SPAM, c.IS_MISINFO)
    per_query = False

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.safety
        return (np.where(batch[c.IS_TOXIC], cfg.toxic_factor, 1.0) * np.where(batch[c.IS_SPAM], cfg.spam_factor, 1.0)
                * np.where(batch[c.IS_MISINFO], cfg.misinfo_factor, 1.0))


class AuthorDiversityScorer(Factor):
    """The n-th post (0-based, by score) of the same author × (1 − f)·0.5ⁿ + f."""

    name = "author_diversity"
    reads = (c.AUTHOR_ROW,)

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return self._decay(rank_within(batch[c.AUTHOR_ROW], batch[c.SCORE]))

    def factor_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        authors = batch[c.AUTHOR_ROW]
        groups = segments.ids * (int(authors.max(initial=0)) + 1) + authors  # (viewer, author) pairs
        return self._decay(rank_within(groups, batch[c.SCORE]))

    def _decay(self, rank: np.ndarray) -> np.ndarray:
        cfg = self.state.config.timeline.ranking
        f = cfg.author_diversity_floor
        return np.asarray((1 - f) * cfg.author_diversity_decay ** rank + f)
