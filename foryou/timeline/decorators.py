"""Decorators: social proof ("liked by"), whether each post is in- or out-of-network and why, and a full
explanation of every returned post's score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from foryou.mixer import CandidateBatch, Decorator, Segments
from foryou.timeline import columns as c
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


class SocialProofDecorator(Decorator[TimelineQuery]):
    """Up to N followed accounts who engaged with each returned post (from the UTEG walk), and each post's
    network reason (`network_reason`): the page's own account of why it is in- or out-of-network."""

    name = "social_proof"
    reads = (c.POST_ROW, c.AUTHOR_ROW, c.IN_NETWORK, c.SOURCE)
    needs = (c.PROOF_EDGES,)
    writes = (c.LIKED_BY, c.NETWORK_REASON)

    def __init__(self, state: TimelineState):
        self.state = state

    def decorate(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        return self.decorate_many([query], batch, Segments.single(len(batch)))

    def decorate_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch,
                      segments: Segments) -> dict[str, np.ndarray]:
        k = self.state.config.timeline.sources.uteg_max_proof
        ids = self.state.index.user_ids
        rows = batch[c.POST_ROW]
        liked_by = np.empty(len(batch), dtype=object)
        for i, lo, hi in segments.bounds():  # the pages only (≤ page size each)
            posts, users = queries[i].features[c.PROOF_EDGES]  # edges sorted by post
            first = np.searchsorted(posts, rows[lo:hi], "left").tolist()
            last = np.searchsorted(posts, rows[lo:hi], "right").tolist()
            for j, (a, b) in enumerate(zip(first, last, strict=True)):
                liked_by[lo + j] = ids[users[a:min(b, a + k)]].tolist()
        reasons = np.empty(len(batch), dtype=object)
        reasons[:] = [network_reason(bool(n), int(a), str(s)) for n, a, s in zip(
            batch[c.IN_NETWORK].tolist(), ids[batch[c.AUTHOR_ROW]].tolist(), batch[c.SOURCE].tolist(), strict=True)]
        return {c.LIKED_BY: liked_by, c.NETWORK_REASON: reasons}


class ExplanationDecorator(Decorator[TimelineQuery]):
    """Why each post is here: source, each head's probability × weight, every factor, every filter passed."""

    name = "explanation"
    reads = (c.SOURCE, c.IN_NETWORK, c.AUTHOR_ROW, c.LIGHT_SCORE, *c.PREDICTIONS.values(), c.UTILITY, c.HEAVY_SCORE,
             c.SCORE,
             c.REALGRAPH, c.SOCIAL_PROOF, c.TOPIC_AFFINITY, c.SIMCLUSTERS_SCORE, c.POST_RATE, c.AGE_H)
    writes = (c.EXPLANATION,)

    def __init__(self, state: TimelineState, filters: tuple[str, ...]):
        self.state = state
        self.filters = filters

    def decorate(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        if not query.explain:
            return {}
        weights = self.state.weights().as_dict()
        factors = [name for name in batch.column_names if name.startswith("factor_")]
        out = np.empty(len(batch), dtype=object)
        for i in range(len(batch)):  # the page only
            p = {h: float(batch[c.PREDICTIONS[h]][i]) for h in RANKER_HEADS}
            heads = {h: {"p": round(p[h], 5), "weight": weights[h], "contribution": round(p[h] * weights[h], 5)}
                     for h in RANKER_HEADS}
            out[i] = {
                "source": str(batch[c.SOURCE][i]),
                "network": (str(batch[c.NETWORK_REASON][i]) if c.NETWORK_REASON in batch else network_reason(
                    bool(batch[c.IN_NETWORK][i]), int(self.state.index.user_ids[batch[c.AUTHOR_ROW][i]]),
                    str(batch[c.SOURCE][i]))),
                "heads": heads,
                "light_score": round(float(batch[c.LIGHT_SCORE][i]), 5),
                "utility": round(float(batch[c.UTILITY][i]), 5),
                "heavy_score": round(float(batch[c.HEAVY_SCORE][i]), 5),
                "factors": {name.removeprefix("factor_"): round(float(batch[name][i]), 4) for name in factors},
                "score": round(float(batch[c.SCORE][i]), 5),
                "features": {str(col): _plain(batch[col][i]) for col in (
                    c.IN_NETWORK, c.REALGRAPH, c.SOCIAL_PROOF, c.TOPIC_AFFINITY, c.SIMCLUSTERS_SCORE, c.POST_RATE,
                    c.AGE_H)},
                "filters_passed": list(self.filters),
            }
        return {c.EXPLANATION: out}


def _plain(v: Any) -> bool | float:
    return bool(v) if isinstance(v, np.bool_) else round(float(v), 4)
