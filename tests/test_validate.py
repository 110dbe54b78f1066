"""Dataset validation: a tiny valid dataset passes; each injected defect is reported precisely."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from foryou.data.dataset import Dataset
from foryou.data.manifest import MANIFEST, DatasetError, Manifest, SplitTimes
from foryou.data.validate import Problem, validate_dir

# 3 persons and a catalog account; posts 4 (reply to 1) and 5 (repost of 3); post 6 is referenced nowhere.
TINY = {
    "users": {
        "user_id": [1, 2, 3, 4],
        "handle": ["ann", "bob", "cat", "film"],
        "kind": ["person", "person", "person", "catalog"],
        "created_at": [0, 10, 20, 30],
    },
    "posts": {
        "post_id": [1, 2, 3, 4, 5, 6],
        "author_id": [1, 2, 4, 3, 2, 1],
        "created_at": [100, 110, 120, 130, 140, 150],
        "kind": ["original", "original", "original", "reply", "repost", "original"],
        "parent_id": [None, None, None, 1, 3, None],
        "topic": [0, 1, -1, 0, 2, 1],
        "has_media": [False, True, False, False, False, True],
        "has_link": [False, False, True, False, False, False],
        "length": [10, 20, 0, 5, 0, 7],
        "is_nsfw": [False] * 6,
        "is_toxic": [False, False, False, True, False, False],
        "is_spam": [False] * 6,
        "is_misinfo": [False] * 6,
    },
    "follows": {
        "src_id": [1, 1, 1, 2, 3, 3],
        "dst_id": [2, 3, 4, 1, 1, 2],
        "created_at": [50, 50, 50, 50, 50, 50],
    },
    "engagements": {
        "user_id": [2, 3, 3, 1, 2, 1],
        "post_id": [1, 1, 1, 2, 3, 5],
        "kind": ["like", "click", "dwell", "like", "repost", "reply"],
        "created_at": [200, 210, 215, 220, 230, 240],
        "value": [1.0, 1.0, 4.5, 1.0, 1.0, 1.0],
    },
    "impressions": {
        "user_id": [2, 2, 3, 3, 1, 1, 1, 2],
        "post_id": [1, 3, 1, 2, 2, 5, 4, 4],
        "created_at": [200, 201, 205, 206, 219, 239, 238, 250],
        "session_id": [10, 10, 11, 11, 12, 12, 12, 13],
        "position": [0, 1, 0, 1, 0, 1, 2, 0],
        "propensity": [0.5, 0.25, 1.0, 0.5, 0.5, 0.2, 0.1, 0.3],
    },
}


def write_tiny(path: Path) -> Path:
    """Write the tiny valid dataset to `path` and return it."""
    manifest = Manifest(
        name="tiny",
        source="test",
        generator="tests",
        split=SplitTimes(train_end=210, valid_end=230),
        signal={"like": 0.5},
    )
    return Dataset.build({name: pa.table(cols) for name, cols in TINY.items()}, manifest).write(path)


def rewrite(path: Path, table: str, change: Callable[[pa.Table], pa.Table]) -> None:
    """Rewrite one Parquet file directly (bypassing Dataset.build's casting)."""
    file = path / f"{table}.parquet"
    pq.write_table(change(pq.read_table(file)), file)


def set_cell(column: str, row: int, value: object) -> Callable[[pa.Table], pa.Table]:
    def change(t: pa.Table) -> pa.Table:
        values = t[column].to_pylist()
        values[row] = value
        i = t.schema.get_field_index(column)
        return t.set_column(
            i, pa.field(column, t.schema.field(i).type), pa.array(values, t.schema.field(i).type)
        )

    return change


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_tiny(tmp_path / "tiny")


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_valid_dataset_has_no_problems(tiny: Path) -> None:
    assert validate_dir(tiny) == []
    ds = Dataset.load(tiny)
    assert ds.posts.num_rows == 6
    assert ds.manifest.counts["impressions"] == 8


def test_missing_column(tiny: Path) -> None:
    rewrite(tiny, "posts", lambda t: t.drop_columns(["topic"]))
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count) == ("posts", "topic", 0)
    assert str(p) == "posts.topic: missing column"


def test_missing_key_column_skips_dependent_checks(tiny: Path) -> None:
    rewrite(tiny, "posts", lambda t: t.drop_columns(["post_id"]))
    assert [(p.table, p.column) for p in validate_dir(tiny)] == [("posts", "post_id")]


def test_dangling_author(tiny: Path) -> None:
    rewrite(tiny, "posts", set_cell("author_id", 4, 99))
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count, p.examples) == ("posts", "author_id", 1, (5,))
    assert str(p) == "posts.author_id: unknown user in 1 row (post_id=5)"


def test_negative_timestamp(tiny: Path) -> None:
    rewrite(tiny, "users", set_cell("created_at", 1, -5))
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count, p.examples) == ("users", "created_at", 1, (2,))


def test_duplicate_post_id(tiny: Path) -> None:
    rewrite(tiny, "posts", set_cell("post_id", 5, 5))
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count, p.examples) == ("posts", "post_id", 1, (5,))
    assert "duplicate key" in str(p)


def test_wrong_type_integer_widening(tiny: Path) -> None:
    rewrite(tiny, "posts", lambda t: t.set_column(5, "topic", t["topic"].cast(pa.int64())))
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count) == ("posts", "topic", 0)
    assert str(p) == "posts.topic: type int64, declared int16"


def test_engagement_before_its_post(tiny: Path) -> None:
    rewrite(tiny, "engagements", set_cell("created_at", 4, 115))  # post 3 was created at 120
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count, p.examples) == (
        "engagements",
        "created_at",
        1,
        ((2, 3, "repost", 115),),
    )
    assert str(p) == (
        "engagements.created_at: before the post in 1 row"
        " ((user_id, post_id, kind, created_at)=(2, 3, 'repost', 115))"
    )


def test_unknown_engagement_kind(tiny: Path) -> None:
    rewrite(tiny, "engagements", set_cell("kind", 0, "superlike"))
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count) == ("engagements", "kind", 1)


def test_zero_propensity(tiny: Path) -> None:
    rewrite(tiny, "impressions", set_cell("propensity", 2, 0.0))
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count, p.examples) == ("impressions", "propensity", 1, ((3, 1, 205),))


def test_null_in_non_nullable_column(tiny: Path) -> None:
    rewrite(tiny, "posts", set_cell("kind", 1, None))
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count, p.examples) == ("posts", "kind", 1, (2,))


def test_parent_rules(tiny: Path) -> None:
    rewrite(tiny, "posts", set_cell("parent_id", 0, 2))  # an original with a parent (created after it)
    rewrite(tiny, "posts", set_cell("parent_id", 3, 42))  # a reply to an unknown post
    got = {(p.column, p.check, p.count) for p in validate_dir(tiny)}
    assert got == {
        ("parent_id", "set on an original", 1),
        ("created_at", "before the parent post", 1),
        ("parent_id", "unknown post", 1),
    }


def test_manifest_count_mismatch(tiny: Path) -> None:
    manifest = json.loads((tiny / MANIFEST).read_text())
    manifest["counts"]["follows"] += 1
    (tiny / MANIFEST).write_text(json.dumps(manifest))
    p = only(validate_dir(tiny))
    assert (p.table, p.column, p.count) == ("follows", "", 0)
    assert str(p) == "follows: 6 rows, manifest.counts says 7"


def test_bad_manifest_and_missing_file(tiny: Path) -> None:
    manifest = json.loads((tiny / MANIFEST).read_text())
    manifest["schema_version"] = 999
    (tiny / MANIFEST).write_text(json.dumps(manifest))
    (tiny / "follows.parquet").unlink()
    problems = validate_dir(tiny)
    assert [(p.table, p.column) for p in problems] == [("manifest", ""), ("follows", "")]
    assert "schema version 999" in str(problems[0])
    assert str(problems[1]) == "follows: file follows.parquet missing"


def test_all_problems_reported_together(tiny: Path) -> None:
    def break_posts(t: pa.Table) -> pa.Table:
        t = set_cell("author_id", 4, 99)(t)
        t = set_cell("post_id", 5, 5)(t)
        return t.drop_columns(["topic"])

    rewrite(tiny, "posts", break_posts)
    rewrite(tiny, "users", set_cell("created_at", 1, -5))
    problems = validate_dir(tiny)
    assert sorted((p.table, p.column, p.count) for p in problems) == [
        ("posts", "author_id", 1),
        ("posts", "post_id", 1),
        ("posts", "topic", 0),
        ("users", "created_at", 1),
    ]
    lines = [str(p) for p in problems]
    assert all("\n" not in line for line in lines)
    assert len(set(lines)) == 4

    with pytest.raises(DatasetError) as err:
        Dataset.load(tiny)
    message = str(err.value)
    for where in ("posts.author_id", "posts.post_id", "posts.topic", "users.created_at"):
        assert where in message


def test_examples_capped_at_five(tiny: Path) -> None:
    rewrite(tiny, "impressions", lambda t: t.set_column(4, "position", pa.array([-1] * 8, pa.int16())))
    p = only(validate_dir(tiny))
    assert p.count == 8 and len(p.examples) == 5
    assert str(p).endswith(", …)")


def _flip_last_byte_of(path: Path, table: str, column: str) -> None:
    """Flip the last byte of a column chunk: inside its (compressed) page data, not a header or the footer."""
    file = path / f"{table}.parquet"
    meta = pq.read_metadata(file).row_group(0)
    chunk = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(file.read_bytes())
    data[start + chunk.total_compressed_size - 1] ^= 0xFF
    file.write_bytes(bytes(data))


@pytest.mark.parametrize(("table", "column"), [("users", "handle"), ("engagements", "value"),
                                               ("posts", "is_misinfo")])
def test_corrupt_column_chunk_is_reported(tiny: Path, table: str, column: str) -> None:
    """Every column chunk is decoded and its page CRCs (written by Dataset.write) verified: a flipped byte
    DuckDB would read without complaint is a problem; the table's row checks are skipped."""
    _flip_last_byte_of(tiny, table, column)
    problems = [p for p in validate_dir(tiny) if p.table == table]
    assert [(p.table, p.column, p.count) for p in problems] == [(table, column, 0)], [str(p) for p in problems]
    assert str(problems[0]).startswith(f"{table}.{column}: corrupt data in row group 0: ")

