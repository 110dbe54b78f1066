"""Selectors: keep the top per source and per network, enforce diversity, and mix the page."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from foryou.mixer import CandidateBatch, Segments, Selector
from foryou.timeline import columns as c
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


class TopKSelector(Selector[TimelineQuery]):
    """The light ranker's cut: the best `k` by a column (per candidate pipeline)."""

    def __init__(self, k: int, column: str = c.LIGHT_SCORE, name: str = "light_ranker_top_k"):
        self.k, self.column, self.name = k, column, name
        self.reads = (column,)

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return top_k(batch[self.column], self.k)


class _StateSelector(UsesState, Selector[TimelineQuery]):
    pass


class NetworkCapSelector(_StateSelector):
    """After scoring, keep at most 60 in-network and 60 out-of-network posts (REFERENCE.md)."""

    name = "network_cap"
    reads = (c.IN_NETWORK, c.SCORE)

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return self.select_many([query], batch, Segments.single(len(batch)))

    def select_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch,
                    segments: Segments) -> np.ndarray:
        cfg = self.state.config.timeline.ranking
        in_net, score, seg = batch[c.IN_NETWORK], batch[c.SCORE], segments.ids
        rank = rank_within(seg * 2 + in_net, score)
        cap = np.where(in_net, cfg.max_in_network, cfg.max_out_of_network)
        keep = np.flatnonzero(rank < cap)
        return keep[np.lexsort((-score[keep], seg[keep]))]  # each viewer's best first


class DiversitySelector(_StateSelector):
    """Author cap (hard), then topic cap and content-type mix (soft: posts over a cap move behind
    the rest, so they only fill a page that would otherwise be short), and optional MMR over topics."""

    name = "diversity"
    reads = (c.POST_ROW, c.AUTHOR_ROW, c.HAS_MEDIA, c.SCORE)

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return self.select_many([query], batch, Segments.single(len(batch)))

    def select_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch,
                    segments: Segments) -> np.ndarray:
        cfg = self.state.config.timeline.diversity
        score, seg, authors = batch[c.SCORE], segments.ids, batch[c.AUTHOR_ROW]
        topic = self.state.index.topic[batch[c.POST_ROW]].astype(np.int64)
        page = np.maximum(np.fromiter((q.n for q in queries), np.int64, len(queries)), 1)
        keep = np.flatnonzero(rank_within(seg * (int(authors.max(initial=0)) + 1) + authors, score)
                              < cfg.max_per_author)
        ks, sk = seg[keep], score[keep]
        topic_cap = np.maximum(1, np.ceil(cfg.max_per_topic_share * page)).astype(np.int64)
        t = topic[keep]
        diverse = (t < 0) | (rank_within(ks * (int(t.max(initial=0)) + 2) + t + 1, sk) < topic_cap[ks])
        # Content-type mix: a soft cap on posts without media when a viewer's candidates hold both kinds.
        media = batch[c.HAS_MEDIA][keep]
        n_media = np.bincount(ks, weights=media, minlength=len(segments))
        both = (n_media > 0) & (n_media < np.bincount(ks, minlength=len(segments)))
        media_cap = np.maximum(1, np.ceil(cfg.max_without_media_share * page)).astype(np.int64)
        diverse &= ~both[ks] | media | (rank_within(ks * 2 + media, sk) < media_cap[ks])
        keep = keep[np.lexsort((-sk, ~diverse, ks))]  # per viewer: diverse first, each part best first
        if cfg.mmr_lambda is not None:
            lam, ks = cfg.mmr_lambda, seg[keep]
            bounds = np.r_[0, np.cumsum(np.bincount(ks, minlength=len(segments)))]
            keep = np.concatenate([self._mmr(keep[bounds[i]:bounds[i + 1]], score, topic, lam, int(page[i]))
                                   for i in range(len(segments))]) if len(keep) else keep
        return keep

    @staticmethod
    def _mmr(keep: np.ndarray, score: np.ndarray, topic: np.ndarray, lam: float, n: int) -> np.ndarray:
        """Maximal marginal relevance: relevance − similarity to what is already chosen (same topic = 1)."""
        if len(keep) == 0:
            return keep
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
        return np.concatenate([keep[chosen], keep[~taken]])


class MixSelector(_StateSelector):
    """The page, in the incoming order: at most 2 out-of-network posts in a row while in-network posts
    remain (scarce in-network posts are spread out to keep the page full), out-of-network share as a
    soft target. After the last in-network post the page is backfilled with out-of-network posts, or
    ends short when `mixing.backfill` is off."""

    name = "mix"
    reads = (c.IN_NETWORK,)

    def select(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        cfg = self.state.config.timeline.mixing
        # The incoming order is the preference (best first, diversity already applied upstream).
        in_net = batch[c.IN_NETWORK]
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
