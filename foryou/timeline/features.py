"""Feature hydration for the merged candidates: one vectorised pass over index and overlay columns."""

from __future__ import annotations

import numpy as np

from foryou.data.lookup import values_at
from foryou.graph.index import POSITIVE
from foryou.mixer import CandidateBatch, FeatureHydrator
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import TimelineState

PRIOR_IMPRESSIONS = 20.0  # pseudo-impressions that pull a post's rate toward the base rate


class PostFeatureHydrator(FeatureHydrator):
    name = "post_features"

    def __init__(self, state: TimelineState):
        self.state = state
        self.base_positive = max(sum(state.index.base_rate[k] for k in POSITIVE), 1e-4)

    def hydrate(self, query: TimelineQuery, batch: CandidateBatch) -> dict[str, np.ndarray]:
        s, f = self.state, query.features
        idx, ov = s.index, s.overlay
        rows, authors = batch["post_row"], batch["author_row"]
        r0 = self.base_positive
        positive = sum(ov.counts[k][rows] for k in POSITIVE).astype(np.float32)
        imps = ov.impressions_count[rows].astype(np.float32)
        author_pos, author_imps = idx.author_positive[authors], idx.author_impressions[authors]

        follows = f["follows"]
        in_network = np.isin(authors, follows)
        realgraph = values_at(f["top_follows"], f["top_follow_weights"], authors, 0.0)
        social = values_at(f["proof_posts"], f["proof_count"], rows, 0)

        profile = f["topic_profile"]
        topic = idx.topic[rows].astype(np.int64)
        topic_affinity = np.where(topic >= 0, profile[np.maximum(topic, 0)], 1.0 / len(profile))
        sc = s.simclusters.score(query.user_row, rows) if s.simclusters is not None else np.zeros(len(rows))
        return {
            "age_h": ((query.now - idx.created_at[rows]) / 3600.0).astype(np.float32),
            "in_network": in_network,
            "realgraph": np.asarray(realgraph, dtype=np.float32),
            "social_proof": np.asarray(social, dtype=np.int32),
            "topic_affinity": topic_affinity.astype(np.float32),
            "simclusters_score": np.asarray(sc, dtype=np.float32),
            "post_rate": ((positive + PRIOR_IMPRESSIONS * r0) / (imps + PRIOR_IMPRESSIONS)).astype(np.float32),
            "author_rate": ((author_pos + PRIOR_IMPRESSIONS * r0) / (author_imps + PRIOR_IMPRESSIONS)
                            ).astype(np.float32),
            "engagements_24h": ov.counts_24h[rows].astype(np.float32),
            "impressions": imps,
            "has_media": idx.has_media[rows],
            "has_link": idx.has_link[rows],
            "is_reply": idx.kind[rows] == 1,
            "is_nsfw": idx.is_nsfw[rows],
            "is_toxic": idx.is_toxic[rows],
            "is_spam": idx.is_spam[rows],
            "is_misinfo": idx.is_misinfo[rows],
        }
