"""What pipelines return, and the per-request bookkeeping they fill (timings, counts, errors, trace)."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from foryou.mixer.batch import CandidateBatch
from foryou.mixer.segments import Segments
from foryou.mixer.trace import Trace, TraceStep


@dataclass
class PipelineResult:
    """One query's result. `skipped` names the gate that closed the request, if any."""

    batch: CandidateBatch
    timings_ms: dict[str, float]
    errors: list[str]
    trace: Trace | None
    query: Any
    pipeline: str = ""
    skipped: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # candidates out of each step, by timing key


@dataclass
class BatchResult:
    """Many queries served in one run: their candidates in one batch, query i owning the rows of
    segment i, and each query's own `PipelineResult` (its batch a view of its rows)."""

    batch: CandidateBatch
    segments: Segments
    results: list[PipelineResult]
    stage: str = ""  # the last stage that ran ("" for all of them)


@dataclass
class RunContext:
    """Per-request bookkeeping shared by nested pipelines (framework-internal)."""

    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    trace: Trace | None = None
    id_column: str | None = None

    def record(self, name: str, kind: str, pipeline: str | None, n_in: int, n_out: int, t0: float,
               **detail: Any) -> None:
        """`record_ms` of the time since `t0` (`detail`: removed_ids, reason, error)."""
        self.record_ms(name, kind, pipeline, n_in, n_out, (perf_counter() - t0) * 1000.0, **detail)

    def record_ms(
        self,
        name: str,
        kind: str,
        pipeline: str | None,
        n_in: int,
        n_out: int,
        ms: float,
        removed_ids: list[Any] | None = None,
        reason: str | None = None,
        error: str | None = None,
    ) -> None:
        key = f"{kind}:{name}" if pipeline is None else f"{pipeline}/{kind}:{name}"
        timings = self.timings
        timings[key] = timings.get(key, 0.0) + ms
        self.counts[key] = n_out
        if self.trace is not None:
            self.trace.add(TraceStep(kind, name, n_in, n_out, ms, pipeline, removed_ids or [], reason, error))
