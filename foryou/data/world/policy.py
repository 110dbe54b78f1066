"""The world's logging policy: which post fills each slot of a session, and its exact propensity.

Each slot of a session picks a route — in-network (a uniformly chosen followee, then one of their posts
in the window), topic (a topic from a smoothed interest mix, then a post of that topic in the window)
or global (any post in the window) — and within the route a post uniformly. A route with nothing to
offer falls back to global. The propensity is the total probability of the shown post over all routes
(known exactly, so every impression stores it). One's own posts are never shown.

Also the small vectorised helpers the generator shares with it (sampling from row-wise CDFs, ranks
within sorted groups, counts of sorted keys in windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foryou.config import WorldConfig
from foryou.data.lookup import member, searchsorted_many

_BIG = np.int64(1 << 40)  # key = group · 2⁴⁰ + relative time


def sample_rows(cdf: np.ndarray, rows: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Sample one category per draw from row-wise CDFs (U, K) with one searchsorted."""
    n_rows, k = cdf.shape
    flat = (cdf + np.arange(n_rows)[:, None]).ravel()
    idx = np.searchsorted(flat, rows + r, side="right") - rows * k
    return np.minimum(idx, k - 1)


def rank_within(groups: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal (sorted) group values."""
    starts = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    counts = np.diff(np.r_[starts, len(groups)])
    return np.arange(len(groups)) - np.repeat(starts, counts)


def count_in(keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first index, count) of sorted `keys` in [lo, hi), for arrays of windows."""
    a = searchsorted_many(keys, lo)
    return a, searchsorted_many(keys, hi) - a


@dataclass(frozen=True)
class Offers:
    """What each route offers each session of a chunk: windows into the sorted post keys."""

    g_lo: np.ndarray  # global: first post row in the window, and how many
    g_n: np.ndarray
    tc_lo: np.ndarray  # topic: (session, topic) → first index into by_topic, and how many
    tc_n: np.ndarray
    deg: np.ndarray  # in-network: the session user's followees ...
    pair_start: np.ndarray  # ... their first (session, followee) pair ...
    pf_lo: np.ndarray  # ... and per pair the first index into by_author, and how many
    pf_n: np.ndarray
    p_in: np.ndarray  # P(in-network route): 0 for users who follow nobody
    g_mass: np.ndarray  # P(global), fallbacks of empty routes included


class LoggingPolicy:
    """The policy over one world's posts and follow graph (posts sorted by creation time)."""

    def __init__(self, cfg: WorldConfig, interests: np.ndarray, p_created: np.ndarray, p_topic: np.ndarray,
                 p_author: np.ndarray, f_indptr: np.ndarray, f_dst: np.ndarray, f_key: np.ndarray):
        self.cfg = cfg
        self.window = int(cfg.window_hours * 3600)
        self.rel = p_created - cfg.start_time + 2 * self.window  # ≥ 0, fits with room in 2**40
        self.p_topic, self.p_author = p_topic, p_author
        self.by_topic = np.lexsort((self.rel, p_topic))
        self.topic_keys = p_topic[self.by_topic].astype(np.int64) * _BIG + self.rel[self.by_topic]
        self.by_author = np.lexsort((self.rel, p_author))
        self.author_keys = p_author[self.by_author].astype(np.int64) * _BIG + self.rel[self.by_author]
        k = cfg.n_topics
        self.tau = 0.5 * interests + 0.5 / k  # the policy's (smoothed) view of interests
        self.tau_cdf = np.cumsum(self.tau, 1)
        self.f_indptr, self.f_dst, self.f_key = f_indptr, f_dst, f_key
        self.deg = np.diff(f_indptr)

    def fill(self, u: np.ndarray, t: np.ndarray, first_session: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, ...]:
        """Impressions of these sessions (users `u` at times `t`, ids from `first_session`):
        (user, post row, time, session id, position, propensity)."""
        offers = self.offers(u, t)
        ss, post, pos = self.draw(u, offers, rng)
        prop = self.propensity(u, ss, post, offers)
        sid = np.arange(first_session, first_session + len(u))
        return (u[ss], post, t[ss] + pos.astype(np.int64) * 6, sid[ss], pos,
                np.minimum(prop, 1.0).astype(np.float32))

    def offers(self, u: np.ndarray, t: np.ndarray) -> Offers:
        cfg, k = self.cfg, self.cfg.n_topics
        t_rel = t - cfg.start_time + 2 * self.window
        lo_rel = t_rel - self.window
        g_lo, g_n = count_in(self.rel, lo_rel, t_rel)
        # Per session and topic: posts of that topic in the window (queries built topic-major,
        # so they are already sorted: sessions are in time order).
        tk = np.arange(k, dtype=np.int64)[:, None] * _BIG
        tc_lo, tc_n = count_in(self.topic_keys, (tk + lo_rel[None, :]).ravel(), (tk + t_rel[None, :]).ravel())
        tc_lo, tc_n = tc_lo.reshape(k, -1).T, tc_n.reshape(k, -1).T
        topic_fallback = (self.tau[u] * (tc_n == 0)).sum(1)
        # Per (session, followee): the followee's posts in the window; share of followees with none.
        d = self.deg[u]
        pair_start = np.r_[0, np.cumsum(d)[:-1]]
        pair_s = np.repeat(np.arange(len(u)), d)
        pair_f = self.f_dst[np.repeat(self.f_indptr[u], d) + rank_within(pair_s)] if len(pair_s) else pair_s
        pf_lo, pf_n = count_in(self.author_keys, pair_f * _BIG + lo_rel[pair_s], pair_f * _BIG + t_rel[pair_s])
        empty = np.bincount(pair_s, weights=(pf_n == 0), minlength=len(u))
        in_fallback = np.where(d > 0, empty / np.maximum(d, 1), 0.0)
        pi_in, pi_t, pi_g = cfg.policy_in_network, cfg.policy_topic, cfg.policy_global
        p_in = np.where(d > 0, pi_in, 0.0)
        g_mass = pi_g + np.where(d > 0, 0.0, pi_in) + pi_t * topic_fallback + p_in * in_fallback
        return Offers(g_lo, g_n, tc_lo, tc_n, d, pair_start, pf_lo, pf_n, p_in, g_mass)

    def draw(self, u: np.ndarray, o: Offers, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every slot: a route, then a post uniformly within it (global when it is empty).
        Returns (session of each shown slot, post row, position in the session)."""
        slots = self.cfg.session_size
        m = len(u) * slots
        ss = np.repeat(np.arange(len(u)), slots)
        route_r = rng.random(m)
        is_in = route_r < o.p_in[ss]
        is_topic = (~is_in) & (route_r < o.p_in[ss] + self.cfg.policy_topic)
        post = np.full(m, -1, dtype=np.int64)
        r_pick = rng.random(m)
        pair = o.pair_start[ss] + (rng.random(m) * o.deg[ss]).astype(np.int64)
        slot = np.flatnonzero(is_in)
        slot = slot[o.pf_n[pair[slot]] > 0]
        post[slot] = self.by_author[o.pf_lo[pair[slot]] + (r_pick[slot] * o.pf_n[pair[slot]]).astype(np.int64)]
        tp = sample_rows(self.tau_cdf, u[ss], rng.random(m))
        t_lo, t_n = o.tc_lo[ss, tp], o.tc_n[ss, tp]
        ok = is_topic & (t_n > 0)
        post[ok] = self.by_topic[t_lo[ok] + (r_pick[ok] * t_n[ok]).astype(np.int64)]
        ok = (post < 0) & (o.g_n[ss] > 0)
        # Posts are sorted by creation time: the k-th post of the window is row g_lo + k.
        post[ok] = o.g_lo[ss][ok] + (r_pick[ok] * o.g_n[ss][ok]).astype(np.int64)
        shown = post >= 0
        shown[shown] = self.p_author[post[shown]] != u[ss[shown]]  # never one's own post
        pos = (np.flatnonzero(shown) % slots).astype(np.int16)
        return ss[shown], post[shown], pos

    def propensity(self, u: np.ndarray, ss: np.ndarray, post: np.ndarray, o: Offers) -> np.ndarray:
        """Exact probability of each shown post over all routes."""
        uu, author = u[ss], self.p_author[post]
        ptopic = self.p_topic[post].astype(np.int64)
        prop = o.g_mass[ss] / o.g_n[ss]
        prop += self.cfg.policy_topic * self.tau[uu, ptopic] / np.maximum(o.tc_n[ss, ptopic], 1)
        follows, fpos = member(self.f_key, uu * self.cfg.n_users + author)
        an = o.pf_n[np.where(follows, o.pair_start[ss] + fpos - self.f_indptr[uu], 0)] if len(o.pf_n) else 0
        prop += np.where(follows, o.p_in[ss] / np.maximum(self.deg[uu], 1) / np.maximum(an, 1), 0.0)
        return prop
