"""The feature store: one definition of every ranking feature, point-in-time counters, train = serve."""

from foryou.features.counter import LIVE_RUN, EventCounter
from foryou.features.store import FEATURE_NAMES, FEATURE_SCHEMA, FEATURES, PRIOR_IMPRESSIONS, Feature, FeatureStore

__all__ = ["FEATURES", "FEATURE_NAMES", "FEATURE_SCHEMA", "LIVE_RUN", "PRIOR_IMPRESSIONS", "EventCounter", "Feature",
           "FeatureStore"]
