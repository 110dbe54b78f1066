"""The Dataset schema: every table, column, type and meaning, declared once.

The README's "Dataset format" section is generated from (and tested against) this module, and
validation, loading, the synthetic world and every importer use these schemas.
Times are Unix seconds (int64, UTC) everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from foryou.vocab import ENGAGEMENT_KINDS

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # rows must be unique on these columns

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


USERS = Table(
    "users",
    "Accounts. Catalog accounts stand for items of datasets without authors (a movie, an artist).",
    (
        Column("user_id", pa.int64(), "unique account id"),
        Column("handle", pa.string(), "display handle"),
        Column("kind", pa.string(), "person | catalog"),
        Column("created_at", pa.int64(), "account creation time"),
    ),
    key=("user_id",),
)

POSTS = Table(
    "posts",
    "Posts, reposts and replies. Safety labels are the platform's labels (ground truth in worlds).",
    (
        Column("post_id", pa.int64(), "unique post id"),
        Column("author_id", pa.int64(), "users.user_id of the author (the reposter for reposts)"),
        Column("created_at", pa.int64(), "creation time"),
        Column("kind", pa.string(), "original | reply | repost"),
        Column("parent_id", pa.int64(), "posts.post_id replied to or reposted; null for originals", True),
        Column("topic", pa.int16(), "topic id, -1 when unknown"),
        Column("has_media", pa.bool_(), "carries an image or video"),
        Column("has_link", pa.bool_(), "carries an external link"),
        Column("length", pa.int32(), "text length in characters (0 when unknown)"),
        Column("is_nsfw", pa.bool_(), "safety label: not safe for work"),
        Column("is_toxic", pa.bool_(), "safety label: toxic"),
        Column("is_spam", pa.bool_(), "safety label: spam"),
        Column("is_misinfo", pa.bool_(), "safety label: misinformation"),
    ),
    key=("post_id",),
)

FOLLOWS = Table(
    "follows",
    "Directed follow edges: src follows dst.",
    (
        Column("src_id", pa.int64(), "the follower (users.user_id)"),
        Column("dst_id", pa.int64(), "the followed account (users.user_id)"),
        Column("created_at", pa.int64(), "when the follow happened"),
    ),
    key=("src_id", "dst_id"),
)

ENGAGEMENTS = Table(
    "engagements",
    "Engagement events, one row per action.",
    (
        Column("user_id", pa.int64(), "who acted (users.user_id)"),
        Column("post_id", pa.int64(), "on which post (posts.post_id)"),
        Column("kind", pa.string(), " | ".join(ENGAGEMENT_KINDS)),
        Column("created_at", pa.int64(), "when"),
        Column("value", pa.float32(), "dwell seconds for dwell, strength (play count, rating) else 1"),
    ),
    key=("user_id", "post_id", "kind", "created_at"),
)

IMPRESSIONS = Table(
    "impressions",
    "What users were shown (real negatives). Empty for positives-only sources.",
    (
        Column("user_id", pa.int64(), "viewer (users.user_id)"),
        Column("post_id", pa.int64(), "post shown (posts.post_id)"),
        Column("created_at", pa.int64(), "when it was shown"),
        Column("session_id", pa.int64(), "the session (page view) it was shown in"),
        Column("position", pa.int16(), "0-based slot in the session"),
        Column("propensity", pa.float32(), "probability the logging policy picked this post for the slot"),
    ),
    key=("user_id", "post_id", "created_at"),
)

TABLES: dict[str, Table] = {t.name: t for t in (USERS, POSTS, FOLLOWS, ENGAGEMENTS, IMPRESSIONS)}


def empty_table(name: str) -> pa.Table:
    """An empty table with the declared schema (for sources that lack a table)."""
    return TABLES[name].schema.empty_table()


def markdown_reference() -> str:
    """The schema as Markdown tables, for the README."""
    out: list[str] = []
    for table in TABLES.values():
        out.append(f"**`{table.name}`** — {table.doc} Unique on ({', '.join(table.key)}).\n")
        out.append("| column | type | meaning |")
        out.append("|---|---|---|")
        for c in table.columns:
            null = ", nullable" if c.nullable else ""
            out.append(f"| `{c.name}` | {c.type}{null} | {c.doc} |")
        out.append("")
    return "\n".join(out)
