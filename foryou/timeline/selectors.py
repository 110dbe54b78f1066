"""Selectors: keep the top per source and per network, enforce diversity, and mix the page."""

from __future__ import annotations

import math

import numpy as np

from foryou.mixer import CandidateBatch, Selector
from foryou.timeline.query import TimelineQuery
from foryou.timeline.sources import top_k
from foryou.timeline.state import TimelineState


def rank_within(groups: np.ndarray, score: np.ndarray) -> np.ndarray:
    """0-based rank of each candidate within its group, best score first."""
    order = np.lexsort((-score, groups))
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1] if len(g) else np.empty(0, np.int64)
    ranks = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    out = np.empty(len(g), dtype=np.int64)
    out[order] = ranks
    return out


class TopKSelector(Selector):
    """The light ranker's cut: the best `k` by a column (per candidate pipeline)."""

    def __init__(self, k: int, column: str = "light_score", name: str = "light_ranker_top_k"):
        self.k, self.column, self.name = k, column, name

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return top_k(batch[self.column], self.k)


class _StateSelector(Selector):
    def __init__(self, state: TimelineState):
        self.state = state


class NetworkCapSelector(_StateSelector):
    """After scoring, keep at most 60 in-network and 60 out-of-network posts (REFERENCE.md)."""

    name = "network_cap"

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.ranking
        rank = rank_within(batch["in_network"].astype(np.int8), batch["score"])
        cap = np.where(batch["in_network"], cfg.max_in_network, cfg.max_out_of_network)
        keep = np.flatnonzero(rank < cap)
        return keep[np.argsort(-batch["score"][keep], kind="stable")]


class DiversitySelector(_StateSelector):
    """Author cap, topic cap (a share of the page), content-type mix, and optional MMR over topics."""

    name = "diversity"

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.diversity
        score = batch["score"]
        topic = self.state.index.topic[batch["post_row"]].astype(np.int64)
        page = max(query.n, 1)
        ok = rank_within(batch["author_row"], score) < cfg.max_per_author
        topic_cap = max(1, math.ceil(cfg.max_per_topic_share * page))
        ok &= (topic < 0) | (rank_within(topic, score) < topic_cap)
        # Content-type mix: at most half the page without media when media posts are available.
        media = batch["has_media"]
        if media.any() and (~media).any():
            ok &= media | (rank_within(media.astype(np.int8), score) < max(1, math.ceil(0.75 * page)))
        keep = np.flatnonzero(ok)
        keep = keep[np.argsort(-score[keep], kind="stable")]
        if cfg.mmr_lambda is not None:
            keep = self._mmr(keep, score, topic, cfg.mmr_lambda, page)
        return keep

    @staticmethod
    def _mmr(keep: np.ndarray, score: np.ndarray, topic: np.ndarray, lam: float, n: int) -> np.ndarray:
        """Maximal marginal relevance: relevance − similarity to what is already chosen (same topic = 1)."""
        rel = score[keep] / max(float(score[keep].max(initial=0)), 1e-9)
        chosen: list[int] = []
        taken = np.zeros(len(keep), dtype=bool)
        seen_topics: set[int] = set()
        for _ in range(min(n, len(keep))):
            sim = np.isin(topic[keep], list(seen_topics)).astype(np.float64)
            value = np.where(taken, -np.inf, lam * rel - (1 - lam) * sim)
            best = int(np.argmax(value))
            taken[best] = True
            chosen.append(best)
            seen_topics.add(int(topic[keep][best]))
        return np.r_[keep[chosen], keep[~taken]]


class MixSelector(_StateSelector):
    """The page: best first, at most 2 out-of-network posts in a row, at most a share of out-of-network.

    When in-network posts run out and the run cap is reached, the page ends short rather than
    break the rule (pages for users with no in-network candidates at all are not capped)."""

    name = "mix"

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.mixing
        score, in_net = batch["score"], batch["in_network"]
        inn = np.flatnonzero(in_net)
        oon = np.flatnonzero(~in_net)
        inn = inn[np.argsort(-score[inn], kind="stable")]
        oon = oon[np.argsort(-score[oon], kind="stable")]
        n = min(query.n, len(batch))
        if len(inn) == 0:  # cold start: nothing in-network to interleave, so no run cap applies
            return oon[:n]
        max_oon = cfg.max_out_of_network_in_a_row
        page: list[int] = []
        i = j = run = n_oon = 0
        while len(page) < n and (i < len(inn) or j < len(oon)):
            oon_ok = j < len(oon) and run < max_oon and n_oon < math.ceil(cfg.out_of_network_share * n)
            take_oon = oon_ok and (i >= len(inn) or score[oon[j]] > score[inn[i]])
            if take_oon:
                page.append(int(oon[j]))
                j, run, n_oon = j + 1, run + 1, n_oon + 1
            elif i < len(inn):
                page.append(int(inn[i]))
                i, run = i + 1, 0
            else:
                break  # only out-of-network left and the run cap is reached: the page ends here
        return np.asarray(page, dtype=np.int64)
