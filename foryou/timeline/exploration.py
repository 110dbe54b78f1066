"""Exploration over per-post feedback statistics: ε-greedy, UCB1 or Thompson sampling from Beta
posteriors, plus a "random" strategy (a random order: the deliberately bad arm of an A/B test).

The statistics are real and online: impressions and positive engagements (like, repost, reply) per
post from the real-time overlay, which every `record_interaction` updates, on top of the counts the
serving index was built with. Each post's engagement rate has a Beta posterior with an informed
prior worth PRIOR_IMPRESSIONS impressions at the global base rate.

- ε-greedy: Binomial(page size, ε) slots go to candidates drawn uniformly from the candidates
  (the out-of-network filters have already run — out-of-network posts need social proof or a topic
  the viewer engages with, no out-of-network NSFW — so every draw can reach the page); each is given
  the score of a uniformly drawn slot of the greedy page, so it lands at a random position;
- UCB1: optimism in proportion to the posterior mean, mean·(1 + c·√(2 ln N / n)), N the candidates'
  impressions, n the post's (prior included);
- Thompson: one draw from each post's Beta posterior.

UCB and Thompson move the heavy-ranker score by 1 + weight·(value − mean)/mean (clipped to
[0.5, 2]): the heavy ranker stays the estimate, the posterior adds the uncertainty, which shrinks
as a post collects impressions — new posts are explored, proven ones are left alone. Where none of the
candidates was ever shown (data without an impression log, e.g. ratings) every posterior is the same prior
and a draw would only be noise, so UCB and Thompson leave the order alone until impressions are recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from foryou.config import ExplorationConfig
from foryou.features import PRIOR_IMPRESSIONS
from foryou.mixer import CandidateBatch, Segments
from foryou.timeline import columns as c
from foryou.timeline.query import TimelineQuery
from foryou.timeline.scorers import Factor
from foryou.vocab import POSITIVE

STRATEGIES = ("none", "epsilon_greedy", "ucb", "thompson", "random")


def posterior(successes: np.ndarray, trials: np.ndarray, prior_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Beta(α, β) per post with an informed prior worth PRIOR_IMPRESSIONS impressions at the base rate."""
    alpha = prior_rate * PRIOR_IMPRESSIONS + successes
    beta = (1 - prior_rate) * PRIOR_IMPRESSIONS + np.maximum(trials - successes, 0)
    return alpha, beta


class ExplorationScorer(Factor):
    """Runs after the out-of-network filters (they sit in the heavy-ranking scoring pipeline), so every
    candidate it sees is one the page may show: ε-greedy draws from all of them."""

    name = "exploration"
    reads = (c.POST_ROW,)

    def post_posterior(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(α, β) of each post's positive-engagement rate from the live overlay counters."""
        ov = self.state.overlay
        trials = ov.impressions_count[rows].astype(np.float64)
        successes = np.minimum(sum(ov.counts[k][rows] for k in POSITIVE).astype(np.float64), trials)
        r0 = min(max(sum(self.state.index.base_rate[k] for k in POSITIVE), 1e-4), 0.5)
        return posterior(successes, trials, r0)

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return self.factor_many([query], batch, Segments.single(len(batch)))

    def factor_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        cfg = self.state.config.timeline.exploration
        n = len(batch)
        out = np.ones(n)
        if cfg.strategy == "none" or n == 0:
            return out
        score = np.maximum(batch[c.SCORE].astype(np.float64), 1e-12)
        if cfg.strategy in ("ucb", "thompson"):
            if not self.state.overlay.impressions_count[batch[c.POST_ROW]].any():
                return out  # no impression log (positives-only data): every posterior is the prior, a draw noise
            alpha, beta = self.post_posterior(batch[c.POST_ROW])
            mean = alpha / (alpha + beta)
        if cfg.strategy == "ucb":  # N: the impressions of each viewer's candidates
            shown = self.state.overlay.impressions_count[batch[c.POST_ROW]].astype(np.float64)
            total = segments.per_row(np.maximum(segments.sums(shown), 1.0))
            value = mean * (1 + cfg.ucb_c * np.sqrt(2 * np.log(total + 1) / (alpha + beta)))
            return np.asarray(np.clip(1 + cfg.weight * (value - mean) / mean, 0.5, 2.0))
        for i, lo, hi in segments.bounds():
            rng = _request_rng(cfg, queries[i])
            if cfg.strategy == "random":
                out[lo:hi] = rng.random(hi - lo) / score[lo:hi]
            elif cfg.strategy == "epsilon_greedy":
                out[lo:hi] = self._epsilon_greedy(rng, score[lo:hi], queries[i].n, cfg.epsilon)
            else:  # thompson: one draw from each post's posterior
                value = rng.beta(alpha[lo:hi], beta[lo:hi])
                out[lo:hi] = np.clip(1 + cfg.weight * (value - mean[lo:hi]) / mean[lo:hi], 0.5, 2.0)
        return out

    @staticmethod
    def _epsilon_greedy(rng: np.random.Generator, score: np.ndarray, page: int, epsilon: float,
                        eligible: np.ndarray | None = None) -> np.ndarray:
        n = len(score)
        out = np.ones(n)
        pool = np.arange(n) if eligible is None else np.flatnonzero(eligible)
        k = min(int(rng.binomial(max(page, 1), epsilon)), len(pool))
        if k == 0:
            return out
        picked = rng.choice(pool, size=k, replace=False)
        greedy = -np.sort(-score)[:max(min(page, n), 1)]  # the greedy page's scores, best first
        slots = greedy[rng.integers(0, len(greedy), k)] * (1 + 1e-6)
        out[picked] = slots / score[picked]
        return out


def _request_rng(cfg: ExplorationConfig, query: TimelineQuery) -> np.random.Generator:
    """Seeded per request (the next page of a scroll draws afresh): reproducible, yet varied."""
    return np.random.default_rng([cfg.seed, query.user_row, query.now, len(query.served)])
