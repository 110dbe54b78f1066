"""Every candidate column and query feature of the For You pipeline, declared once.

Each is a `str` (it keys batches and `query.features` as before) that also carries its dtype,
meaning and producer. Components list the ones they read and write, and the pipeline checks the
order when it is built (`foryou.mixer.schema.check_order`); a test checks the dtypes on a real page.
"""

from __future__ import annotations

from foryou.mixer import SOURCE_COLUMN, Column, Feature
from foryou.vocab import RANKER_HEADS

# -- candidate columns: retrieval ------------------------------------------------------------------
POST_ROW = Column("post_row", "int64", "the post's row in the serving index", "every source")
POST_ID = Column("post_id", "int64", "the post's id (the dedup key)", "every source")
AUTHOR_ROW = Column("author_row", "int64", "the author's (reposter's) user row", "every source")
RETRIEVAL_SCORE = Column("retrieval_score", "float32", "the source's own relevance score", "every source")
SOURCE = Column(SOURCE_COLUMN, "object", "the candidate pipeline that found the post", "the mixer")
LIGHT_SCORE = Column("light_score", "float32", "the light ranker's score, within one source", "light_ranker")

# -- candidate columns: feature hydration ---------------------------------------------------------
FEATURES = Column("features", "float32", "the feature store's matrix (trained heavy ranker only)",
                  "post_features")
AGE_H = Column("age_h", "float32", "hours since the post was created", "post_features")
IN_NETWORK = Column("in_network", "bool", "the viewer follows the author", "post_features")
REALGRAPH = Column("realgraph", "float32", "RealGraph weight of viewer → author (0 if not a top follow)",
                   "post_features")
SOCIAL_PROOF = Column("social_proof", "int32", "top follows who engaged with the post (UTEG)", "post_features")
TOPIC_AFFINITY = Column("topic_affinity", "float32", "the viewer's topic-profile share of the post's topic",
                        "post_features")
SIMCLUSTERS_SCORE = Column("simclusters_score", "float32", "cosine of InterestedIn and the post's vector",
                           "post_features")
RELATED = Column("related", "float32", "Σ co-engagement similarity to the viewer's recent engagements",
                 "post_features")
AUTHOR_AFFINITY = Column("author_affinity", "float32", "the viewer's recent engagements with the author",
                         "post_features")
TRENDING_COUNT = Column("trending_count", "float32", "positive engagements in the trending count window",
                        "post_features")
POST_RATE = Column("post_rate", "float32", "the post's smoothed positive-engagement rate", "post_features")
AUTHOR_RATE = Column("author_rate", "float32", "the author's smoothed positive-engagement rate", "post_features")
HAS_MEDIA = Column("has_media", "bool", "the post has media", "post_features")
HAS_LINK = Column("has_link", "bool", "the post has a link", "post_features")
IS_REPLY = Column("is_reply", "bool", "the post is a reply", "post_features")
IS_NSFW = Column("is_nsfw", "bool", "safety label", "post_features")
IS_TOXIC = Column("is_toxic", "bool", "safety label", "post_features")
IS_SPAM = Column("is_spam", "bool", "safety label", "post_features")
IS_MISINFO = Column("is_misinfo", "bool", "safety label", "post_features")
FLAGS = (HAS_MEDIA, HAS_LINK, IS_REPLY, IS_NSFW, IS_TOXIC, IS_SPAM, IS_MISINFO)

# -- candidate columns: scoring --------------------------------------------------------------------
PREDICTIONS = {h: Column(f"p_{h}", "float32", f"P({h}) from the heavy ranker", "heavy_ranker")
               for h in RANKER_HEADS}
UTILITY = Column("utility", "float32", "Σ wᵢ·pᵢ with X's weights", "heavy_ranker")
HEAVY_SCORE = Column("heavy_score", "float32", "utility after the negative-offset rule", "heavy_ranker")
SCORE = Column("score", "float32", "the running score: heavy score × every rescoring factor", "heavy_ranker")


def factor(name: str) -> Column:
    """The column a rescoring factor writes (`factor_<scorer name>`), read by the explanation."""
    return Column(f"factor_{name}", "float32", f"the {name} rescoring factor", name)


# -- candidate columns: decoration -----------------------------------------------------------------
LIKED_BY = Column("liked_by", "object", "followed accounts who engaged (user ids)", "social_proof")
NETWORK_REASON = Column("network_reason", "object", "in- or out-of-network, why, and which source",
                        "social_proof")
EXPLANATION = Column("explanation", "object", "why the post is here (explain=True)", "explanation")

CANDIDATE_COLUMNS = (POST_ROW, POST_ID, AUTHOR_ROW, RETRIEVAL_SCORE, SOURCE, LIGHT_SCORE, FEATURES, AGE_H,
                     IN_NETWORK, REALGRAPH, SOCIAL_PROOF, TOPIC_AFFINITY, SIMCLUSTERS_SCORE, RELATED, AUTHOR_AFFINITY,
                     TRENDING_COUNT, POST_RATE, AUTHOR_RATE,
                     *FLAGS, *PREDICTIONS.values(), UTILITY, HEAVY_SCORE, SCORE, LIKED_BY, NETWORK_REASON, EXPLANATION)

# -- query features --------------------------------------------------------------------------------
FOLLOWS = Feature("follows", "sorted user rows the viewer follows (live follows included)", "follows")
TOP_FOLLOWS = Feature("top_follows", "the RealGraph-top follows (user rows), best first", "follows")
TOP_FOLLOW_WEIGHTS = Feature("top_follow_weights", "their RealGraph weights (float32)", "follows")
SEEN = Feature("seen", "post rows the viewer was already shown", "seen")
BLOCKED_AUTHORS = Feature("blocked_authors", "blocked and muted user rows", "negative_feedback")
FATIGUE_AUTHORS = Feature("fatigue_authors", "authors the viewer said 'see fewer' about", "negative_feedback")
FATIGUE_TIMES = Feature("fatigue_times", "when they said it (aligned with fatigue_authors)", "negative_feedback")
PROOF_POSTS = Feature("proof_posts", "posts the top follows engaged with (sorted rows)", "uteg_social_proof")
PROOF_COUNT = Feature("proof_count", "engaged top follows per proof post", "uteg_social_proof")
PROOF_SCORE = Feature("proof_score", "RealGraph-weighted engagers per proof post", "uteg_social_proof")
PROOF_EDGES = Feature("proof_edges", "(post rows, user rows) of every engagement edge, sorted by post",
                      "uteg_social_proof")
RELATED_POSTS = Feature("related_posts", "post rows co-engaged with the viewer's recent engagements (sorted)",
                        "related_posts")
RELATED_SCORES = Feature("related_scores", "their summed similarity (float32, aligned)", "related_posts")
ENGAGED_AUTHORS = Feature("engaged_authors", "user rows whose posts the viewer engaged with recently (sorted)",
                          "engaged_authors")
ENGAGED_AUTHOR_COUNTS = Feature("engaged_author_counts", "the viewer's engagements with each (aligned)",
                                "engaged_authors")
TOPIC_PROFILE = Feature("topic_profile", "smoothed share of the viewer's positives per topic", "interests")
TOPIC_ENGAGEMENTS = Feature("topic_engagements", "the viewer's positive engagements with a topic", "interests")

QUERY_FEATURES = (FOLLOWS, TOP_FOLLOWS, TOP_FOLLOW_WEIGHTS, SEEN, BLOCKED_AUTHORS, FATIGUE_AUTHORS, FATIGUE_TIMES,
                  PROOF_POSTS, PROOF_COUNT, PROOF_SCORE, PROOF_EDGES, RELATED_POSTS, RELATED_SCORES, ENGAGED_AUTHORS,
                  ENGAGED_AUTHOR_COUNTS, TOPIC_PROFILE, TOPIC_ENGAGEMENTS)
