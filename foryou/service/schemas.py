"""Request and response bodies: ids, enums and sizes validated here (422 otherwise); unknown
fields are rejected. Nothing in a request names a file, a model or a config key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foryou.data.schema import ENGAGEMENT_KINDS, POST_KINDS

ID_MAX = 2**62  # ids are int64 in the dataset; leave room for arithmetic on them
EventId = str
EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
EngagementKind = Literal[("impression", *ENGAGEMENT_KINDS)]  # type: ignore[valid-type]
PostKind = Literal[POST_KINDS]  # type: ignore[valid-type]
Action = Literal["follow", "unfollow", "block", "mute", "unblock", "unmute"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EngagementIn(Strict):
    user_id: int = Field(ge=0, le=ID_MAX, description="who acted")
    post_id: int = Field(ge=0, le=ID_MAX, description="on which post")
    kind: EngagementKind = Field(description="an engagement kind, or impression (the post was shown)")
    value: float = Field(1.0, ge=0, le=1e6, allow_inf_nan=False, description="dwell seconds for dwell, else 1")
    event_id: EventId | None = Field(None, pattern=EVENT_ID_PATTERN,
                                     description="idempotency key: a retry with the same id is stored once")


class EngagementBatch(Strict):
    events: list[EngagementIn] = Field(min_length=1, max_length=10_000)


class PostIn(Strict):
    author_id: int = Field(ge=0, le=ID_MAX)
    kind: PostKind = "original"
    parent_id: int | None = Field(None, ge=0, le=ID_MAX, description="the post replied to or reposted")
    topic: int = Field(-1, ge=-1, le=32767, description="topic id, -1 when unknown")
    has_media: bool = False
    has_link: bool = False
    length: int = Field(0, ge=0, le=100_000)
    is_nsfw: bool = False
    is_toxic: bool = False
    is_spam: bool = False
    is_misinfo: bool = False
    event_id: EventId | None = Field(None, pattern=EVENT_ID_PATTERN)

    @model_validator(mode="after")
    def _parent(self) -> PostIn:
        if (self.kind == "original") != (self.parent_id is None):
            raise ValueError("parent_id is required for replies and reposts and not allowed for originals")
        return self


class RelationIn(Strict):
    user_id: int = Field(ge=0, le=ID_MAX)
    target_id: int = Field(ge=0, le=ID_MAX, description="the account followed, unfollowed, blocked or muted")
    action: Action = "follow"
    event_id: EventId | None = Field(None, pattern=EVENT_ID_PATTERN)

    @model_validator(mode="after")
    def _not_self(self) -> RelationIn:
        if self.user_id == self.target_id:
            raise ValueError("an account cannot follow, block or mute itself")
        return self


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
    post_id: int
    created_at: int
    ack: Ack


class TimelineEntry(Strict):
    rank: int
    post_id: int
    author_id: int
    source: str
    score: float
    in_network: bool
    created_at: int
    predictions: dict[str, float]
    liked_by: list[int]
    explanation: dict[str, Any] | None = None


class TimelinePage(Strict):
    request_id: str
    user_id: int
    items: list[TimelineEntry]
    cursor: str = Field(description="pass back as ?cursor= for the next page")
    cold_start: bool
    cached: bool = Field(description="served from the scored-candidate cache")
    sources: dict[str, int]
    models: dict[str, str]
    experiments: dict[str, str] | None = Field(None, description="the user's experiment arms, when in any")


class PostOut(Strict):
    post_id: int
    author_id: int
    created_at: int
    kind: str
    parent_id: int | None
    topic: int
    has_media: bool
    has_link: bool
    length: int
    labels: dict[str, bool]
    counters: dict[str, int] = Field(description="engagements by kind, impressions, positives in the last 24 h")


class UserOut(Strict):
    user_id: int
    following: int
    followers: int
    posts: int
    blocked_or_muted: int
