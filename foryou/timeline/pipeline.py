"""The For You product pipeline: only a list of components (DESIGN §4), in X's order.

The out-of-network filters need only hydrated columns, so they run right after feature hydration:
the heavy ranker never scores the ~40 % of candidates they drop, and rescoring and exploration see
only candidates the page may show (exploration does not re-run them)."""

from __future__ import annotations

from foryou.mixer import CandidatePipeline, ProductPipeline, ScoringPipeline
from foryou.timeline import columns as c
from foryou.timeline import filters as f
from foryou.timeline import scorers as s
from foryou.timeline import sources as src
from foryou.timeline.decorators import ExplanationDecorator, SocialProofDecorator
from foryou.timeline.exploration import ExplorationScorer
from foryou.timeline.features import PostFeatureHydrator
from foryou.timeline.gates import UserKnownGate
from foryou.timeline.hydrators import (
    EngagedAuthorsHydrator,
    FollowsHydrator,
    InterestHydrator,
    NegativeFeedbackHydrator,
    RelatedPostsHydrator,
    SeenHydrator,
    SocialProofHydrator,
)
from foryou.timeline.query import TimelineQuery
from foryou.timeline.selectors import DiversitySelector, MixSelector, NetworkCapSelector, TopKSelector
from foryou.timeline.state import TimelineState

SOURCES = (src.InNetworkSource, src.UtegSource, src.RelatedPostsSource, src.EngagedAuthorsSource,
           src.SimClustersSource, src.EmbeddingAnnSource, src.PhoenixSource, src.FollowRecommendationSource,
           src.TopicTrendingSource, src.TrendingSource)
GATED_SOURCES = {src.EmbeddingAnnSource: "two_tower", src.PhoenixSource: "phoenix_retrieval"}

ForYouPipeline = ProductPipeline[TimelineQuery]


def for_you_pipeline(state: TimelineState) -> ForYouPipeline:
    keep = state.config.timeline.ranking.light_ranker_keep
    candidate_pipelines = [
        CandidatePipeline[TimelineQuery](
            name=source.name, source=source(state), scorers=(s.LightRanker(state),), selector=TopKSelector(keep),
            gates=(src.EmbeddingVectorsGate(state, GATED_SOURCES[source]),) if source in GATED_SOURCES else ())
        for source in SOURCES
    ]
    global_filters = (f.OwnPostsFilter(state), f.TooOldFilter(state), f.RepostDedupFilter(state),
                      f.PreviouslySeenFilter(state), f.AuthorBlockFilter(state), f.FeedbackFatigueFilter(state))
    network_filters = (f.OutOfNetworkSocialProofFilter(state), f.OutOfNetworkNsfwFilter(state))
    passed = tuple(comp.name for comp in (*global_filters, *network_filters))
    return ProductPipeline(
        name="for_you",
        gates=(UserKnownGate(),),
        query_hydrators=(FollowsHydrator(state), SeenHydrator(state), NegativeFeedbackHydrator(state),
                         SocialProofHydrator(state), RelatedPostsHydrator(state), EngagedAuthorsHydrator(state),
                         InterestHydrator(state)),
        candidate_pipelines=candidate_pipelines,
        dedup_column=c.POST_ID,
        filters=global_filters,
        scoring_pipelines=(
            ScoringPipeline("feature_hydration", hydrators=(PostFeatureHydrator(state),), filters=network_filters),
            ScoringPipeline("heavy_ranking", scorers=(s.HeavyRanker(state),)),
            ScoringPipeline("rescoring", scorers=(s.OutOfNetworkScorer(state), s.ReplyScorer(state),
                                                  s.FeedbackFatigueScorer(state), ExplorationScorer(state),
                                                  s.SafetyScorer(state), s.AuthorDiversityScorer(state))),
        ),
        selectors=(NetworkCapSelector(state), DiversitySelector(state), MixSelector(state)),
        decorators=(SocialProofDecorator(state), ExplanationDecorator(state, passed)),
    )
