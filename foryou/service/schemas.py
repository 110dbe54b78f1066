"""Request and response bodies: ids, enums and sizes validated here (422 otherwise); unknown
fields are rejected. Nothing in a request names a file, a model or a config key.

Bodies are strict: a flag is a JSON boolean. An id is the platform's own: a JSON integer (datasets with
int ids, e.g. synthetic worlds) or a string (datasets imported with their own ids: UUIDs, handles; on int
datasets a decimal string is read as the int); `true` or 7.5 is not an id. Responses give ids back as the
platform knows them: ints for int datasets, strings otherwise (foryou.data.ids). Query and path parameters
are text by nature and are parsed as documented."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Interval
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from foryou.config import EngagementWeights, TimelineConfig
from foryou.experiments.definition import NAME_PATTERN, Arm, Experiment, Metric
from foryou.service.cursor import ID_MAX
from foryou.vocab import ENGAGEMENT_KINDS, RELATIONS

EventId = str
EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
EngagementKind = Literal[("impression", *ENGAGEMENT_KINDS)]  # type: ignore[valid-type]
Action = Literal[RELATIONS]  # type: ignore[valid-type]


def _integral(v: Any) -> Any:
    """JSON Schema's `integer` includes 7.0; strict validation alone would refuse it."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


Int = Annotated[int, BeforeValidator(_integral)]
# The platform's ids: anything but spaces, control characters and what a path segment cannot carry
# (explicit ranges: the validator and JSON Schema tools agree on them, unlike \s)
ID_PATTERN = r"^[^\x00-\x20\x7f/?#%\\]{1,128}$"
ID_FORMAT = {"format": "platform-id"}  # a string id (the fuzz test draws real ones for this format)
Id = Annotated[int, Interval(ge=0, le=ID_MAX), BeforeValidator(_integral)] | Annotated[
    str, Field(pattern=ID_PATTERN, json_schema_extra=ID_FORMAT)]
IdOut = int | str  # what responses carry: the platform's own ids


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ValidationIssue(Strict):
    loc: list[str | int] = Field(description="where: body / query / path, then the field path")
    msg: str
    type: str


class ErrorOut(Strict):
    """Every error response: one readable line, plus the issues of a validation error."""

    detail: str
    errors: list[ValidationIssue] | None = Field(None, description="422 only: what is wrong where (≤ 20)")


class EngagementIn(Strict):
    user_id: Id = Field(description="who acted")
    post_id: Id = Field(description="on which post")
    kind: EngagementKind = Field(description="an engagement kind, or impression (the post was shown)")
    value: float = Field(1.0, ge=0, le=1e6, allow_inf_nan=False, description="dwell seconds for dwell, else 1")
    event_id: EventId | None = Field(None, pattern=EVENT_ID_PATTERN,
                                     description="idempotency key: a retry with the same id is stored once")


class EngagementBatch(Strict):
    events: list[EngagementIn] = Field(min_length=1, max_length=10_000)


class _PostFields(Strict):
    author_id: Id
    post_id: Annotated[str, Field(pattern=ID_PATTERN, json_schema_extra=ID_FORMAT)] | None = Field(
        None, description="the platform's own id for the new post (datasets with string ids); else the server "
                          "numbers it")
    topic: Int = Field(-1, ge=-1, le=32767, description="topic id, -1 when unknown")
    has_media: bool = False
    has_link: bool = False
    length: Int = Field(0, ge=0, le=100_000)
    is_nsfw: bool = False
    is_toxic: bool = False
    is_spam: bool = False
    is_misinfo: bool = False
    event_id: EventId | None = Field(None, pattern=EVENT_ID_PATTERN)


class OriginalPostIn(_PostFields):
    kind: Literal["original"] = "original"


class DerivedPostIn(_PostFields):
    kind: Literal["reply", "repost"]
    parent_id: Id = Field(description="the post replied to or reposted")


# The schema says what the server checks: an original has no parent_id, a reply or repost needs one.
PostIn = OriginalPostIn | DerivedPostIn


class RelationIn(Strict):
    user_id: Id
    target_id: Id = Field(description="the account followed, unfollowed, blocked or muted")
    action: Action = "follow"
    event_id: EventId | None = Field(None, pattern=EVENT_ID_PATTERN)


class Ack(Strict):
    event_id: str
    seq: int
    duplicate: bool


class WriteResult(Strict):
    accepted: int = Field(description="events newly stored")
    duplicates: int = Field(description="events already stored under the same event_id")
    last_seq: int
    events: list[Ack] = Field(description="one acknowledgement per event, in order")


class PostCreated(Strict):
    post_id: IdOut
    created_at: int
    ack: Ack


class TimelineEntry(Strict):
    rank: int
    post_id: IdOut
    author_id: IdOut
    source: str
    score: float
    in_network: bool
    network_reason: str = Field(description="in- or out-of-network, why, and the source that found it")
    created_at: int
    predictions: dict[str, float]
    liked_by: list[IdOut]
    explanation: dict[str, Any] | None = None


class TimelinePage(Strict):
    request_id: str
    user_id: IdOut
    items: list[TimelineEntry]
    cursor: str = Field(description="pass back as ?cursor= for the next page")
    cold_start: bool
    cached: bool = Field(description="served from the scored-candidate cache")
    sources: dict[str, int]
    models: dict[str, str]
    experiments: dict[str, str] | None = Field(None, description="the user's experiment arms, when in any")


class PostOut(Strict):
    post_id: IdOut
    author_id: IdOut
    created_at: int
    kind: str
    parent_id: IdOut | None
    topic: int
    has_media: bool
    has_link: bool
    length: int
    labels: dict[str, bool]
    counters: dict[str, int] = Field(description="engagements by kind, impressions, positives in the last 24 h")


class Health(Strict):
    status: Literal["ok"]


class Readiness(Strict):
    status: Literal["ready"]
    applied_seq: int = Field(description="the last event of the store this worker has applied")
    models: dict[str, str] = Field(description="what serves each model: a registry version or the fallback")


class UserOut(Strict):
    user_id: IdOut
    following: int
    followers: int
    posts: int
    blocked_or_muted: int


class Assignments(Strict):
    user_id: IdOut
    assignments: dict[str, str] = Field(description="experiment → arm, for each running experiment the user is in")
    overrides: dict[str, Any] = Field(description="the config overrides of those arms, merged: what the user is "
                                      "served with")


class ServingOverrides(Strict):
    """What an experiment arm may change: X's weights and the timeline's knobs (any subset; the rest
    keeps the server's value). Worlds, training and the server itself are not per-user settings."""

    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False)
    weights: EngagementWeights = EngagementWeights()
    timeline: TimelineConfig = TimelineConfig()


class ArmIn(Strict):
    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False)
    weight: float = Field(1.0, gt=0, le=1e6, description="relative share of the experiment's users")
    overrides: ServingOverrides = ServingOverrides()


class ExperimentIn(Strict):
    """A new experiment. `arms` maps each arm's name to its share and overrides; the first is the
    control. The server places it in its layer (the `offset` of the answer)."""

    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False)
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field("", max_length=2000)
    salt: str = Field("", max_length=64, description="hashing salt; the name when empty")
    layer: str = Field("default", pattern=NAME_PATTERN)
    traffic: float = Field(1.0, gt=0, le=1, description="share of the layer's users in the experiment")
    arms: dict[Annotated[str, Field(pattern=NAME_PATTERN)], ArmIn] = Field(
        min_length=2, max_length=32, json_schema_extra={"additionalProperties": False})
    primary_metric: Metric = "utility"

    def experiment(self) -> Experiment:
        arms = tuple(Arm(name=k, weight=a.weight, overrides=a.overrides.model_dump(exclude_unset=True))
                     for k, a in self.arms.items())
        return Experiment(name=self.name, description=self.description, salt=self.salt, layer=self.layer,
                          traffic=self.traffic, arms=arms, primary_metric=self.primary_metric)
