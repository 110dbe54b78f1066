"""The For You product pipeline: only a list of components (DESIGN §4), in X's order."""

from __future__ import annotations

from foryou.mixer import CandidatePipeline, ProductPipeline, ScoringPipeline
from foryou.timeline import filters as f
from foryou.timeline import scorers as s
from foryou.timeline import sources as src
from foryou.timeline.decorators import ExplanationDecorator, SocialProofDecorator
from foryou.timeline.exploration import ExplorationScorer
from foryou.timeline.features import PostFeatureHydrator
from foryou.timeline.gates import RateLimitGate, UserKnownGate
from foryou.timeline.hydrators import (
    FollowsHydrator,
    InterestHydrator,
    NegativeFeedbackHydrator,
    SeenHydrator,
    SocialProofHydrator,
)
from foryou.timeline.selectors import DiversitySelector, MixSelector, NetworkCapSelector, TopKSelector
from foryou.timeline.side_effects import ServedLogSideEffect
from foryou.timeline.state import TimelineState

SOURCES = (src.InNetworkSource, src.UtegSource, src.SimClustersSource, src.EmbeddingAnnSource,
           src.FollowRecommendationSource, src.TopicTrendingSource, src.TrendingSource)


def for_you_pipeline(state: TimelineState) -> ProductPipeline:
    keep = state.config.timeline.ranking.light_ranker_keep
    gates = {src.EmbeddingAnnSource: (src.EmbeddingVectorsGate(state),)}
    candidate_pipelines = [
        CandidatePipeline(name=source.name, source=source(state), scorers=(s.LightRanker(state),),
                          selector=TopKSelector(keep), gates=gates.get(source, ()))
        for source in SOURCES
    ]
    global_filters = (f.OwnPostsFilter(state), f.TooOldFilter(state), f.RepostDedupFilter(state),
                      f.PreviouslySeenFilter(state), f.AuthorBlockFilter(state), f.FeedbackFatigueFilter(state))
    post_filters = (f.OutOfNetworkSocialProofFilter(state), f.OutOfNetworkNsfwFilter(state))
    passed = tuple(c.name for c in (*global_filters, *post_filters))
    return ProductPipeline(
        name="for_you",
        gates=(UserKnownGate(), RateLimitGate()),
        query_hydrators=(FollowsHydrator(state), SeenHydrator(state), NegativeFeedbackHydrator(state),
                         SocialProofHydrator(state), InterestHydrator(state)),
        candidate_pipelines=candidate_pipelines,
        dedup_column="post_id",
        filters=global_filters,
        scoring_pipelines=(
            ScoringPipeline("heavy_ranking", hydrators=(PostFeatureHydrator(state),),
                            scorers=(s.HeavyRanker(state),)),
            ScoringPipeline("rescoring", scorers=(s.OutOfNetworkScorer(state), s.ReplyScorer(state),
                                                  s.FeedbackFatigueScorer(state), ExplorationScorer(state),
                                                  s.SafetyScorer(state), s.AuthorDiversityScorer(state))),
        ),
        post_filters=post_filters,
        selectors=(NetworkCapSelector(state), DiversitySelector(state), MixSelector(state)),
        decorators=(SocialProofDecorator(state), ExplanationDecorator(state, passed)),
        side_effects=(ServedLogSideEffect(),),
    )
