"""Generic candidate-pipeline framework after X's product-mixer (numpy + stdlib only).

It knows nothing about posts or users: products assemble components into pipelines.
"""

from foryou.mixer.batch import CandidateBatch
from foryou.mixer.candidate import SOURCE_COLUMN, CandidatePipeline
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
from foryou.mixer.pipeline import STAGES, ProductPipeline, ScoringPipeline, StageObserver
from foryou.mixer.result import BatchResult, PipelineResult, RunContext
from foryou.mixer.schema import Column, Feature, PipelineOrderError, dtype_mismatches
from foryou.mixer.segments import Segments, isin_per_query, stack_per_query
from foryou.mixer.trace import Trace, TraceStep

__all__ = [
    "SOURCE_COLUMN",
    "STAGES",
    "BatchResult",
    "CandidateBatch",
    "CandidatePipeline",
    "CandidateSource",
    "Column",
    "Component",
    "Decorator",
    "Feature",
    "FeatureHydrator",
    "Filter",
    "Gate",
    "HasFeatures",
    "PipelineOrderError",
    "PipelineResult",
    "ProductPipeline",
    "Query",
    "QueryHydrator",
    "RunContext",
    "Scorer",
    "ScoringPipeline",
    "Segments",
    "Selector",
    "SideEffect",
    "StageObserver",
    "Trace",
    "TraceStep",
    "dtype_mismatches",
    "isin_per_query",
    "stack_per_query",
]
