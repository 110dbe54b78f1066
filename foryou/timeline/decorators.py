"""Decorators: social proof ("liked by"), whether each post is in- or out-of-network and why, and a full
explanation of every returned post's score."""

from __future__ import annotations

import numpy as np

from foryou.mixer import CandidateBatch, Decorator
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import TimelineState
from foryou.vocab import RANKER_HEADS


def network_reason(in_network: bool, author_id: int, source: str) -> str:
    """Which side of the network a post is on and why, and which source found it.

    In-network means the viewer follows the author, whichever source retrieved the post: SimClusters, UTEG or
    trending can all find a followed account's post. So the source is named apart from the network side:
    "in-network (you follow @42), found by simclusters", "out-of-network (you don't follow @7), found by uteg",
    and just "in-network (you follow @42)" for the in-network source itself."""
    side = f"in-network (you follow @{author_id})" if in_network else f"out-of-network (you don't follow @{author_id})"
    return side if source == "in_network" else f"{side}, found by {source}"


class SocialProofDecorator(Decorator):
    """Up to N followed accounts who engaged with each returned post (from the UTEG walk), and each post's
    network reason (`network_reason`): the page's own account of why it is in- or out-of-network."""

    name = "social_proof"

    def __init__(self, state: TimelineState):
        self.state = state

    def decorate(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        posts, users = query.features["proof_edges"]
        k = self.state.config.timeline.sources.uteg_max_proof
        ids = self.state.index.user_ids
        liked_by = np.empty(len(batch), dtype=object)
        reasons = np.empty(len(batch), dtype=object)
        in_network = batch["in_network"].tolist()
        authors = ids[batch["author_row"]].tolist()
        sources = [str(v) for v in batch["source"].tolist()]
        for i, row in enumerate(batch["post_row"].tolist()):  # the page only (≤ page size)
            liked_by[i] = ids[users[posts == row][:k]].tolist()
            reasons[i] = network_reason(bool(in_network[i]), int(authors[i]), sources[i])
        return {"liked_by": liked_by, "network_reason": reasons}


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
                         "contribution": round(float(batch[f"p_{h}"][i]) * weights[h], 5)} for h in RANKER_HEADS}
            out[i] = {
                "source": str(batch["source"][i]),
                "network": (str(batch["network_reason"][i]) if "network_reason" in batch else network_reason(
                    bool(batch["in_network"][i]), int(self.state.index.user_ids[batch["author_row"][i]]),
                    str(batch["source"][i]))),
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
