"""Exploration over per-post feedback statistics (impressions and positive engagements, updated
online by the overlay): ε-greedy, UCB1 or Thompson sampling from Beta posteriors."""

from __future__ import annotations

import numpy as np

from foryou.features import PRIOR_IMPRESSIONS
from foryou.graph.index import POSITIVE
from foryou.mixer import CandidateBatch
from foryou.timeline.query import TimelineQuery
from foryou.timeline.scorers import _Factor


def posterior(successes: np.ndarray, trials: np.ndarray, prior_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Beta(α, β) per post with an informed prior worth PRIOR_IMPRESSIONS impressions at the base rate."""
    alpha = prior_rate * PRIOR_IMPRESSIONS + successes
    beta = (1 - prior_rate) * PRIOR_IMPRESSIONS + np.maximum(trials - successes, 0)
    return alpha, beta


class ExplorationScorer(_Factor):
    name = "exploration"

    def factor(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.exploration
        n = len(batch)
        if cfg.strategy == "none" or n == 0:
            return np.ones(n)
        rng = np.random.default_rng([cfg.seed, query.user_row, query.now])
        ov, rows = self.state.overlay, batch["post_row"]
        trials = ov.impressions_count[rows].astype(np.float64)
        successes = np.minimum(sum(ov.counts[k][rows] for k in POSITIVE).astype(np.float64), trials)
        r0 = min(max(sum(self.state.index.base_rate[k] for k in POSITIVE), 1e-4), 0.5)
        alpha, beta = posterior(successes, trials, r0)
        mean = alpha / (alpha + beta)
        if cfg.strategy == "epsilon_greedy":
            chosen = rng.random(n) < cfg.epsilon
            top = float(batch["score"].max()) * 1.01
            return np.where(chosen, top / np.maximum(batch["score"], 1e-9), 1.0)
        if cfg.strategy == "ucb":
            total = max(trials.sum(), 1.0)
            value = mean + cfg.ucb_c * np.sqrt(2 * np.log(total + 1) / (trials + PRIOR_IMPRESSIONS)) * mean
        else:  # thompson
            value = rng.beta(alpha, beta)
        return np.clip(1 + cfg.weight * (value - mean) / mean, 0.5, 2.0)
