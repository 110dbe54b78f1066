"""Generic candidate-pipeline framework after X's product-mixer (numpy + stdlib only).

It knows nothing about posts or users: products assemble components into pipelines.
"""

from foryou.mixer.batch import CandidateBatch
from foryou.mixer.components import (
    CandidateSource,
    Component,
    Decorator,
    FeatureHydrator,
    Filter,
    Gate,
    HasFeatures,
    Query,
    QueryHydrator,
    Scorer,
    Selector,
    SideEffect,
)
from foryou.mixer.pipeline import (
    SOURCE_COLUMN,
    CandidatePipeline,
    PipelineResult,
    ProductPipeline,
    RunContext,
    ScoringPipeline,
)
from foryou.mixer.trace import Trace, TraceStep

__all__ = [
    "SOURCE_COLUMN",
    "CandidateBatch",
    "CandidatePipeline",
    "CandidateSource",
    "Component",
    "Decorator",
    "FeatureHydrator",
    "Filter",
    "Gate",
    "HasFeatures",
    "PipelineResult",
    "ProductPipeline",
    "Query",
    "QueryHydrator",
    "RunContext",
    "Scorer",
    "ScoringPipeline",
    "Selector",
    "SideEffect",
    "Trace",
    "TraceStep",
]
