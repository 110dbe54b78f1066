"""Exploration over per-post feedback statistics: ε-greedy, UCB1 or Thompson sampling from Beta
posteriors, plus a "random" strategy (a random order: the deliberately bad arm of an A/B test).

The statistics are real and online: impressions and positive engagements (like, repost, reply) per
post from the real-time overlay, which every `record_interaction` updates, on top of the counts the
serving index was built with. Each post's engagement rate has a Beta posterior with an informed
prior worth PRIOR_IMPRESSIONS impressions at the global base rate.

- ε-greedy: Binomial(page size, ε) slots go to candidates drawn uniformly from the candidates the
  post-scoring filters will keep (out-of-network posts need social proof or a topic the viewer
  engages with, no out-of-network NSFW: drawn from all, most draws were filtered out after this step
  and ε = 0.05 explored ~2 % of the page); each is given the score of a uniformly drawn slot of the
  greedy page, so it lands at a random position;
- UCB1: optimism in proportion to the posterior mean, mean·(1 + c·√(2 ln N / n)), N the candidates'
  impressions, n the post's (prior included);
- Thompson: one draw from each post's Beta posterior.

UCB and Thompson move the heavy-ranker score by 1 + weight·(value − mean)/mean (clipped to
[0.5, 2]): the heavy ranker stays the estimate, the posterior adds the uncertainty, which shrinks
as a post collects impressions — new posts are explored, proven ones are left alone.
"""

from __future__ import annotations

import numpy as np

from foryou.features import PRIOR_IMPRESSIONS
from foryou.mixer import CandidateBatch
from foryou.timeline.filters import OutOfNetworkNsfwFilter, OutOfNetworkSocialProofFilter
from foryou.timeline.query import TimelineQuery
from foryou.timeline.scorers import _Factor
from foryou.vocab import POSITIVE

STRATEGIES = ("none", "epsilon_greedy", "ucb", "thompson", "random")


def posterior(successes: np.ndarray, trials: np.ndarray, prior_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Beta(α, β) per post with an informed prior worth PRIOR_IMPRESSIONS impressions at the base rate."""
    alpha = prior_rate * PRIOR_IMPRESSIONS + successes
    beta = (1 - prior_rate) * PRIOR_IMPRESSIONS + np.maximum(trials - successes, 0)
    return alpha, beta


class ExplorationScorer(_Factor):
    name = "exploration"

    def post_posterior(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(α, β) of each post's positive-engagement rate from the live overlay counters."""
        ov = self.state.overlay
        trials = ov.impressions_count[rows].astype(np.float64)
        successes = np.minimum(sum(ov.counts[k][rows] for k in POSITIVE).astype(np.float64), trials)
        r0 = min(max(sum(self.state.index.base_rate[k] for k in POSITIVE), 1e-4), 0.5)
        return posterior(successes, trials, r0)

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.exploration
        n = len(batch)
        if cfg.strategy == "none" or n == 0:
            return np.ones(n)
        # Seeded per request (a cursor's next page draws afresh): reproducible, yet varied.
        rng = np.random.default_rng([cfg.seed, query.user_row, query.now, len(query.served)])
        score = np.maximum(batch["score"].astype(np.float64), 1e-12)
        if cfg.strategy == "random":
            return rng.random(n) / score
        if cfg.strategy == "epsilon_greedy":
            return self._epsilon_greedy(rng, score, query.n, cfg.epsilon, self._kept_by_post_filters(query, batch))
        alpha, beta = self.post_posterior(batch["post_row"])
        mean = alpha / (alpha + beta)
        if cfg.strategy == "ucb":
            total = max(float(self.state.overlay.impressions_count[batch["post_row"]].sum()), 1.0)
            trials = alpha + beta  # impressions + the prior's pseudo-impressions
            value = mean * (1 + cfg.ucb_c * np.sqrt(2 * np.log(total + 1) / trials))
        else:  # thompson
            value = rng.beta(alpha, beta)
        return np.clip(1 + cfg.weight * (value - mean) / mean, 0.5, 2.0)

    def _kept_by_post_filters(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray | None:
        try:
            keep = np.ones(len(batch), dtype=bool)
            for post_filter in (OutOfNetworkSocialProofFilter, OutOfNetworkNsfwFilter):
                keep &= post_filter(self.state).keep(query, batch)
            return keep
        except KeyError:  # a batch without the filters' columns: no post filter will run on it either
            return None

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
