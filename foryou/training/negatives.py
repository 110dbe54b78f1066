"""Training rows for datasets without impressions (positives-only imports: MovieLens, Last.fm, Higgs).

The standard implicit-feedback recipe: every engagement the heads learn is a row at its own time, and
each one brings k sampled negatives for the same user at the same instant — posts that existed then,
not the user's own, drawn uniformly (or by popularity: an engagement drawn uniformly among those before
t, and its post). The rows only say who, what and when; `build_rows` labels them from the engagements
as it labels impressions.

`hard` negatives are drawn from what the engine could have served the user at that instant: posts
alive then (younger than `timeline.sources.max_age_hours`, the TooOldFilter's window) — half of them in
proportion to their positive engagements in the trending-count window before t (the trending sources'
pool), half uniformly among the alive posts (the rest of the candidate set). This reproduces the main
candidate sources from the engagement log inside training (training must not import the engine); the
windows come from the config the CLI resolves from the dataset's time scale (foryou.timeline.windows).
A row with nothing alive to draw from is dropped.

A draw on a post the user engages with (up to the window's end) is dropped, not kept as a positive at
the draw's time: on a small catalog (MovieLens: 1,682 movies, ~100 ratings a user) "the earliest row of
each pair" moved 32 % of the positives (64 % at k = 16) to a random earlier instant, before the user
had seen the movie, with the user's features of then. Probabilities are relative to the sampled
negatives (P(action | engaged with or sampled)), not per impression: AUC on such rows is "positive vs
sampled negative", and the heads' scale depends on k.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.dataset import Dataset
from foryou.data.lookup import member
from foryou.data.split import Window
from foryou.features import FeatureStore
from foryou.vocab import POSITIVE

REDRAWS = 8  # rounds of redrawing negatives that hit the user's own post; what is left is dropped

Sampling = Literal["uniform", "popularity", "hard"]
HARD_TRENDING_SHARE = 0.5  # hard negatives drawn from the trending pool; the rest uniformly among alive posts


@dataclass(frozen=True)
class HardWindows:
    """The engine's candidate windows, in seconds: a post older than `max_age` is never served; trending
    counts engagements of the last `trending`."""

    max_age: int
    trending: int


def window_seed(seed: int, window: Window) -> np.random.Generator:
    """One stream per (seed, window): train, validation and test draw different negatives."""
    return np.random.default_rng([seed, zlib.crc32(window.name.encode())])


def sampled_rows(dataset: Dataset, store: FeatureStore, window: Window, kinds: tuple[str, ...], k: int = 4,
                 seed: int = 0, sampling: Sampling = "uniform",
                 hard: HardWindows | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
                                   dataset.engagements if sampling != "uniform" else None, hard=hard)
    fresh = ~member(engaged, nu * n_posts + np_)[0]
    nu, np_, nt = dedupe(nu[fresh], np_[fresh], nt[fresh], n_posts)
    u, p, t = np.concatenate([u, nu]), np.concatenate([p, np_]), np.concatenate([t, nt])
    order = np.lexsort((u * n_posts + p, t))
    return u[order], p[order], t[order]


def sample_negatives(store: FeatureStore, user_row: np.ndarray, time: np.ndarray, k: int,
                     rng: np.random.Generator, sampling: Sampling = "uniform", engagements: pa.Table | None = None,
                     *, hard: HardWindows | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k posts per (user, time): created strictly before `time`, never authored by the user (`hard`: and
    alive at `time`, see the module doc). Vectorised: a searchsorted on creation (or engagement) time
    bounds each draw; own posts are redrawn REDRAWS times, then dropped, as are rows with nothing to draw from."""
    u = np.repeat(np.asarray(user_row, np.int64), k)
    t = np.repeat(np.asarray(time, np.int64), k)
    created, everything = _pool(store), np.full(len(t), np.iinfo(np.int64).min)
    if sampling == "uniform":
        return _draw(store, u, t, created, everything, rng)[:3]
    if engagements is None:
        raise ValueError(f"{sampling} sampling needs the engagements table")
    engaged = _pool(store, engagements, positive=sampling == "hard")
    if sampling == "popularity":  # the post of an engagement drawn uniformly among those before t
        return _draw(store, u, t, engaged, everything, rng)[:3]
    if hard is None:
        raise ValueError("hard negatives need the engine's windows (HardWindows)")
    trending = rng.random(len(t)) < HARD_TRENDING_SHARE
    lo = np.where(trending, t - hard.trending, t - hard.max_age)
    first = _draw(store, u[trending], t[trending], engaged, lo[trending], rng, t[trending] - hard.max_age)
    second = _draw(store, u[~trending], t[~trending], created, lo[~trending], rng)
    # a trending draw with an empty window (nothing engaged with lately) falls back to the alive posts
    missing = np.setdiff1d(np.flatnonzero(trending), np.flatnonzero(trending)[first[3]])
    third = _draw(store, u[missing], t[missing], created, t[missing] - hard.max_age, rng)
    parts = (first, second, third)
    return tuple(np.concatenate([part[i] for part in parts]) for i in range(3))  # type: ignore[return-value]


def _pool(store: FeatureStore, engagements: pa.Table | None = None,
          positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(time, post row) sorted by time: every post at its creation, or every engagement (`positive`: of a
    positive kind) at its own time."""
    if engagements is None:
        order = np.argsort(store.created_at, kind="stable")
        return store.created_at[order], order
    if positive:
        engagements = engagements.filter(pc.is_in(engagements["kind"], pa.array(list(POSITIVE))))
    _, e_p, e_t = _known(store, engagements["user_id"].to_numpy(), engagements["post_id"].to_numpy(),
                         engagements["created_at"].to_numpy())
    order = np.argsort(e_t, kind="stable")
    return e_t[order], e_p[order]


def _draw(store: FeatureStore, u: np.ndarray, t: np.ndarray, pool: tuple[np.ndarray, np.ndarray],
          since: np.ndarray, rng: np.random.Generator, born_after: np.ndarray | None = None,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One post per (u, t) from the pool entries in [since, t), created before t (and at or after
    `born_after`: alive), not by u; (users, posts, times, kept row indices)."""
    pool_time, pool_post = pool
    lo = np.searchsorted(pool_time, since, side="left")
    n = np.searchsorted(pool_time, t, side="left") - lo  # pool entries strictly before t
    post = np.full(len(t), -1, np.int64)
    todo = np.flatnonzero(n > 0)
    for _ in range(REDRAWS):  # rounds over the rows still to draw, never a loop per row
        if len(todo) == 0:
            break
        draw = pool_post[lo[todo] + (rng.random(len(todo)) * n[todo]).astype(np.int64)]
        bad = (store.author_row[draw] == u[todo]) | (store.created_at[draw] >= t[todo])
        if born_after is not None:
            bad |= store.created_at[draw] < born_after[todo]
        post[todo[~bad]] = draw[~bad]
        todo = todo[bad]
    keep = np.flatnonzero(post >= 0)
    return u[keep], post[keep], t[keep], keep


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
