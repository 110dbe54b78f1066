"""Query hydrators: everything about the viewer that the request needs, fetched once."""

from __future__ import annotations

from typing import Any

import numpy as np

from foryou.graph.related import PER_USER, SEEDS
from foryou.mixer import QueryHydrator
from foryou.timeline import columns as c
from foryou.timeline.query import TimelineQuery
from foryou.timeline.state import TimelineState, UsesState


class _StateHydrator(UsesState, QueryHydrator[TimelineQuery]):
    pass


class FollowsHydrator(_StateHydrator):
    """Follows, and the RealGraph-top follows with their weights (uniform until RealGraph exists)."""

    name = "follows"
    provides = (c.FOLLOWS, c.TOP_FOLLOWS, c.TOP_FOLLOW_WEIGHTS)

    def hydrate(self, query: TimelineQuery) -> dict[str, Any]:
        s = self.state
        follows = np.sort(s.overlay.following_rows(query.user_row))  # live follows and unfollows included
        k = s.config.timeline.sources.in_network_top_follows
        if s.realgraph is not None and len(follows):
            unfollowed = s.overlay.unfollowed(query.user_row)
            top, weights = s.realgraph.top_follows(query.user_row, k + len(unfollowed))
            keep = np.isin(top, follows)
            top, weights = top[keep][:k], weights[keep][:k]
        else:
            top, weights = follows[:k], np.ones(min(k, len(follows)), dtype=np.float32)
        fresh = np.setdiff1d(follows, s.index.following_rows(query.user_row), assume_unique=True)
        fresh = fresh[~np.isin(fresh, top)]
        if len(fresh):  # followed live: in-network at once, before RealGraph has any interaction to rank it by
            w = s.realgraph.weights(query.user_row, fresh) if s.realgraph is not None else np.ones(len(fresh))
            top, weights = np.r_[top, fresh], np.r_[weights, w]
        return {c.FOLLOWS: follows, c.TOP_FOLLOWS: np.asarray(top, np.int64),
                c.TOP_FOLLOW_WEIGHTS: np.asarray(weights, np.float32)}


class SeenHydrator(_StateHydrator):
    """Posts the viewer was already shown (impression store ∪ this session's overlay)."""

    name = "seen"
    provides = (c.SEEN,)

    def hydrate(self, query: TimelineQuery) -> dict[str, Any]:
        return {c.SEEN: self.state.overlay.seen_rows(query.user_row)}


class NegativeFeedbackHydrator(_StateHydrator):
    """Blocked/muted authors and 'see fewer' (not interested) authors with when it was said."""

    name = "negative_feedback"
    provides = (c.BLOCKED_AUTHORS, c.FATIGUE_AUTHORS, c.FATIGUE_TIMES)

    def hydrate(self, query: TimelineQuery) -> dict[str, Any]:
        authors, times = self.state.overlay.fatigue(query.user_row)
        return {c.BLOCKED_AUTHORS: self.state.overlay.blocked_authors(query.user_row),
                c.FATIGUE_AUTHORS: authors, c.FATIGUE_TIMES: times}


class SocialProofHydrator(_StateHydrator):
    """UTEG's graph walk: posts the viewer's top follows engaged with recently, weighted by RealGraph."""

    name = "uteg_social_proof"
    needs = (c.TOP_FOLLOWS, c.TOP_FOLLOW_WEIGHTS)
    provides = (c.PROOF_POSTS, c.PROOF_COUNT, c.PROOF_SCORE, c.PROOF_EDGES)

    def hydrate(self, query: TimelineQuery) -> dict[str, Any]:
        s = self.state
        k = s.config.timeline.sources.uteg_follows
        follows = query.features[c.TOP_FOLLOWS][:k]
        weights = query.features[c.TOP_FOLLOW_WEIGHTS][:k]
        posts, owner = s.overlay.uteg_rows(follows)
        if len(posts) == 0:
            empty = np.empty(0, np.int64)
            return {c.PROOF_POSTS: empty, c.PROOF_COUNT: empty, c.PROOF_SCORE: np.empty(0, np.float32),
                    c.PROOF_EDGES: (empty, empty)}
        uniq, inv = np.unique(posts, return_inverse=True)
        # One engager counts once per post, however many ways they engaged.
        pair = np.unique(inv.astype(np.int64) * len(follows) + owner)
        p_idx, o_idx = pair // len(follows), pair % len(follows)
        count = np.bincount(p_idx, minlength=len(uniq))
        score = np.bincount(p_idx, weights=weights[o_idx], minlength=len(uniq)).astype(np.float32)
        return {c.PROOF_POSTS: uniq, c.PROOF_COUNT: count, c.PROOF_SCORE: score,
                c.PROOF_EDGES: (uniq[p_idx], follows[o_idx])}


class RelatedPostsHydrator(_StateHydrator):
    """cr-mixer's tweet-based retrieval walk: the neighbours (co-engagement similarity, precomputed in the
    index) of the viewer's recent engagements — those at the build plus the live ones since."""

    name = "related_posts"
    provides = (c.RELATED_POSTS, c.RELATED_SCORES)

    def hydrate(self, query: TimelineQuery) -> dict[str, Any]:
        posts, scores = self.state.index.related.score(np.unique(recent_engagements(self.state, query.user_row, SEEDS)))
        return {c.RELATED_POSTS: posts, c.RELATED_SCORES: scores}


class EngagedAuthorsHydrator(_StateHydrator):
    """The accounts whose posts the viewer engaged with recently (RealGraph's interaction edges, followed or
    not), with how often: where no follow graph exists, the strongest sign of whom a viewer reads."""

    name = "engaged_authors"
    provides = (c.ENGAGED_AUTHORS, c.ENGAGED_AUTHOR_COUNTS)

    def hydrate(self, query: TimelineQuery) -> dict[str, Any]:
        posts = recent_engagements(self.state, query.user_row, PER_USER)
        authors, counts = np.unique(self.state.index.author_row[posts], return_counts=True)
        mine = authors != query.user_row
        return {c.ENGAGED_AUTHORS: authors[mine], c.ENGAGED_AUTHOR_COUNTS: counts[mine].astype(np.float32)}


def recent_engagements(state: TimelineState, user_row: int, n: int) -> np.ndarray:
    """The viewer's most recent non-negative engagements (post rows, newest first, at most `n`): the live ones
    since the build, then the index's."""
    positives, _ = state.overlay.uteg_rows(np.array([user_row], np.int64))
    live = positives[len(state.index.uteg.row(user_row)):][::-1]  # the overlay appends after the index's
    return np.asarray(np.r_[live, state.index.related.engaged_by(user_row, n)][:n], np.int64)


class InterestHydrator(_StateHydrator):
    """The viewer's topic profile (smoothed share of positive engagements per topic)."""

    name = "interests"
    provides = (c.TOPIC_PROFILE, c.TOPIC_ENGAGEMENTS)

    def hydrate(self, query: TimelineQuery) -> dict[str, Any]:
        counts = self.state.overlay.user_topic[query.user_row]
        k = len(counts)
        profile = (counts + 1.0 / k) / (counts.sum() + 1.0)
        return {c.TOPIC_PROFILE: profile.astype(np.float32), c.TOPIC_ENGAGEMENTS: float(counts.sum())}
