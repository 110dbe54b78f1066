"""Candidate sources (REFERENCE.md fetch sizes). Each returns a columnar batch and may fail open."""

from __future__ import annotations

import numpy as np

from foryou.data.lookup import values_at
from foryou.mixer import CandidateBatch, CandidateSource, Gate
from foryou.timeline import columns as c
from foryou.timeline.features import trending_counts
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import TimelineState
from foryou.vocab import HOUR


class SourceUnavailable(RuntimeError):
    """A source whose model or data is missing; the request is served without it."""


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first (argpartition, then a small sort)."""
    if len(values) <= k:
        return np.argsort(-values, kind="stable")
    part = np.argpartition(-values, k - 1)[:k]
    return part[np.argsort(-values[part], kind="stable")]


class _Source(CandidateSource[TimelineQuery]):
    writes = (c.POST_ROW, c.POST_ID, c.AUTHOR_ROW, c.RETRIEVAL_SCORE)

    def __init__(self, state: TimelineState):
        self.state = state
        self.cfg = state.config.timeline.sources

    def batch(self, rows: np.ndarray, score: np.ndarray) -> CandidateBatch:
        idx = self.state.index
        rows = np.asarray(rows, dtype=np.int64)
        return CandidateBatch({c.POST_ROW: rows, c.POST_ID: idx.post_id[rows], c.AUTHOR_ROW: idx.author_row[rows],
                               c.RETRIEVAL_SCORE: np.asarray(score, dtype=np.float32)})

    def trending_counts(self, rows: np.ndarray) -> np.ndarray:
        return trending_counts(self.state, rows)


class InNetworkSource(_Source):
    """Recent posts of the viewer's RealGraph-top follows (24 h; 48 h for light users)."""

    name = "in_network"
    needs = (c.TOP_FOLLOWS, c.TOP_FOLLOW_WEIGHTS)

    def fetch(self, query: TimelineQuery) -> CandidateBatch:
        follows = query.features[c.TOP_FOLLOWS]
        idx = self.state.index
        until = query.now + 1  # a post made this very second (an agent's, at the engine's clock) is in-network now
        rows = idx.recent_posts_by(follows, query.now - int(self.cfg.in_network_hours * HOUR), until)
        if len(rows) < query.n:  # light users: look back further (REFERENCE: 48 h)
            rows = idx.recent_posts_by(follows, query.now - int(self.cfg.in_network_hours_light * HOUR), until)
        keep = top_k(idx.created_at[rows].astype(np.float64), self.cfg.in_network)
        rows = rows[keep]
        weight = values_at(follows, query.features[c.TOP_FOLLOW_WEIGHTS], idx.author_row[rows], 0.0)
        return self.batch(rows, weight)


class _ProofPostsSource(_Source):
    """Posts a query hydrator already found and scored (`needs` = posts column, scores column), kept while
    younger than `max_age_hours`, the best `sources.<name>` of them."""

    def fetch(self, query: TimelineQuery) -> CandidateBatch:
        posts_col, score_col = self.needs
        posts, score = query.features[posts_col], query.features[score_col]
        recent = self.state.index.created_at[posts] >= query.now - int(self.cfg.max_age_hours * HOUR)
        posts, score = posts[recent], score[recent]
        keep = top_k(score, getattr(self.cfg, self.name))
        return self.batch(posts[keep], score[keep])


class UtegSource(_ProofPostsSource):
    """Posts the viewer's top follows engaged with (GraphJet's UTEG), scored by RealGraph weight."""

    name = "uteg"
    needs = (c.PROOF_POSTS, c.PROOF_SCORE)


class RelatedPostsSource(_ProofPostsSource):
    """cr-mixer's tweet-based source: posts engaged by users who engaged the same posts as the viewer
    (co-engagement neighbours of their recent engagements), scored by summed similarity."""

    name = "related_posts"
    needs = (c.RELATED_POSTS, c.RELATED_SCORES)


class EngagedAuthorsSource(_Source):
    """Recent posts of the accounts the viewer engages with most but does not follow (the in-network source
    covers follows), scored by those engagements, newest first among equals."""

    name = "engaged_authors"
    needs = (c.ENGAGED_AUTHORS, c.ENGAGED_AUTHOR_COUNTS, c.FOLLOWS)

    def fetch(self, query: TimelineQuery) -> CandidateBatch:
        authors, counts = query.features[c.ENGAGED_AUTHORS], query.features[c.ENGAGED_AUTHOR_COUNTS]
        fresh = ~np.isin(authors, query.features[c.FOLLOWS])
        authors, counts = authors[fresh], counts[fresh]
        best = top_k(counts.astype(np.float64), self.cfg.engaged_authors_top)
        authors, counts = authors[best], counts[best]
        idx = self.state.index
        rows = idx.recent_posts_by(authors, query.now - int(self.cfg.max_age_hours * HOUR), query.now + 1)
        order = np.argsort(authors)
        score = counts[order][np.searchsorted(authors[order], idx.author_row[rows])]
        keep = top_k(score + 1e-9 * (idx.created_at[rows] - query.now), self.cfg.engaged_authors)
        return self.batch(rows[keep], score[keep])


class SimClustersSource(_Source):
    """SimClusters ANN: the viewer's InterestedIn communities → their top recent posts."""

    name = "simclusters"

    def fetch(self, query: TimelineQuery) -> CandidateBatch:
        sc = self.state.simclusters
        if sc is None:
            raise SourceUnavailable("SimClusters not built")
        rows, scores = sc.retrieve(query.user_row, query.now, k=self.cfg.simclusters,
                                   min_created=query.now - int(self.cfg.max_age_hours * HOUR))
        return self.batch(rows, scores)


class EmbeddingVectorsGate(Gate[TimelineQuery]):
    """Skips an embedding source's pipeline until its model (`slot`) is trained and promoted;
    the trace shows the closed gate and the response's `models` says the source fell back."""

    name = "embedding_vectors_trained"

    def __init__(self, state: TimelineState, slot: str = "two_tower"):
        self.state, self.slot = state, slot

    def should_run(self, query: TimelineQuery) -> bool:
        return self.state.retriever(self.slot) is not None


class EmbeddingAnnSource(_Source):
    """Two-tower nearest neighbours (behind EmbeddingVectorsGate)."""

    name = "embedding_ann"

    def fetch(self, query: TimelineQuery) -> CandidateBatch:
        model = self.state.retriever()
        if model is None:
            raise SourceUnavailable("no trained two-tower vectors yet: served from the other sources")
        rows, scores = model.retrieve(query.user_row, query.now, k=self.cfg.embedding_ann)
        return self.batch(rows, scores)


class PhoenixSource(_Source):
    """Phoenix's two-tower: the posts nearest the viewer's history-encoded vector (behind EmbeddingVectorsGate)."""

    name = "phoenix"

    def fetch(self, query: TimelineQuery) -> CandidateBatch:
        model = self.state.retriever("phoenix_retrieval")
        if model is None:
            raise SourceUnavailable("no promoted Phoenix retrieval yet: served from the other sources")
        rows, scores = model.retrieve(query.user_row, query.now, k=self.cfg.phoenix)
        return self.batch(rows, scores)


class FollowRecommendationSource(_Source):
    """Recent posts of accounts many of the viewer's follows follow (who-to-follow authors)."""

    name = "follow_recommendation"
    needs = (c.TOP_FOLLOWS, c.FOLLOWS)

    def fetch(self, query: TimelineQuery) -> CandidateBatch:
        idx = self.state.index
        adj = idx.follows.adjacency
        follows = query.features[c.TOP_FOLLOWS]
        if len(follows) == 0:
            return CandidateBatch.empty()
        starts, ends = adj.indptr[follows], adj.indptr[follows + 1]
        counts = ends - starts
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        two_hop = adj.indices[np.repeat(starts, counts) + offsets]
        authors, votes = np.unique(two_hop, return_counts=True)
        fresh = ~np.isin(authors, query.features[c.FOLLOWS]) & (authors != query.user_row)
        authors, votes = authors[fresh], votes[fresh]
        authors = authors[top_k(votes.astype(np.float64), self.cfg.follow_recommendation_authors)]
        rows = idx.recent_posts_by(authors, query.now - int(self.cfg.max_age_hours * HOUR), query.now)
        score = self.state.overlay.counts_24h[rows].astype(np.float32)
        keep = top_k(score, self.cfg.follow_recommendation)
        return self.batch(rows[keep], score[keep])


class TrendingSource(_Source):
    """The most engaged posts (`trending_count_hours`, a day by default): the cold-start path for
    users with no follows.

    The same for every viewer, so it is computed once per (time, ~1,000 overlay events) and reused."""

    name = "trending"
    REFRESH_EVENTS = 1_000

    def __init__(self, state: TimelineState):
        super().__init__(state)
        self._cache: tuple[tuple[int, int], CandidateBatch] | None = None

    def fetch(self, query: TimelineQuery) -> CandidateBatch:
        key = (query.now, self.state.overlay.events // self.REFRESH_EVENTS)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        idx = self.state.index
        rows = idx.recent_posts(query.now - int(self.cfg.trending_hours * HOUR), query.now)
        score = self.trending_counts(rows).astype(np.float32)
        keep = top_k(score, self.cfg.trending)
        batch = self.batch(rows[keep], score[keep])
        self._cache = (key, batch)
        return batch


class TopicTrendingSource(_Source):
    """The most engaged recent posts of the viewer's top topics (from their engagement profile):
    interest-based out-of-network supply that does not need a follow graph (cold start included).
    Per-topic lists are shared by all viewers and refreshed like trending."""

    name = "topic_trending"
    needs = (c.TOPIC_PROFILE, c.TOPIC_ENGAGEMENTS)
    REFRESH_EVENTS = 1_000
    TOP_TOPICS = 3

    def __init__(self, state: TimelineState):
        super().__init__(state)
        self._cache: tuple[tuple[int, int], list[np.ndarray]] | None = None

    def _per_topic(self, now: int) -> list[np.ndarray]:
        key = (now, self.state.overlay.events // self.REFRESH_EVENTS)
        if self._cache is None or self._cache[0] != key:
            idx = self.state.index
            rows = idx.recent_posts(now - int(self.cfg.max_age_hours * HOUR), now)
            score = self.trending_counts(rows).astype(np.float64) - 1e-9 * (now - idx.created_at[rows])
            topic = idx.topic[rows]
            lists = []
            for t in range(idx.n_topics):  # a few dozen topics, once per refresh
                r = rows[topic == t]
                lists.append(r[top_k(score[topic == t], self.cfg.topic_trending)])
            self._cache = (key, lists)
        return self._cache[1]

    def fetch(self, query: TimelineQuery) -> CandidateBatch:
        profile = query.features[c.TOPIC_PROFILE]
        if query.features[c.TOPIC_ENGAGEMENTS] == 0:
            return CandidateBatch.empty()  # no interests known yet: trending covers it
        lists = self._per_topic(query.now)
        topics = top_k(profile.astype(np.float64), self.TOP_TOPICS)
        topics = topics[profile[topics] >= 1.0 / len(profile)]
        share = profile[topics] / profile[topics].sum()
        rows = np.concatenate([lists[t][: int(np.ceil(sh * self.cfg.topic_trending))]
                               for t, sh in zip(topics, share, strict=True)]) if len(topics) else np.empty(0, np.int64)
        return self.batch(rows, profile[self.state.index.topic[rows]])
