"""Opt-in request traces: what every step did to the candidate set, and how long it took.

Tracing is off by default; when off, the pipeline only records one float per step (timings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_REMOVED_IDS = 20  # removed ids kept per filter step, enough to explain without bloating traces


@dataclass
class TraceStep:
    """One executed (or failed, or skipped) step.

    `pipeline` names the enclosing candidate/scoring pipeline (None at product level); `reason`
    is the filter's name for removals; `error` is set when a step raised.
    """

    kind: str
    name: str
    n_in: int
    n_out: int
    duration_ms: float
    pipeline: str | None = None
    removed_ids: list[Any] = field(default_factory=list)
    reason: str | None = None
    error: str | None = None

    @property
    def removed(self) -> int:
        return max(0, self.n_in - self.n_out)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["removed"] = self.removed
        return d


@dataclass
class Trace:
    """The ordered steps of one request."""

    pipeline: str
    steps: list[TraceStep] = field(default_factory=list)

    def add(self, step: TraceStep) -> None:
        self.steps.append(step)

    def find(self, name: str, kind: str | None = None) -> list[TraceStep]:
        """Steps of component `name` (optionally of one `kind`), in execution order."""
        return [s for s in self.steps if s.name == name and (kind is None or s.kind == kind)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (removed ids are converted to plain Python values upstream)."""
        return {"pipeline": self.pipeline, "steps": [s.to_dict() for s in self.steps]}
