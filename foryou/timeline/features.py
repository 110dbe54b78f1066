"""Feature hydration for the merged candidates: the feature store's matrix plus the request-specific
columns (network, RealGraph, social proof, topic affinity, SimClusters).

It runs once over every query's candidates (`hydrate_many`): one feature-store pass for thousands of
(viewer, post) pairs costs a fraction of a pass per request, and the per-viewer lookups become one
keyed lookup over all viewers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from foryou.data.lookup import values_at
from foryou.features import FEATURE_NAMES, FEATURES, FeatureStore
from foryou.mixer import CandidateBatch, FeatureHydrator, Segments, isin_per_query, stack_per_query
from foryou.timeline import columns as c
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import TimelineState
from foryou.vocab import HOUR

HEURISTIC_FEATURES = ("post_rate", "author_rate", "has_media", "has_link", "is_reply", "is_nsfw", "is_toxic",
                      "is_spam", "is_misinfo")


class PostFeatureHydrator(FeatureHydrator[TimelineQuery]):
    name = "post_features"
    reads = (c.POST_ROW, c.AUTHOR_ROW)
    needs = (c.FOLLOWS, c.TOP_FOLLOWS, c.TOP_FOLLOW_WEIGHTS, c.PROOF_POSTS, c.PROOF_COUNT, c.TOPIC_PROFILE,
             c.RELATED_POSTS, c.RELATED_SCORES, c.ENGAGED_AUTHORS, c.ENGAGED_AUTHOR_COUNTS)
    writes = (c.FEATURES, c.AGE_H, c.IN_NETWORK, c.REALGRAPH, c.SOCIAL_PROOF, c.TOPIC_AFFINITY, c.SIMCLUSTERS_SCORE,
              c.RELATED, c.AUTHOR_AFFINITY, c.TRENDING_COUNT, c.POST_RATE, c.AUTHOR_RATE, *c.FLAGS)

    def __init__(self, state: TimelineState):
        self.state = state

    def hydrate(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        return self.hydrate_many([query], batch, Segments.single(len(batch)))

    def hydrate_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch,
                     segments: Segments) -> dict[str, np.ndarray]:
        s = self.state
        idx = s.index
        rows, authors = batch[c.POST_ROW], batch[c.AUTHOR_ROW]
        seg = segments.ids
        viewers = segments.per_row(np.fromiter((q.user_row for q in queries), np.int64, len(queries)))
        times = np.fromiter((q.now for q in queries), np.int64, len(queries))
        # One instant for all (a request, a batch at one time) stays a scalar: the store broadcasts it.
        nows: np.ndarray | int = int(times[0]) if (times == times[0]).all() else segments.per_row(times)
        # The feature store's matrix: the trained models' inputs; the heuristic ranker reads the same
        # columns, so there is one definition of every rate. With a trained heavy ranker every feature
        # is needed; the heuristic reads a few columns.
        names = FEATURE_NAMES if s.heavy_ranker() is not None else HEURISTIC_FEATURES
        x = (feature_matrix(s.store, viewers, rows, nows, names) if len(segments) > 1
             else s.store.compute(viewers, rows, nows, names))
        index = {name: i for i, name in enumerate(names)}

        def col(name: str) -> np.ndarray:
            return x[:, index[name]]

        def feature(name: str) -> list[np.ndarray]:
            return [q.features[name] for q in queries]

        realgraph = lookup_per_query(authors, segments, feature(c.TOP_FOLLOWS), feature(c.TOP_FOLLOW_WEIGHTS), 0.0)
        social = lookup_per_query(rows, segments, feature(c.PROOF_POSTS), feature(c.PROOF_COUNT), 0)
        related = lookup_per_query(rows, segments, feature(c.RELATED_POSTS), feature(c.RELATED_SCORES), 0.0)
        affinity = lookup_per_query(authors, segments, feature(c.ENGAGED_AUTHORS), feature(c.ENGAGED_AUTHOR_COUNTS),
                                    0.0)
        profiles = np.stack(feature(c.TOPIC_PROFILE))  # queries × topics
        topic = idx.topic[rows].astype(np.int64)
        topic_affinity = np.where(topic >= 0, profiles[seg, np.maximum(topic, 0)], 1.0 / profiles.shape[1])
        out = {c.FEATURES: x} if names is FEATURE_NAMES else {}
        return out | {
            c.AGE_H: ((nows - idx.created_at[rows]) / 3600.0).astype(np.float32),
            c.IN_NETWORK: isin_per_query(authors, segments, feature(c.FOLLOWS)),
            c.REALGRAPH: np.asarray(realgraph, dtype=np.float32),
            c.SOCIAL_PROOF: np.asarray(social, dtype=np.int32),
            c.TOPIC_AFFINITY: topic_affinity.astype(np.float32),
            c.SIMCLUSTERS_SCORE: self._simclusters(queries, rows, segments),
            c.RELATED: np.asarray(related, dtype=np.float32),
            c.AUTHOR_AFFINITY: np.asarray(affinity, dtype=np.float32),
            c.TRENDING_COUNT: trending_counts(s, rows).astype(np.float32),
            c.POST_RATE: col("post_rate"),
            c.AUTHOR_RATE: col("author_rate"),
            **{flag: col(flag) > 0 for flag in c.FLAGS},
        }

    def _simclusters(self, queries: Sequence[TimelineQuery], rows: np.ndarray, segments: Segments) -> np.ndarray:
        sc = self.state.simclusters
        out = np.zeros(len(rows), np.float32)
        if sc is not None:
            for i, lo, hi in segments.bounds():
                out[lo:hi] = sc.score(queries[i].user_row, rows[lo:hi])
        return out


def trending_counts(state: TimelineState, rows: np.ndarray) -> np.ndarray:
    """Positive engagements (`trending_counts`) of these posts in the `trending_count_hours` before the index
    build, plus the live ones since (overlay). 24 h is the feed's velocity; a catalog (movies, artists) trends
    over weeks, and a day of its events is a noisy sample of its popularity."""
    ov, idx = state.overlay, state.index
    src = state.config.timeline.sources
    if src.trending_count_hours == 24 and src.trending_counts == "positive":
        return np.asarray(ov.counts_24h[rows])
    live = ov.counts_24h[rows] - idx.counts_24h[rows]  # live positives since the build
    since = idx.as_of - int(src.trending_count_hours * HOUR)
    return np.asarray(idx.positives_since(since, src.trending_counts)[rows] + live)


def lookup_per_query(probe: np.ndarray, segments: Segments, keys: Sequence[np.ndarray],
                     values: Sequence[np.ndarray], default: float) -> np.ndarray:
    """For each row r of query i: values[i][j] where keys[i][j] == probe[r], else `default` (one lookup)."""
    if len(segments) == 1:
        return values_at(keys[0], values[0], probe, default)
    scale = int(max([int(probe.max(initial=0))] + [int(np.max(k, initial=0)) for k in keys])) + 1
    stacked, _ = stack_per_query(keys, scale)
    vals = np.concatenate([np.asarray(v) for v in values])
    return values_at(stacked, vals, segments.ids * scale + probe, default)


GROUP = {f.name: f.group for f in FEATURES}


def feature_matrix(store: FeatureStore, viewers: np.ndarray, rows: np.ndarray, t: np.ndarray | int,
                   names: tuple[str, ...]) -> np.ndarray:
    """`store.compute(viewers, rows, t, names)`, each feature group computed once per distinct key at one
    instant: post and author features once per post, the viewer's own features once per (viewer, topic),
    only the viewer × author ones per row. Many viewers' candidates share posts (trending, topics) and
    topics, so most counter lookups are done once (for one request the extra calls cost more than that)."""
    if not isinstance(t, int):
        return store.compute(viewers, rows, t, names)
    out = np.empty((len(rows), len(names)), np.float32)
    parts: dict[str, list[int]] = {"post": [], "user": [], "row": []}
    for i, name in enumerate(names):
        group = GROUP.get(name, "row")
        parts["post" if group in ("post", "author") else "user" if group == "user" else "row"].append(i)
    def columns(group: str) -> slice | list[int]:  # a block of adjacent columns is written as a slice
        at = parts[group]
        return slice(at[0], at[-1] + 1) if at == list(range(at[0], at[-1] + 1)) else at

    if parts["post"]:
        posts, inv = np.unique(rows, return_inverse=True)
        sub = tuple(names[i] for i in parts["post"])
        out[:, columns("post")] = store.compute(np.zeros(len(posts), np.int64), posts, t, sub)[inv]
    if parts["user"]:
        key = viewers * store.n_topics + np.maximum(store.topic[store.content_row[rows]], 0)
        _, first, inv = np.unique(key, return_index=True, return_inverse=True)
        sub = tuple(names[i] for i in parts["user"])
        out[:, columns("user")] = store.compute(viewers[first], rows[first], t, sub)[inv]
    if parts["row"]:
        out[:, columns("row")] = store.compute(viewers, rows, t, tuple(names[i] for i in parts["row"]))
    return out

