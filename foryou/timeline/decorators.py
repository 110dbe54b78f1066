"""Decorators: social proof ("liked by") and a full explanation of every returned post's score."""

from __future__ import annotations

import numpy as np

from foryou.mixer import CandidateBatch, Decorator
from foryou.timeline.query import TimelineQuery
from foryou.timeline.scorers import HEADS
from foryou.timeline.state import TimelineState


class SocialProofDecorator(Decorator):
    """Up to N followed accounts who engaged with each returned post (from the UTEG walk)."""

    name = "social_proof"

    def __init__(self, state: TimelineState):
        self.state = state

    def decorate(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        posts, users = query.features["proof_edges"]
        k = self.state.config.timeline.sources.uteg_max_proof
        ids = self.state.index.user_ids
        liked_by = np.empty(len(batch), dtype=object)
        for i, row in enumerate(batch["post_row"].tolist()):  # the page only (≤ page size)
            liked_by[i] = ids[users[posts == row][:k]].tolist()
        return {"liked_by": liked_by}


class ExplanationDecorator(Decorator):
    """Why each post is here: source, each head's probability × weight, every factor, every filter passed."""

    name = "explanation"

    def __init__(self, state: TimelineState, filters: tuple[str, ...]):
        self.state = state
        self.filters = filters

    def decorate(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        if not query.explain:
            return {}
        weights = self.state.config.weights.as_dict()
        factors = [c for c in batch.column_names if c.startswith("factor_")]
        out = np.empty(len(batch), dtype=object)
        for i in range(len(batch)):  # the page only
            heads = {h: {"p": round(float(batch[f"p_{h}"][i]), 5), "weight": weights[h],
                         "contribution": round(float(batch[f"p_{h}"][i]) * weights[h], 5)} for h in HEADS}
            out[i] = {
                "source": str(batch["source"][i]),
                "heads": heads,
                "utility": round(float(batch["utility"][i]), 5),
                "heavy_score": round(float(batch["heavy_score"][i]), 5),
                "factors": {c.removeprefix("factor_"): round(float(batch[c][i]), 4) for c in factors},
                "score": round(float(batch["score"][i]), 5),
                "features": {c: _plain(batch[c][i]) for c in ("in_network", "realgraph", "social_proof",
                                                              "topic_affinity", "simclusters_score", "post_rate",
                                                              "age_h")},
                "filters_passed": list(self.filters),
            }
        return {"explanation": out}


def _plain(v):
    return bool(v) if isinstance(v, np.bool_) else round(float(v), 4)
