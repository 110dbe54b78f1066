"""Training rows for datasets without impressions (positives-only imports: MovieLens, Last.fm, Higgs).

The standard implicit-feedback recipe: every engagement the heads learn is a row at its own time, and
each one brings k sampled negatives for the same user at the same instant — posts that existed then,
not the user's own, drawn uniformly (or by popularity: an engagement drawn uniformly among those before
t, and its post). The rows only say who, what and when; `build_rows` labels them from the engagements
as it labels impressions.

A draw on a post the user engages with (up to the window's end) is dropped, not kept as a positive at
the draw's time: on a small catalog (MovieLens: 1,682 movies, ~100 ratings a user) "the earliest row of
each pair" moved 32 % of the positives (64 % at k = 16) to a random earlier instant, before the user
had seen the movie, with the user's features of then. Probabilities are relative to the sampled
negatives (P(action | engaged with or sampled)), not per impression: AUC on such rows is "positive vs
sampled negative", and the heads' scale depends on k.
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.dataset import Dataset
from foryou.data.lookup import member
from foryou.data.split import Window
from foryou.features import FeatureStore

REDRAWS = 8  # rounds of redrawing negatives that hit the user's own post; what is left is dropped

Sampling = Literal["uniform", "popularity"]


def window_seed(seed: int, window: Window) -> np.random.Generator:
    """One stream per (seed, window): train, validation and test draw different negatives."""
    return np.random.default_rng([seed, zlib.crc32(window.name.encode())])


def sampled_rows(dataset: Dataset, store: FeatureStore, window: Window, kinds: tuple[str, ...], k: int = 4,
                 seed: int = 0, sampling: Sampling = "uniform") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user_row, post_row, time) sorted by time: the window's engagements of `kinds` (those the heads
    learn), one row per (user, post) at its first engagement, plus k negatives each, minus the draws on a
    post the user engages with before the window's end; a negative pair drawn twice keeps its earliest
    row. Users and posts the store does not know are skipped."""
    e = dataset.engagements
    e = e.filter(pc.is_in(e["kind"], pa.array(list(kinds))))
    if window.end is not None:
        e = e.filter(pc.less(e["created_at"], window.end))
    u, p, t = _known(store, e["user_id"].to_numpy(), e["post_id"].to_numpy(), e["created_at"].to_numpy())
    n_posts = len(store.post_id)
    engaged = np.unique(u * n_posts + p)
    in_window = t >= window.start if window.start is not None else np.ones(len(t), bool)
    u, p, t = dedupe(u[in_window], p[in_window], t[in_window], n_posts)
    nu, np_, nt = sample_negatives(store, u, t, k, window_seed(seed, window), sampling,
                                   dataset.engagements if sampling == "popularity" else None)
    fresh = ~member(engaged, nu * n_posts + np_)[0]
    nu, np_, nt = dedupe(nu[fresh], np_[fresh], nt[fresh], n_posts)
    u, p, t = np.concatenate([u, nu]), np.concatenate([p, np_]), np.concatenate([t, nt])
    order = np.lexsort((u * n_posts + p, t))
    return u[order], p[order], t[order]


def sample_negatives(store: FeatureStore, user_row: np.ndarray, time: np.ndarray, k: int,
                     rng: np.random.Generator, sampling: Sampling = "uniform",
                     engagements: pa.Table | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k posts per (user, time): created strictly before `time`, never authored by the user. Vectorised:
    a searchsorted on creation (or engagement) time bounds each draw; own posts are redrawn REDRAWS
    times, then dropped, as are rows with nothing to draw from."""
    u = np.repeat(np.asarray(user_row, np.int64), k)
    t = np.repeat(np.asarray(time, np.int64), k)
    if sampling == "uniform":
        order = np.argsort(store.created_at, kind="stable")
        pool_time, pool_post = store.created_at[order], order
    else:  # popularity: the post of an engagement drawn uniformly among those before t, if it existed by t
        if engagements is None:
            raise ValueError("popularity sampling needs the engagements table")
        e_t = engagements["created_at"].to_numpy()
        _, e_p, e_t = _known(store, engagements["user_id"].to_numpy(), engagements["post_id"].to_numpy(), e_t)
        order = np.argsort(e_t, kind="stable")
        pool_time, pool_post = e_t[order], e_p[order]
    n = np.searchsorted(pool_time, t, side="left")  # pool entries strictly before t
    post = np.full(len(t), -1, np.int64)
    todo = np.flatnonzero(n > 0)
    for _ in range(REDRAWS):  # rounds over the rows still to draw, never a loop per row
        if len(todo) == 0:
            break
        draw = pool_post[(rng.random(len(todo)) * n[todo]).astype(np.int64)]
        bad = store.author_row[draw] == u[todo]
        if sampling == "popularity":
            bad |= store.created_at[draw] >= t[todo]
        post[todo[~bad]] = draw[~bad]
        todo = todo[bad]
    keep = post >= 0
    return u[keep], post[keep], t[keep]


def dedupe(user_row: np.ndarray, post_row: np.ndarray, time: np.ndarray,
           n_posts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per (user, post), the earliest; sorted by time (ties by key, so the order is reproducible)."""
    key = user_row.astype(np.int64) * n_posts + post_row
    first = np.lexsort((time, key))
    key_sorted = key[first]
    first = first[np.r_[True, key_sorted[1:] != key_sorted[:-1]]]
    first = first[np.lexsort((key[first], time[first]))]
    return user_row[first], post_row[first], time[first]


def _known(store: FeatureStore, user_id: np.ndarray, post_id: np.ndarray,
           time: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u_ok, u = member(store.user_ids, user_id)
    p_ok, p = member(store.post_id, post_id)
    ok = u_ok & p_ok
    return u[ok].astype(np.int64), p[ok].astype(np.int64), np.asarray(time, np.int64)[ok]
