"""Selectors: keep the top per source and per network, enforce diversity, and mix the page."""

from __future__ import annotations

import math

import numpy as np

from foryou.mixer import CandidateBatch, Selector
from foryou.timeline.query import TimelineQuery
from foryou.timeline.sources import top_k
from foryou.timeline.state import UsesState


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


class _StateSelector(UsesState, Selector):
    pass


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
    """Author cap (hard), then topic cap and content-type mix (soft: posts over a cap move behind
    the rest, so they only fill a page that would otherwise be short), and optional MMR over topics."""

    name = "diversity"

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.diversity
        score = batch["score"]
        topic = self.state.index.topic[batch["post_row"]].astype(np.int64)
        page = max(query.n, 1)
        keep = np.flatnonzero(rank_within(batch["author_row"], score) < cfg.max_per_author)
        topic_cap = max(1, math.ceil(cfg.max_per_topic_share * page))
        diverse = (topic[keep] < 0) | (rank_within(topic[keep], score[keep]) < topic_cap)
        # Content-type mix: at most three quarters of a page without media when media posts exist.
        media = batch["has_media"][keep]
        if media.any() and (~media).any():
            diverse &= media | (rank_within(media.astype(np.int8), score[keep]) < max(1, math.ceil(0.75 * page)))
        order = np.lexsort((-score[keep], ~diverse))  # diverse first, each part best first
        keep = keep[order]
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
    """The page, in the incoming order: at most 2 out-of-network posts in a row while in-network posts
    remain (scarce in-network posts are spread out to keep the page full), out-of-network share as a
    soft target. After the last in-network post the page is backfilled with out-of-network posts, or
    ends short when `mixing.backfill` is off."""

    name = "mix"

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.mixing
        # The incoming order is the preference (best first, diversity already applied upstream).
        in_net = batch["in_network"]
        inn = np.flatnonzero(in_net)
        oon = np.flatnonzero(~in_net)
        n = min(query.n, len(batch))
        if len(inn) == 0:  # cold start: nothing in-network to interleave, so no run cap applies
            return oon[:n]
        max_oon = cfg.max_out_of_network_in_a_row
        # The share target yields when there is too little in-network to fill the rest of the page.
        share_cap = max(math.ceil(cfg.out_of_network_share * n), n - len(inn))
        page: list[int] = []
        i = j = run = n_oon = 0
        while len(page) < n:
            have_in, have_oon = i < len(inn), j < len(oon)
            can_oon = have_oon and run < max_oon
            # Out-of-network wins on score while under the share target; it also fills in when
            # in-network runs out, but never more than `max_oon` in a row.
            # Taking in-network now resets the run; if that would leave too few slots fillable,
            # in-network is the scarce resource and is spread out instead.
            in_left = len(inn) - i
            fill_if_in = 1 + (in_left - 1) * (1 + max_oon) + max_oon
            scarce = have_in and fill_if_in < n - len(page)
            if can_oon and (not have_in or scarce or (oon[j] < inn[i] and n_oon < share_cap)):
                page.append(int(oon[j]))
                j, run, n_oon = j + 1, run + 1, n_oon + 1
            elif have_in:
                page.append(int(inn[i]))
                i, run = i + 1, 0
            elif have_oon and cfg.backfill:
                page.append(int(oon[j]))  # backfill: in-network is exhausted
                j, n_oon = j + 1, n_oon + 1
            else:
                break  # only out-of-network left and the run cap is reached: the page ends here
        return np.asarray(page, dtype=np.int64)
