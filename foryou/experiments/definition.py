"""What an experiment is: a name, a salt, a layer, a traffic share and arms of config overrides."""

from __future__ import annotations

import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from foryou.config import ForYouConfig, apply_overrides, parse_overrides

# Per-user metrics (experiments.analysis.UserTable.metric). "utility" is the realised utility per
# impression: X's engagement weights summed over the actions the user took (not the expected Σ w·p);
# the name is the API's and the stored experiments' (primary_metric), so it stays.
METRICS = ("utility", "engagement_rate", "negative_rate", "session_depth")
Metric = Literal["utility", "engagement_rate", "negative_rate", "session_depth"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


def _checked_name(what: str, v: str) -> str:
    if not _NAME.match(v):
        raise ValueError(f"{what} name {v!r}: letters, digits, _ . - (≤ 64)")
    return v


class Arm(BaseModel):
    """One variant: a share of the experiment's traffic and the config overrides it is served with."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    weight: float = Field(1.0, gt=0, description="relative share of the experiment's users")
    overrides: dict[str, Any] = Field(default_factory=dict, description="nested ForYouConfig overrides")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _checked_name("arm", v)

    @field_validator("overrides")
    @classmethod
    def _valid_overrides(cls, v: dict[str, Any]) -> dict[str, Any]:
        apply_overrides(ForYouConfig(), v)  # unknown keys or bad values are errors now, not at serve time
        return v

    @classmethod
    def parse(cls, spec: str, weight: float = 1.0) -> Arm:
        """`name` or `name:key=value;key=value` (the CLI's --arm)."""
        name, _, rest = spec.partition(":")
        pairs = [p.strip() for p in rest.split(";") if p.strip()]
        return cls(name=name.strip(), weight=weight, overrides=parse_overrides(pairs))


class Experiment(BaseModel):
    """Users are hashed into a layer; an experiment owns `traffic` of the layer's buckets from
    `offset` on, and hashes its users into arms with its own salt. Experiments in one layer never
    share a user; experiments in different layers overlap independently (so they must not override
    the same keys — `ExperimentStore.create` checks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    salt: str = ""
    layer: str = "default"
    traffic: float = Field(1.0, gt=0, le=1, description="share of the layer's users in the experiment")
    offset: float = Field(0.0, ge=0, lt=1, description="where the experiment's range starts in its layer")
    arms: tuple[Arm, ...]
    primary_metric: Metric = "utility"
    status: Literal["running", "stopped"] = "running"
    created_at: int = Field(default_factory=lambda: int(time.time()))

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _checked_name("experiment", v)

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        if len(self.arms) < 2:
            raise ValueError("an experiment needs at least two arms (the first is the control)")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique: {names}")
        if self.offset + self.traffic > 1 + 1e-9:
            raise ValueError(f"offset {self.offset} + traffic {self.traffic} exceeds the layer")
        if not self.salt:
            object.__setattr__(self, "salt", self.name)
        return self

    @property
    def control(self) -> Arm:
        return self.arms[0]

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"experiment {self.name} has no arm {name!r}")


def override_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    """Leaf paths of an override tree: {"timeline.exploration.strategy", ...}."""
    out: set[str] = set()
    for k, v in tree.items():
        path = f"{prefix}{k}"
        out |= override_keys(v, path + ".") if isinstance(v, dict) else {path}
    return out
