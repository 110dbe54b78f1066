"""The words every layer shares, defined once: engagement kinds, signal sets, safety labels,
ranker heads and time units. Everything else imports them from here (a leaf: imports nothing)."""

from __future__ import annotations

# X's engagement heads (REFERENCE.md). "impression" lives in its own table.
ENGAGEMENT_KINDS: tuple[str, ...] = (
    "click", "like", "repost", "reply", "profile_click", "dwell", "follow_author",
    "not_interested", "mute", "block", "report",
)
# "Engaged" as the world's signal measure, the social graph and the eval protocols define it.
POSITIVE: tuple[str, ...] = ("like", "repost", "reply")
# Explicit negative feedback (X's "negative_feedback_v2" family plus report).
NEGATIVE: tuple[str, ...] = ("not_interested", "mute", "block", "report")
# What the heavy ranker's "negative_feedback" head pools (report keeps its own head).
NEGATIVE_FEEDBACK: tuple[str, ...] = ("not_interested", "mute", "block")
# The world's per-action heads: every kind it can draw, positive first.
POSITIVE_HEADS: tuple[str, ...] = ("click", "like", "repost", "reply", "profile_click", "follow_author")
WORLD_HEADS: tuple[str, ...] = (*POSITIVE_HEADS, "dwell", *NEGATIVE)
# The heavy ranker's heads: X's scored engagements, with the negatives but report pooled.
RANKER_HEADS: tuple[str, ...] = ("click", "like", "repost", "reply", "profile_click", "dwell", "follow_author",
                                 "negative_feedback", "report")

# Account relations a user can set towards another (the follow graph and the block/mute lists).
RELATIONS: tuple[str, ...] = ("follow", "unfollow", "block", "mute", "unblock", "unmute")
FOLLOW_RELATIONS: tuple[str, ...] = ("follow", "unfollow")

POST_KINDS: tuple[str, ...] = ("original", "reply", "repost")
USER_KINDS: tuple[str, ...] = ("person", "catalog")
SAFETY_LABELS: tuple[str, ...] = ("is_nsfw", "is_toxic", "is_spam", "is_misinfo")

HOUR = 3_600
DAY = 86_400
