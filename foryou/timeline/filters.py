"""Filters, cheapest first (REFERENCE.md). Each returns a keep-mask; the trace names the removed."""

from __future__ import annotations

import numpy as np

from foryou.mixer import CandidateBatch, Filter
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import UsesState
from foryou.vocab import DAY


class _StateFilter(UsesState, Filter):
    pass


class OwnPostsFilter(_StateFilter):
    name = "own_posts"

    def keep(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return batch["author_row"] != query.user_row


class RepostDedupFilter(_StateFilter):
    """One post per content: a repost goes when its original (or an earlier repost of it) is present."""

    name = "repost_dedup"

    def keep(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        idx = self.state.index
        rows = batch["post_row"]
        parent = idx.parent_row[rows]
        is_repost = idx.kind[rows] == 2
        content = np.where(is_repost, parent, rows)
        # Originals sort before reposts of the same content; the first of each content is kept.
        order = np.lexsort((is_repost, content))
        first = np.r_[True, content[order][1:] != content[order][:-1]]
        keep = np.zeros(len(rows), dtype=bool)
        keep[order[first]] = True
        return keep


class PreviouslySeenFilter(_StateFilter):
    name = "previously_seen"

    def keep(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        seen = query.features["seen"]
        rows = batch["post_row"]
        keep = ~np.isin(rows, seen, assume_unique=False)
        if query.served:
            keep &= ~np.isin(rows, np.fromiter(query.served, np.int64))
        return keep


class AuthorBlockFilter(_StateFilter):
    """Blocked and muted authors."""

    name = "blocked_muted_authors"

    def keep(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return ~np.isin(batch["author_row"], query.features["blocked_authors"])


class FeedbackFatigueFilter(_StateFilter):
    """Authors the viewer said 'see fewer' about within the drop window (14 days)."""

    name = "feedback_fatigue"

    def keep(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        authors, times = query.features["fatigue_authors"], query.features["fatigue_times"]
        window = self.state.config.timeline.ranking.fatigue_drop_days * DAY
        recent = authors[times >= query.now - window]
        return ~np.isin(batch["author_row"], recent)


class TooOldFilter(_StateFilter):
    name = "too_old"

    def keep(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        max_age = self.state.config.timeline.sources.max_age_hours * 3600
        created = self.state.index.created_at[batch["post_row"]]
        return (created >= query.now - max_age) & (created <= query.now)


class OutOfNetworkSocialProofFilter(_StateFilter):
    """After scoring: an out-of-network post needs social proof or a topic the viewer engages with."""

    name = "out_of_network_needs_proof_or_topic"

    def keep(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        profile = query.features["topic_profile"]
        topic_match = batch["topic_affinity"] >= 1.0 / len(profile)
        return batch["in_network"] | (batch["social_proof"] > 0) | topic_match


class OutOfNetworkNsfwFilter(_StateFilter):
    name = "out_of_network_nsfw"

    def keep(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        if not self.state.config.timeline.safety.drop_out_of_network_nsfw:
            return np.ones(len(batch), dtype=bool)
        return batch["in_network"] | ~self.state.index.is_nsfw[batch["post_row"]]
