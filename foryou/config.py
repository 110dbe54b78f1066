"""One config tree (pydantic, unknown fields rejected). Defaults come from REFERENCE.md."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    # NaN or ±inf anywhere in the tree (e.g. `--set weights.like=nan`) would turn every score into
    # nan: floats must be finite; ranges are checked per field below.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, data: Any) -> Any:
        """pydantic reads `false` as 0.0 for a number: an experiment arm's `"age": false` is a mistake."""
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if isinstance(data.get(name), bool) and field.annotation in (int, float):
                    raise ValueError(f"{name} is a number, not {str(data[name]).lower()}")
        return data


WEIGHT_BOUND = 10_000.0  # |weight|: X's largest is 369 (report); a bigger one is a typo or an attack
HOURS_MAX = 1e6  # ~114 years: "all of history" for any dataset (catalogs 8,760 h), bounded so time maths is finite
FETCH_MAX = 20_000  # a source's fetch size: X's whole funnel scores ~1,500; larger only amplifies load


class EngagementWeights(Strict):
    """Heavy-ranker utility weights: X's published April-2023 weights, mapped onto our heads.

    click = "good click" (11.0), dwell = "good click v2" (10.0), profile_click = "good profile
    click" (12.0), negative_feedback = P(not_interested ∪ mute ∪ block) (−74.0), report (−369.0).
    follow_author has no 2023 weight; 4.0 is the 2026 (Phoenix) weight.
    """

    like: float = Field(0.5, ge=0, le=WEIGHT_BOUND)
    repost: float = Field(1.0, ge=0, le=WEIGHT_BOUND)
    reply: float = Field(13.5, ge=0, le=WEIGHT_BOUND)
    profile_click: float = Field(12.0, ge=0, le=WEIGHT_BOUND)
    click: float = Field(11.0, ge=0, le=WEIGHT_BOUND)
    dwell: float = Field(10.0, ge=0, le=WEIGHT_BOUND)
    follow_author: float = Field(4.0, ge=0, le=WEIGHT_BOUND)
    negative_feedback: float = Field(-74.0, ge=-WEIGHT_BOUND, le=0)
    report: float = Field(-369.0, ge=-WEIGHT_BOUND, le=0)

    def as_dict(self) -> dict[str, float]:
        return self.model_dump()


WorldPreset = Literal["tiny", "small", "medium", "large"]


class WorldConfig(Strict):
    """Sizes and behaviour of a synthetic world. Presets below; every field can be overridden."""

    n_users: int = Field(2_000, ge=20)
    n_posts: int = Field(50_000, ge=100, description="expected number of original posts")
    days: int = Field(21, ge=3)
    n_topics: int = Field(16, ge=2, le=256)
    start_time: int = Field(1_767_225_600, description="2026-01-01 00:00 UTC")
    mean_follows: float = Field(40.0, gt=0)
    no_follow_share: float = Field(0.03, ge=0, lt=1, description="users who follow nobody (cold start)")
    sessions_per_day: float = Field(1.5, gt=0, description="mean sessions per user per day")
    session_size: int = Field(15, ge=1, le=200, description="slots per session (page size)")
    window_hours: float = Field(48.0, gt=0, description="how old a post the logging policy may show")
    # Logging policy: which route fills a slot (uniform within the route, so propensities are exact).
    policy_in_network: float = Field(0.5, ge=0, le=1)
    policy_topic: float = Field(0.3, ge=0, le=1)
    policy_global: float = Field(0.2, ge=0, le=1)
    dwell_threshold_s: float = Field(10.0, gt=0, description="the dwell head: P(dwell ≥ this)")
    signal_users: int = Field(256, ge=1, description="users sampled for the manifest's signal measure")

    @model_validator(mode="after")
    def _policy_sums_to_one(self) -> WorldConfig:
        total = self.policy_in_network + self.policy_topic + self.policy_global
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"policy_in_network + policy_topic + policy_global must be 1 (got {total})")
        return self


WORLD_PRESETS: dict[str, dict] = {
    "tiny": dict(n_users=300, n_posts=4_000, days=7, n_topics=8, mean_follows=20, sessions_per_day=1.5,
                 session_size=10, signal_users=64),
    "small": dict(),  # the defaults above
    "medium": dict(n_users=20_000, n_posts=500_000, days=28, n_topics=24, mean_follows=60,
                   sessions_per_day=1.2),
    "large": dict(n_users=100_000, n_posts=1_000_000, days=21, n_topics=32, mean_follows=60,
                  sessions_per_day=0.4),
}


def world_config(preset: WorldPreset = "small", **overrides) -> WorldConfig:
    if preset not in WORLD_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(WORLD_PRESETS)}")
    return WorldConfig(**{**WORLD_PRESETS[preset], **overrides})


class SourcesConfig(Strict):
    """Fetch sizes per candidate source (REFERENCE.md, 2023 home-mixer)."""

    in_network: int = Field(600, ge=0, le=FETCH_MAX)
    in_network_hours: float = Field(24.0, gt=0, le=HOURS_MAX,
                                    description="look-back for in-network posts")
    in_network_hours_light: float = Field(48.0, gt=0, le=HOURS_MAX,
                                          description="look-back when 24 h holds less than a page")
    in_network_top_follows: int = Field(300, ge=1, le=FETCH_MAX,
                                        description="RealGraph-top follows used for in-network")
    uteg: int = Field(300, ge=0, le=FETCH_MAX)
    related_posts: int = Field(200, ge=0, le=FETCH_MAX, description="co-engagement neighbours of the viewer's "
                               "recent engagements (cr-mixer's tweet-based source)")
    uteg_follows: int = Field(100, ge=1, le=FETCH_MAX, description="RealGraph-top follows whose engagements UTEG walks")
    engaged_authors: int = Field(100, ge=0, le=FETCH_MAX, description="recent posts of accounts the viewer engages "
                                 "with but does not follow")
    engaged_authors_top: int = Field(20, ge=1, le=FETCH_MAX, description="those accounts, most engaged first")
    uteg_max_proof: int = Field(10, ge=1, le=1000, description="'liked by' users kept per post")
    simclusters: int = Field(200, ge=0, le=FETCH_MAX,
                             description="REFERENCE: keep the top 200 by dot product")
    embedding_ann: int = Field(200, ge=0, le=FETCH_MAX)
    phoenix: int = Field(200, ge=0, le=FETCH_MAX, description="Phoenix retrieval's nearest posts (once promoted)")
    follow_recommendation: int = Field(100, ge=0, le=FETCH_MAX)
    follow_recommendation_authors: int = Field(20, ge=1, le=FETCH_MAX)
    trending: int = Field(100, ge=0, le=FETCH_MAX)
    topic_trending: int = Field(150, ge=0, le=FETCH_MAX,
                                description="most engaged recent posts of the viewer's top topics")
    trending_hours: float = Field(24.0, gt=0, le=HOURS_MAX)
    trending_count_hours: float = Field(24.0, gt=0, le=HOURS_MAX,
                                        description="trending / topic_trending rank posts by positive "
                                        "engagements in this window before the index build (catalogs: 720)")
    trending_counts: Literal["positive", "engaged"] = Field(
        "positive", description="what trending counts: positive engagements, or (data without impressions) every "
        "non-negative one — a rating of any value is an engagement there")
    max_age_hours: float = Field(48.0, gt=0, le=HOURS_MAX, description="TooOldFilter: older posts are dropped")
    uteg_hours: float = Field(48.0, gt=0, le=HOURS_MAX, description="engagements UTEG walks (index build)")
    windows: Literal["auto", "fixed"] = Field(
        "auto", description="auto: the *_hours windows (and simclusters.half_life_hours) this config does not set "
        "are derived from the dataset's time scale (a feed keeps these defaults, a catalog widens them); "
        "fixed: the numbers as written")


class RankingConfig(Strict):
    # auto: Phoenix where a promoted version exists (it won on validation against what served), else MaskNet
    # where promoted, else the heuristic heads
    model: Literal["auto", "masknet", "phoenix"] = Field("auto", description="the heavy-ranker slot's model")
    light_ranker_keep: int = Field(500, ge=1, le=FETCH_MAX, description="per source, into the heavy ranker")
    max_in_network: int = Field(60, ge=1, le=FETCH_MAX, description="kept after scoring (REFERENCE: 60 / 60)")
    max_out_of_network: int = Field(60, ge=1, le=FETCH_MAX)
    author_diversity_floor: float = Field(0.25, ge=0, le=1, description="(1−f)·0.5ⁿ + f for the n-th post")
    author_diversity_decay: float = Field(0.5, gt=0, le=1)
    out_of_network_factor: float = Field(0.75, gt=0, le=1)
    reply_factor: float = Field(0.75, gt=0, le=1)
    fatigue_drop_days: float = Field(14.0, ge=0, le=3650, description="'see fewer' drops the author for this long")
    fatigue_recover_days: float = Field(140.0, gt=0, le=3650, description="then the multiplier climbs 0.2 → 1.0")
    fatigue_min: float = Field(0.2, ge=0, le=1)


class ExplorationConfig(Strict):
    # "random" replaces the ranking by a random order: the deliberately bad arm of an A/B test.
    strategy: Literal["none", "epsilon_greedy", "ucb", "thompson", "random"] = "thompson"
    epsilon: float = Field(0.05, ge=0, le=1, description="ε-greedy: share of page slots given to a random candidate")
    ucb_c: float = Field(0.5, ge=0, le=100)
    weight: float = Field(0.1, ge=0, le=100, description="how strongly the exploration term moves the score")
    seed: int = Field(0, ge=0, le=2**53 - 1)  # exact as a JSON number


class SafetyConfig(Strict):
    drop_out_of_network_nsfw: bool = True
    toxic_factor: float = Field(0.5, ge=0, le=1, description="downrank toxic posts by this factor")
    spam_factor: float = Field(0.3, ge=0, le=1)
    misinfo_factor: float = Field(0.5, ge=0, le=1)


class DiversityConfig(Strict):
    max_per_author: int = Field(3, ge=1, le=1000)
    max_per_topic_share: float = Field(0.5, gt=0, le=1, description="at most this share of a page from one topic")
    mmr_lambda: float | None = Field(None, ge=0, le=1, description="set to re-rank by MMR over topics")
    max_without_media_share: float = Field(0.75, gt=0, le=1, description="soft cap on posts without media per "
                                           "page, when the candidates hold both kinds")


class MixingConfig(Strict):
    page_size: int = Field(35, ge=1, le=200)
    max_out_of_network_in_a_row: int = Field(2, ge=0, le=1000)
    out_of_network_share: float = Field(0.5, ge=0, le=1, description="target share of out-of-network posts")
    backfill: bool = Field(True, description="once in-network posts run out, fill the rest of the page with "
                           "out-of-network posts (X's backfill) instead of ending it short")


class LightHeuristicConfig(Strict):
    """The untrained light ranker: the z-scored retrieval score plus these times log1p(24 h positives),
    has media and log1p(age in hours)."""

    engagement: float = 0.5
    media: float = 0.3
    age: float = -0.5


class PositivesOnlyHeuristicConfig(Strict):
    """The untrained heavy ranker's interest logit on data without an impression log (ratings, tags, likes):
    engagement rates per impression do not exist there, so z sums what the sources carry. Chosen on the
    validation windows of MovieLens, Last.fm and Higgs (scale-free terms; EVALUATION.md)."""

    trending: float = 1.0  # × log1p(positives in the trending count window)
    related: float = 0.5  # × co-engagement similarity ÷ the viewer's best candidate's
    topic_affinity: float = 0.3  # × log(topics × affinity)
    social_proof: float = 1.0  # × log1p(engaged follows)
    simclusters: float = 1.0
    realgraph: float = 1.0
    in_network: float = 0.2
    popularity: float = 0.0  # × log1p(positives before the build, all time): learned where it helps (off by default)
    author_affinity: float = 0.5  # × log1p(the viewer's recent engagements with the author)


class HeavyHeuristicConfig(Strict):
    """The untrained heavy ranker (timeline/scorers.py, HeavyRanker.heuristic): each head's base rate moved
    on the logit scale by slope × (interest logit z − unsafe_penalty × unsafe score); z and the unsafe score
    are the weighted sums below; the negative heads rise with unsafe labels and fall with interest."""

    topic_affinity: float = 0.9  # × log(topics × affinity)
    post_rate: float = 0.6  # × log(rate / base rate)
    author_rate: float = 0.4
    realgraph: float = 1.0
    social_proof: float = 0.1  # × log1p(engaged follows)
    simclusters: float = 0.5
    media: float = 0.3
    in_network: float = 0.2
    age: float = -0.35  # × log1p(age in hours)
    unsafe: dict[str, float] = {"is_nsfw": 1.0, "is_toxic": 1.0, "is_spam": 1.5, "is_misinfo": 0.8}
    unsafe_penalty: float = 0.8
    slopes: dict[str, float] = {"click": 0.8, "like": 1.0, "repost": 1.1, "reply": 0.9, "profile_click": 0.7,
                                "dwell": 0.6, "follow_author": 0.8}
    negative_feedback: tuple[float, float] = (-0.5, 1.5)  # (× z, × unsafe)
    report: tuple[float, float] = (-0.2, 2.0)
    positives_only: PositivesOnlyHeuristicConfig = PositivesOnlyHeuristicConfig()


class HeuristicsConfig(Strict):
    light_ranker: LightHeuristicConfig = LightHeuristicConfig()
    heavy_ranker: HeavyHeuristicConfig = HeavyHeuristicConfig()


class BatchServingConfig(Strict):
    """`recommend_many`: how many users share one pass of the ranking steps, and the heavy ranker's rows
    per model call (ONNX Runtime is fastest at a few hundred rows a call on one thread)."""

    users_per_pass: int = Field(128, ge=1, le=100_000)
    ranker_rows: int = Field(512, ge=1, le=1_000_000)


class TimelineConfig(Strict):
    sources: SourcesConfig = SourcesConfig()
    ranking: RankingConfig = RankingConfig()
    exploration: ExplorationConfig = ExplorationConfig()
    safety: SafetyConfig = SafetyConfig()
    diversity: DiversityConfig = DiversityConfig()
    mixing: MixingConfig = MixingConfig()
    heuristics: HeuristicsConfig = HeuristicsConfig()
    batch: BatchServingConfig = BatchServingConfig()


class HeavyRankerConfig(Strict):
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(8192, ge=32, description="large batches: ~2× the examples/s of 2,048 on 2 cores")
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)
    patience: int = Field(1, ge=0, description="epochs without validation improvement before stopping")
    blocks: int = Field(2, ge=1, description="2 parallel mask blocks: 113k vs 67k examples/s for 4")
    block_dim: int = Field(64, ge=8)
    mlp_dim: int = Field(128, ge=8)
    tower_dim: int = Field(32, ge=4)
    workers: int = Field(1, ge=1, le=256, description="data-parallel workers on Ray Train (foryou[scale])")
    id_dim: int = Field(16, ge=0, description="user and author id embeddings (0 = off): +0.003–0.005 test AUC")
    id_dropout: float = Field(0.1, ge=0, lt=1, description="share of ids dropped to 'unknown' while training")
    max_train_rows: int = Field(3_000_000, ge=1000, description="most recent training impressions kept")
    negatives_per_positive: int = Field(4, ge=1, description="without impressions (positives-only imports): "
                                        "sampled negatives per engagement (foryou.training.negatives)")
    negative_sampling: Literal["uniform", "popularity", "hard"] = Field(
        "uniform", description="negatives drawn uniformly over existing posts, in proportion to their engagements, "
        "or hard: from what the engine could serve then (alive posts, half by recent engagements)")
    seed: int = 0


class PhoenixConfig(Strict):
    """Phoenix, nano-sized (../shared/PHOENIX.md §4; foryou.models.phoenix, foryou.training.phoenix)."""

    d_model: int = Field(64, ge=8, le=1024)
    layers: int = Field(2, ge=1, le=16)
    attn_heads: int = Field(2, ge=1, le=32)
    head_dim: int = Field(32, ge=4, le=256)
    ffn: int = Field(128, ge=8, le=8192)
    width: int = Field(32, ge=4, le=1024, description="embedding table width (each hash row projected to d_model)")
    history: int = Field(63, ge=1, le=1023, description="history items read per user (newest)")
    user_buckets: int = Field(8_192, ge=2)
    post_buckets: int = Field(100_000, ge=2)
    author_buckets: int = Field(8_192, ge=2)
    epochs: int = Field(4, ge=1, description="best validation epoch measured: 2nd (world), 4th (MovieLens)")
    batch_size: int = Field(128, ge=2, description="training rows (a page view, or an engagement) per step")
    lr: float = Field(2e-3, gt=0, description="AdamW, dense weights")
    table_lr: float = Field(0.05, gt=0, description="AdaGrad, the hashed embedding tables (sparse gradients); "
                            "0.01 fits validation longer but gave worse world pages (EVALUATION.md)")
    weight_decay: float = Field(1e-4, ge=0)
    id_dropout: float = Field(0.1, ge=0, lt=1, description="share of viewer and candidate post ids dropped to "
                              "'unknown' while training (new posts are served unknown)")
    patience: int = Field(1, ge=0)
    viewer_context: bool = Field(True, description="also read MaskNet's 12 viewer × candidate aggregates over the "
                                 "viewer's whole log as candidate context: what a history of the last engagements "
                                 "cannot hold (a viewer's rates per impression)")
    candidate_isolation: bool = Field(True, description="False only for the ablation: candidates attend to "
                                      "each other (a score then depends on the request's other candidates)")
    context_hidden: int = Field(128, ge=0, le=4096, description="candidate context numbers through a GELU MLP of this "
                                "width, also fed to the heads directly (0: one linear map into the token)")
    max_candidates: int = Field(32, ge=1, le=1024, description="impressions per training row (a page view's)")
    borrowed_negatives: int = Field(16, ge=0, le=1024, description="with impressions: other page views' "
                                    "impressions added to each row as not-engaged (weight 1/times drawn)")
    sampled_negatives: int = Field(16, ge=1, le=4096, description="without impressions: negatives per "
                                   "engagement, half by popularity, half uniform (log-Q corrected)")
    sampled_bce: float = Field(0.0, ge=0, le=100, description="without impressions: weight of a BCE term beside "
                               "the softmax (BCE against popularity-drawn negatives discounts popularity: MovieLens "
                               "validation pages 0.2263 with weight 1, 0.2430 without)")
    trend_hours: float = Field(24.0, gt=0, le=HOURS_MAX, description="a candidate's recent positives are counted over "
                               "this window (`foryou train` sets the engine's trending window, derived from the data)")
    max_train_rows: int = Field(50_000, ge=100, description="most recent training rows kept (a row costs its "
                                "history plus its candidates through the trunk: this bounds an epoch's time)")
    seed: int = 0


class PromotionConfig(Strict):
    """`foryou train`'s gate (foryou.eval.promotion): a model is promoted only if it wins on validation."""

    min_gain: float = Field(0.0, ge=0, description="validation page NDCG@10 a candidate must gain over what is "
                            "served (strictly more) to be promoted")
    max_users: int = Field(500, ge=1, description="validation users sampled (seeded) for the comparison")
    seed: int = 0


class TrainingConfig(Strict):
    heavy_ranker: HeavyRankerConfig = HeavyRankerConfig()
    phoenix: PhoenixConfig = PhoenixConfig()
    promotion: PromotionConfig = PromotionConfig()


class ServiceConfig(Strict):
    """The HTTP service (`foryou serve`)."""

    cache_ttl_s: float = Field(180.0, ge=0, description="scored-candidate cache per user (X: 3 minutes); 0 = off")
    cache_depth: int = Field(105, ge=1, le=1000, description="ranked candidates kept per user (several pages)")
    cache_users: int = Field(200_000, ge=1, description="most users held in the cache (least recent evicted)")
    # Request limits: what one client can make the server hold or do (issue 12).
    max_body_bytes: int = Field(4 * 2**20, ge=1024, le=2**30,
                                description="larger request bodies get 413, declared or chunked")
    max_json_depth: int = Field(32, ge=2, le=512, description="deeper JSON bodies get 422 (our bodies need 3)")
    header_timeout_s: float = Field(10.0, gt=0, le=3600, description="a connection that has not sent a request's "
                                    "whole header within this is closed (slow-header clients)")
    max_error_bytes: int = Field(4096, ge=256, le=2**20, description="an error's JSON body is cut to about this "
                                 "size; the input is never echoed")
    max_batch: int = Field(10_000, ge=1, description="most events in one POST")
    max_page: int = Field(200, ge=1, le=1000, description="largest n a timeline request may ask for")
    trace_log_bytes: int = Field(50 * 2**20, ge=2**16, description="trace log rotates at this size")
    trace_log_backups: int = Field(5, ge=0)
    clock_idle_cap_s: float = Field(3600.0, ge=0, description="an idle gap advances the world clock by at most "
                                    "this; 0 freezes it at the newest event (reproducible pages)")
    # Per worker: admission control of misses and writes (service/admission.py), micro-batching (batcher.py).
    max_pending: int = Field(32, ge=1, le=100_000, description="most misses + writes admitted at once, else 503")
    max_queue_ms: float = Field(150.0, gt=0, le=600_000, description="admit while their expected wait is within "
                                "this; work not started within twice this is shed (503)")
    batch_max: int = Field(16, ge=1, le=1024, description="most misses ranked in one pipeline pass (1 = off)")
    batch_wait_ms: float = Field(2.0, ge=0, le=1000, description="longest a batch waits for misses on their way")
    # Rate limit at the HTTP edge (foryou.service.ratelimit): timeline reads per client address.
    rate_limit_per_minute: int = Field(600, ge=0, le=10**7, description="timeline reads per client a minute (a burst "
                                       "of this many, then this rate); past it 429 with Retry-After; 0 = off")
    rate_limit_clients: int = Field(100_000, ge=1, le=10**8, description="most clients the limiter tracks (idle "
                                    "ones expire within two minutes; past this the least recent is forgotten)")


class BehaviourConfig(Strict):
    """How simulated users read a page (foryou.simulation.behaviour): the ground truth has no session
    model, so where a user stops is the simulation's own assumption."""

    stop_base: float = Field(0.08, ge=0, le=1, description="chance to leave after a post with no reaction")
    stop_engaged: float = Field(0.04, ge=0, le=1, description="... after a post the user engaged with")
    stop_negative: float = Field(0.6, ge=0, le=1, description="... after a post the user gave negative feedback on")
    max_pages: int = Field(3, ge=1, description="pages a session may scroll through")


class SimulationConfig(Strict):
    """The closed loop (`foryou simulate`). Fields set on the SimulationConfig handed to a Simulation
    (the CLI's options) win over this section."""

    days: int = Field(14, ge=1)
    seed: int = 0
    user_share: float = Field(1.0, gt=0, le=1, description="share of the world's users simulated (sampled once)")
    page_size: int | None = Field(None, ge=1, le=200, description="posts per page; None = timeline.mixing.page_size")
    behaviour: BehaviourConfig = BehaviourConfig()
    regret_share: float = Field(0.25, ge=0, le=1, description="share of first pages scored against the oracle")
    new_posts: bool = Field(True, description="new posts keep arriving (needs engine.add_post)")
    retrain: bool = Field(False, description="retrain the heavy ranker every night on world + feedback")
    drift_rows: int = Field(20_000, ge=100, description="rows per drift sample (training and each live day)")


class DriftThresholds(Strict):
    """Drift levels (foryou.monitoring.drift): PSI < psi_warn stable, ≥ psi_alert alert; KS alerts at a
    statistic ≥ ks_stat with p < ks_p (with thousands of rows any tiny shift is "significant")."""

    psi_warn: float = Field(0.1, ge=0)
    psi_alert: float = Field(0.25, ge=0)
    ks_stat: float = Field(0.1, ge=0, le=1)
    ks_p: float = Field(0.01, ge=0, le=1)


class MonitoringConfig(Strict):
    """Drift and exposure measures (foryou.monitoring), live (/metrics) and in simulations."""

    drift: DriftThresholds = DriftThresholds()
    popular_top: float = Field(0.01, gt=0, le=1, description="'popular' authors: this top share by followers")
    tail_bottom: float = Field(0.5, gt=0, le=1, description="'long tail' authors: this bottom share by followers")
    live_window: int = Field(10_000, ge=1, description="served posts in the live drift/exposure window")
    live_reference: int = Field(5_000, ge=1, description="first served posts kept as the live drift reference")


class SimClustersConfig(Strict):
    """SimClusters (foryou.embeddings.simclusters), built with the serving index. Defaults sized so that
    the 100k-user world builds in seconds on two cores."""

    min_followers: int = Field(5, ge=1, description="a producer has at least this many followers")
    max_producers: int = Field(20_000, ge=2, description="most-followed producers kept")
    max_follows_per_consumer: int = Field(
        50, ge=2, description="a consumer's producer follows counted for similarity (seeded sample above it): "
        "the cost of ÂᵀÂ is Σ degree², dominated by heavy followers")
    similarity_block: int = Field(2_000, ge=1, description="producer rows per block of ÂᵀÂ (memory bound)")
    min_similarity: float = Field(0.02, ge=0, lt=1, description="weaker producer–producer edges are pruned")
    top_k: int = Field(20, ge=1, description="neighbours kept per producer")
    partition: Literal["modularity", "cpm"] = Field(
        "modularity", description="Leiden quality: modularity (RBConfiguration) is invariant to the scale of the "
        "cosine weights; CPM's resolution is an absolute density and needs tuning per dataset")
    resolution: float = Field(1.0, gt=0, description="Leiden resolution (higher = more, smaller clusters)")
    min_cluster_size: int = Field(3, ge=1, description="smaller communities are dropped")
    interested_in_top: int = Field(20, ge=1, description="clusters kept per user")
    min_interest: float = Field(0.02, ge=0, lt=1, description="InterestedIn weights below this are dropped")
    half_life_hours: float = Field(8.0, gt=0, description="post-vector decay")
    like_weight: float = Field(1.0, ge=0)
    repost_weight: float = Field(1.0, ge=0)
    posts_per_cluster: int = Field(300, ge=1, description="top posts kept per cluster for retrieval")
    retrieval_clusters: int = Field(50, ge=1, description="top clusters of the user vector probed")
    retrieval_dot_top: int = Field(200, ge=1, description="candidates kept by dot product before cosine")
    min_cosine: float = Field(0.1, ge=0, le=1, description="cosine threshold of retrieval")
    compact_every: int = Field(200_000, ge=1, description="real-time overlay entries before merging")
    seed: int = 0


class ForYouConfig(Strict):
    """The root of the config tree; later stages (training, serving) add sections here."""

    weights: EngagementWeights = EngagementWeights()
    world: WorldConfig = WorldConfig()
    timeline: TimelineConfig = TimelineConfig()
    training: TrainingConfig = TrainingConfig()
    service: ServiceConfig = ServiceConfig()
    simulation: SimulationConfig = SimulationConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    simclusters: SimClustersConfig = SimClustersConfig()


def merge_trees(*trees: dict[str, Any]) -> dict[str, Any]:
    """Nested dicts merged left to right: a later leaf replaces, a later sub-tree merges."""
    out: dict[str, Any] = {}
    for tree in trees:
        for key, value in tree.items():
            both = isinstance(value, dict) and isinstance(out.get(key), dict)
            out[key] = merge_trees(out[key], value) if both else value
    return out


def apply_overrides(config: ForYouConfig, overrides: dict) -> ForYouConfig:
    """`config` with a nested override tree merged in (validated: unknown keys are errors)."""
    # exclude_unset: what neither the config nor the overrides set stays unset (derived windows, see
    # foryou.timeline.windows)
    return ForYouConfig.model_validate(merge_trees(config.model_dump(exclude_unset=True), overrides))


def parse_overrides(pairs: list[str]) -> dict:
    """`["timeline.sources.simclusters=800", ...]` → a nested dict for ForYouConfig.model_validate."""
    import json

    tree: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree
