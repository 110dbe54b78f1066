"""Filters, cheapest first (REFERENCE.md). Each returns a keep-mask; the trace names the removed.

Each also answers for many viewers at once (`keep_many`): a per-viewer set (seen posts, blocked
authors) becomes one keyed `np.isin` over every viewer's candidates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from foryou.mixer import CandidateBatch, Filter, Segments, isin_per_query
from foryou.timeline import columns as c
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import UsesState
from foryou.vocab import DAY, HOUR, POST_KINDS

REPOST = POST_KINDS.index("repost")


class _StateFilter(UsesState, Filter[TimelineQuery]):
    def keep(self, query: TimelineQuery, batch: CandidateBatch) -> np.ndarray:
        return self.keep_many([query], batch, Segments.single(len(batch)))


def _viewers(queries: Sequence[TimelineQuery], segments: Segments) -> np.ndarray:
    return segments.per_row(np.fromiter((q.user_row for q in queries), np.int64, len(queries)))


def _nows(queries: Sequence[TimelineQuery], segments: Segments) -> np.ndarray:
    return segments.per_row(np.fromiter((q.now for q in queries), np.int64, len(queries)))


class OwnPostsFilter(_StateFilter):
    name = "own_posts"
    reads = (c.AUTHOR_ROW,)

    def keep_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        return np.asarray(batch[c.AUTHOR_ROW] != _viewers(queries, segments))


class RepostDedupFilter(_StateFilter):
    """One post per content: a repost goes when its original (or an earlier repost of it) is present."""

    name = "repost_dedup"
    reads = (c.POST_ROW,)

    def keep_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        idx = self.state.index
        rows = batch[c.POST_ROW]
        parent = idx.parent_row[rows]
        is_repost = idx.kind[rows] == REPOST
        content = np.where(is_repost, parent, rows)
        # Per viewer, originals sort before reposts of the same content; the first of each content is kept.
        seg = segments.ids
        order = np.lexsort((is_repost, content, seg))
        cs, ss = content[order], seg[order]
        first = np.r_[True, (cs[1:] != cs[:-1]) | (ss[1:] != ss[:-1])]
        keep = np.zeros(len(rows), dtype=bool)
        keep[order[first]] = True
        return keep


class PreviouslySeenFilter(_StateFilter):
    name = "previously_seen"
    reads = (c.POST_ROW,)
    needs = (c.SEEN,)

    def keep_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        gone = [np.concatenate((q.features[c.SEEN], q.served)) if len(q.served) else q.features[c.SEEN]
                for q in queries]
        return ~isin_per_query(batch[c.POST_ROW], segments, gone)


class AuthorBlockFilter(_StateFilter):
    """Blocked and muted authors."""

    name = "blocked_muted_authors"
    reads = (c.AUTHOR_ROW,)
    needs = (c.BLOCKED_AUTHORS,)

    def keep_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        return ~isin_per_query(batch[c.AUTHOR_ROW], segments, [q.features[c.BLOCKED_AUTHORS] for q in queries])


class FeedbackFatigueFilter(_StateFilter):
    """Authors the viewer said 'see fewer' about within the drop window (14 days)."""

    name = "feedback_fatigue"
    reads = (c.AUTHOR_ROW,)
    needs = (c.FATIGUE_AUTHORS, c.FATIGUE_TIMES)

    def keep_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        window = self.state.config.timeline.ranking.fatigue_drop_days * DAY
        recent = [q.features[c.FATIGUE_AUTHORS][q.features[c.FATIGUE_TIMES] >= q.now - window] for q in queries]
        return ~isin_per_query(batch[c.AUTHOR_ROW], segments, recent)


class TooOldFilter(_StateFilter):
    name = "too_old"
    reads = (c.POST_ROW,)

    def keep_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        max_age = self.state.config.timeline.sources.max_age_hours * HOUR
        created = self.state.index.created_at[batch[c.POST_ROW]]
        now = _nows(queries, segments)
        return np.asarray((created >= now - max_age) & (created <= now))


class OutOfNetworkSocialProofFilter(_StateFilter):
    """After ranking: an out-of-network post needs social proof or a topic the viewer engages with."""

    name = "out_of_network_needs_proof_or_topic"
    reads = (c.IN_NETWORK, c.SOCIAL_PROOF, c.TOPIC_AFFINITY)
    needs = (c.TOPIC_PROFILE,)

    def keep_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        # Every viewer's profile has one share per topic, so one threshold serves them all.
        topic_match = batch[c.TOPIC_AFFINITY] >= 1.0 / len(queries[0].features[c.TOPIC_PROFILE])
        return np.asarray(batch[c.IN_NETWORK] | (batch[c.SOCIAL_PROOF] > 0) | topic_match)


class OutOfNetworkNsfwFilter(_StateFilter):
    name = "out_of_network_nsfw"
    reads = (c.IN_NETWORK, c.POST_ROW)

    def keep_many(self, queries: Sequence[TimelineQuery], batch: CandidateBatch, segments: Segments) -> np.ndarray:
        if not self.state.config.timeline.safety.drop_out_of_network_nsfw:
            return np.ones(len(batch), dtype=bool)
        return np.asarray(batch[c.IN_NETWORK] | ~self.state.index.is_nsfw[batch[c.POST_ROW]])
