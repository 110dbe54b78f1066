"""The manifest of a Dataset (`manifest.json`): what it is, where it came from, its split.

Everything that reads a dataset's identity without reading its tables lives here, below both
`dataset` (which writes and loads the tables) and `validate` (which checks them), so neither has
to import the other to read the manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from foryou.data.schema import SCHEMA_VERSION
from foryou.errors import ForYouError

MANIFEST = "manifest.json"


class DatasetError(ForYouError):
    """A dataset is missing, unreadable or invalid. The message names table, column and rows."""


class SplitTimes(BaseModel):
    """Temporal split: train = [start, train_end), validation = [train_end, valid_end), test = rest."""

    model_config = ConfigDict(extra="forbid")
    train_end: int
    valid_end: int


class TimeScale(BaseModel):
    """How long posts stay engaged with (foryou.data.timescale): engagement time − post creation time."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["feed", "catalog"] = Field(description="feed: posts live hours; catalog: months or years")
    engagements: int = 0
    age_p50_hours: float = 0.0
    age_p90_hours: float = 0.0
    age_p99_hours: float = 0.0
    recent_hours: float = Field(0.0, description="span of the last 10 % of engagements")
    resolution_hours: float = Field(0.0, description="median gap between distinct engagement times")
    span_days: float = 0.0
    learned_before: int | None = Field(None, description="learned from engagements before this time (the "
                                       "validation window's start); None: from all of them")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    name: str
    source: str = Field(description="synthetic | minirecsys | lastfm | higgs | movielens | ...")
    generator: str = Field(description="what wrote it, with version")
    seed: int | None = None
    preset: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    time_range: tuple[int, int] = (0, 0)
    split: SplitTimes
    positives_only: bool = False
    has_impressions: bool = True
    has_ground_truth: bool = False
    signal: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    time_scale: TimeScale | None = Field(None, description="None in older manifests: computed on open")


def read_manifest(path: str | Path) -> Manifest:
    """The manifest of the dataset at `path`; DatasetError says whether the directory is missing, is not
    a dataset, or holds an unreadable manifest."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such directory")
    if not path.is_dir():
        raise DatasetError(f"{path} is not a dataset (a file, not a directory)")
    file = path / MANIFEST
    if not file.exists():
        raise DatasetError(f"{path} is not a dataset (no {MANIFEST})")
    try:
        manifest = Manifest.model_validate(json.loads(file.read_text()))
    except (ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0]
        raise DatasetError(f"{file}: unreadable manifest: {first}") from exc
    if manifest.schema_version != SCHEMA_VERSION:
        raise DatasetError(
            f"{file}: schema version {manifest.schema_version}, this foryou reads {SCHEMA_VERSION}"
        )
    return manifest


def split_by_quantiles(event_times: np.ndarray, train: float = 0.7, valid: float = 0.85) -> SplitTimes:
    """Split where the given share of events has happened (importers use engagement times).

    The boundary is exclusive on the left window: an event at exactly `train_end` is validation.
    """
    if len(event_times) == 0:
        return SplitTimes(train_end=0, valid_end=0)
    t = np.sort(np.asarray(event_times, dtype=np.int64))
    train_end = int(t[min(int(train * len(t)), len(t) - 1)])
    valid_end = int(t[min(int(valid * len(t)), len(t) - 1)])
    return SplitTimes(train_end=train_end, valid_end=max(valid_end, train_end))
