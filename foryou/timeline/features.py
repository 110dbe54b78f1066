"""Feature hydration for the merged candidates: the feature store's matrix (once per request) plus the
request-specific columns (network, RealGraph, social proof, topic affinity, SimClusters)."""

from __future__ import annotations

import numpy as np

from foryou.data.lookup import values_at
from foryou.features import FEATURE_NAMES
from foryou.mixer import CandidateBatch, FeatureHydrator
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import TimelineState

HEURISTIC_FEATURES = ("post_rate", "author_rate", "has_media", "has_link", "is_reply", "is_nsfw", "is_toxic",
                      "is_spam", "is_misinfo")


class PostFeatureHydrator(FeatureHydrator):
    name = "post_features"

    def __init__(self, state: TimelineState):
        self.state = state

    def hydrate(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        s, f = self.state, query.features
        idx = s.index
        rows, authors = batch["post_row"], batch["author_row"]
        # The feature store's matrix: the trained models' inputs, computed once per request; the
        # heuristic ranker reads the same columns, so there is one definition of every rate.
        # With a trained heavy ranker every feature is needed; the heuristic reads a few columns.
        names = FEATURE_NAMES if "heavy_ranker" in s.models else HEURISTIC_FEATURES
        x = s.features.compute(np.full(len(rows), query.user_row), rows, query.now, names)
        index = {name: i for i, name in enumerate(names)}

        def col(name: str) -> np.ndarray:
            return x[:, index[name]]

        realgraph = values_at(f["top_follows"], f["top_follow_weights"], authors, 0.0)
        social = values_at(f["proof_posts"], f["proof_count"], rows, 0)
        profile = f["topic_profile"]
        topic = idx.topic[rows].astype(np.int64)
        topic_affinity = np.where(topic >= 0, profile[np.maximum(topic, 0)], 1.0 / len(profile))
        sc = s.simclusters.score(query.user_row, rows) if s.simclusters is not None else np.zeros(len(rows))
        out = {"features": x} if names is FEATURE_NAMES else {}
        return out | {
            "age_h": ((query.now - idx.created_at[rows]) / 3600.0).astype(np.float32),
            "in_network": np.isin(authors, f["follows"]),
            "realgraph": np.asarray(realgraph, dtype=np.float32),
            "social_proof": np.asarray(social, dtype=np.int32),
            "topic_affinity": topic_affinity.astype(np.float32),
            "simclusters_score": np.asarray(sc, dtype=np.float32),
            "post_rate": col("post_rate"),
            "author_rate": col("author_rate"),
            **{name: col(name) > 0 for name in ("has_media", "has_link", "is_reply", "is_nsfw", "is_toxic",
                                                "is_spam", "is_misinfo")},
        }
