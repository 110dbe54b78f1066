"""`foryou import interactions`: any file of interactions → a valid Dataset, on small files written here."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_cli import assert_one_line_error, foryou

from foryou.data.dataset import Dataset
from foryou.data.importers.interactions import import_interactions
from foryou.data.manifest import DatasetError
from foryou.data.validate import validate_dir

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC
COLS = {"user": "user", "item": "item", "time": "time"}


def write(path: Path, text: str, newline: str = "\n", bom: bool = False) -> Path:
    body = text.strip("\n").replace("\n", newline) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + body.encode())
    return path


def times(ds: Dataset) -> list[int]:
    return ds.engagements["created_at"].to_pylist()


def valid(result, out: Path) -> Dataset:
    """The written dataset passes `foryou data validate` and loads."""
    assert validate_dir(out) == []
    return Dataset.load(out)


@pytest.mark.parametrize(
    ("values", "fmt", "expected"),
    [
        ([str(T0), str(T0 + 60)], None, [T0, T0 + 60]),  # Unix seconds
        ([str(T0 * 1000), str(T0 * 1000 + 60_500)], None, [T0, T0 + 60]),  # milliseconds, by magnitude
        (["2023-11-14T22:13:20", "2023-11-14 22:14:20"], None, [T0, T0 + 60]),  # ISO without a zone: UTC
        (["2023-11-14T22:13:20Z", "2023-11-15T00:14:20+02:00"], None, [T0, T0 + 60]),  # ISO with a zone
        (["2023-11-14", "2023-11-15"], None, [T0 - 80_000, T0 - 80_000 + 86_400]),  # date only
        (["14/11/2023 22:13", "14/11/2023 22:14"], "%d/%m/%Y %H:%M", [T0 - 20, T0 + 40]),  # custom format
        ([str(T0 * 1000), str(T0 * 1000 + 60_000)], "ms", [T0, T0 + 60]),  # unit given
        ([str(T0), str((T0 + 60) * 1_000_000)], None, [T0, T0 + 60]),  # per value: seconds and microseconds
    ],
)
def test_every_time_format(tmp_path, values, fmt, expected):
    f = write(tmp_path / "e.csv", f"user,item,time\na,x,{values[0]}\nb,y,{values[1]}")
    ds = import_interactions(f, tmp_path / "ds", **COLS, time_format=fmt).dataset
    assert sorted(times(ds)) == expected


def test_ratings_become_positive_neutral_and_negative(tmp_path):
    f = write(tmp_path / "r.csv", f"u,i,t,stars\na,x,{T0},5\nb,x,{T0 + 1},3\nc,x,{T0 + 2},1\nd,y,{T0 + 3},4")
    r = import_interactions(f, tmp_path / "ds", user="u", item="i", time="t", value="stars",
                            positive_min=4, negative_max=2)
    eng = r.dataset.engagements.to_pylist()
    assert [(e["kind"], e["value"]) for e in eng] == [("like", 5.0), ("click", 3.0), ("not_interested", 1.0),
                                                      ("like", 4.0)]
    assert r.dataset.manifest.positives_only is False
    dropped = import_interactions(f, None, user="u", item="i", time="t", value="stars", positive_min=4,
                                  negative_max=2, neutral_kind=None)
    assert dropped.neutral == 1 and dropped.dataset.manifest.counts["engagements"] == 3
    assert any("1 neutral rating not imported" in n for n in dropped.dataset.manifest.notes)
    valid(r, tmp_path / "ds")


BAD = f"""user,item,time,kind
a,x,{T0},like
b,y,not-a-time,like
,y,{T0 + 2},like
c,z,{T0 + 3},zap
d,z,{T0 + 4},REPOST
e,z
f,x,{T0 + 6},click"""


def test_bad_rows_raise_with_the_count_and_the_first_line(tmp_path):
    f = write(tmp_path / "bad.csv", BAD)
    with pytest.raises(DatasetError) as err:
        import_interactions(f, tmp_path / "ds", **COLS, kind="kind")
    msg = str(err.value)
    assert "4 bad rows, the first at line 3: unparseable time 'not-a-time'" in msg and "\n" not in msg
    assert not (tmp_path / "ds").exists()


def test_bad_rows_skipped_are_counted_and_shown(tmp_path):
    f = write(tmp_path / "bad.csv", BAD)
    r = import_interactions(f, tmp_path / "ds", **COLS, kind="kind", on_bad_row="skip")
    assert r.rows_read == 7 and r.bad.count == 4
    assert [(b.line, b.why) for b in r.bad.examples] == [
        (3, "unparseable time"), (4, "missing user id"), (5, "unknown kind"), (7, "missing columns")]
    assert sorted(r.dataset.engagements["kind"].to_pylist()) == ["click", "like", "repost"]
    assert any("4 bad rows" in n and "skipped" in n for n in r.dataset.manifest.notes)
    assert r.summary()["bad rows"] == 4
    valid(r, tmp_path / "ds")


def test_value_out_of_range_is_a_bad_row(tmp_path):
    f = write(tmp_path / "v.csv", f"user,item,time,plays\na,x,{T0},3\nb,x,{T0},-1\nc,x,{T0},lots\nd,x,{T0},inf")
    r = import_interactions(f, None, **COLS, value="plays", on_bad_row="skip")
    assert [(b.line, b.why) for b in r.bad.examples] == [
        (3, "value out of range"), (4, "value not a number"), (5, "value out of range")]


def test_a_missing_column_names_it_and_the_columns_there(tmp_path):
    f = write(tmp_path / "e.csv", f"uid,item,time\na,x,{T0}")
    with pytest.raises(DatasetError, match=r"no column 'user' \(--user\); the file has: uid, item, time$"):
        import_interactions(f, None, **COLS)


def test_a_200_column_file(tmp_path):
    names = [f"c{i}" for i in range(197)]
    header = ",".join([*names[:100], "user", "item", "time", *names[100:]])
    rows = [",".join([*("0" * 100), f"u{k % 7}", f"i{k % 11}", str(T0 + k), *("1" * 97)]) for k in range(50)]
    f = write(tmp_path / "wide.csv", "\n".join([header, *rows]))
    r = import_interactions(f, tmp_path / "ds", **COLS)
    assert r.dataset.manifest.counts["engagements"] == 50 and r.user_ids.num_rows == 7
    valid(r, tmp_path / "ds")


def test_a_bom_and_crlf_line_ends(tmp_path):
    f = write(tmp_path / "win.csv", f"user;item;time\na;x;{T0}\nb;y;{T0 + 5}", newline="\r\n", bom=True)
    r = import_interactions(f, tmp_path / "ds", **COLS)
    assert times(r.dataset) == [T0, T0 + 5] and r.user_ids["external_id"].to_pylist() == ["a", "b"]
    valid(r, tmp_path / "ds")


def test_duplicate_events_are_counted_and_stored_once(tmp_path):
    f = write(tmp_path / "d.csv", f"user,item,time\na,x,{T0}\na,x,{T0}\na,x,{T0}\na,x,{T0 + 1}")
    r = import_interactions(f, tmp_path / "ds", **COLS)
    assert r.duplicates == 2 and r.dataset.manifest.counts["engagements"] == 2
    assert "2 exact duplicate engagements (user, post, kind, time) dropped" in r.dataset.manifest.notes


def test_string_ids_and_the_id_maps(tmp_path):
    uuid = "6f1c2a9e-3b4d-4c5e-8f70-123456789abc"
    f = write(tmp_path / "s.csv", f"""user,item,time
@zoe,{uuid},{T0 + 10}
@adam,post/7,{T0}
@zoe,post/7,{T0 + 20}""")
    r = import_interactions(f, tmp_path / "ds", **COLS)
    users = pq.read_table(tmp_path / "ds" / "ids" / "users.parquet").to_pylist()
    items = pq.read_table(tmp_path / "ds" / "ids" / "items.parquet").to_pylist()
    assert users == [{"external_id": "@adam", "user_id": 1}, {"external_id": "@zoe", "user_id": 2}]  # first seen
    assert items == [{"external_id": "post/7", "post_id": 1}, {"external_id": uuid, "post_id": 2}]
    ds = valid(r, tmp_path / "ds")
    assert set(ds.users.filter(pa.compute.equal(ds.users["kind"], "person"))["handle"].to_pylist()) == {"@adam",
                                                                                                      "@zoe"}
    assert ds.manifest.source == "interactions" and any("ids/users.parquet" in n for n in ds.manifest.notes)
    # every item has a catalog author, as the dataset importers do
    assert set(ds.posts["author_id"].to_pylist()) == {11, 12}


def test_parquet_and_json_lines_inputs(tmp_path):
    table = pa.table({"who": ["a", "b", "a"], "what": ["x", "x", "y"], "when": [T0, T0 + 1, T0 + 2],
                      "action": ["like", "repost", "reply"]})
    pq.write_table(table, tmp_path / "e.parquet")
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    for name in ("e.parquet", "e.jsonl"):
        r = import_interactions(tmp_path / name, tmp_path / name.replace(".", "_"), user="who", item="what",
                                time="when", kind="action")
        assert r.dataset.engagements["kind"].to_pylist() == ["like", "repost", "reply"], name
        valid(r, tmp_path / name.replace(".", "_"))


def test_an_items_file_and_a_mutual_social_file(tmp_path):
    f = write(tmp_path / "e.csv", f"user,item,time\nann,p1,{T0}\nbob,p2,{T0 + 5}\nann,p3,{T0 + 9}")
    items = write(tmp_path / "items.csv", f"""item,created_at,category,author,text_length,has_media
p1,{T0 - 100},news,cat,120,true
p2,{T0 - 50},sport,,40,0
p3,{T0 + 100},news,bob,10,1
p4,{T0 - 10},music,dan,5,false""")
    social = write(tmp_path / "friends.csv", "a,b\nann,bob\nbob,ann\ncat,ann\nann,ann")
    r = import_interactions(f, tmp_path / "ds", **COLS, items=items, social=social, social_mutual=True)
    ds = valid(r, tmp_path / "ds")
    uid = dict(zip(r.user_ids["external_id"].to_pylist(), r.user_ids["user_id"].to_pylist(), strict=True))
    posts = {p["post_id"]: p for p in ds.posts.to_pylist()}
    assert set(uid) == {"ann", "bob", "cat", "dan"} and len(posts) == 4
    assert posts[1]["author_id"] == uid["cat"] and posts[3]["author_id"] == uid["bob"]
    assert posts[1]["topic"] == 0 and posts[1]["length"] == 120 and posts[1]["has_media"]  # news: most frequent
    assert posts[3]["created_at"] == T0 + 9  # listed after its first event: created at that event
    catalog = ds.users.filter(pa.compute.equal(ds.users["kind"], "catalog")).to_pylist()
    assert [u["user_id"] - 10 for u in catalog] == [2]  # p2 has no author: a catalog account
    edges = {(e["src_id"], e["dst_id"]) for e in ds.follows.to_pylist()}
    assert edges == {(uid["ann"], uid["bob"]), (uid["bob"], uid["ann"]), (uid["cat"], uid["ann"]),
                     (uid["ann"], uid["cat"])}
    assert any("self-follow" in n and "duplicate" in n for n in ds.manifest.notes)
    assert ds.manifest.config["topics"][0] == "news"


def test_options_that_contradict_each_other(tmp_path):
    f = write(tmp_path / "e.csv", f"user,item,time\na,x,{T0}")
    for bad, message in (({"fixed_kind": "love"}, "not an engagement kind"),
                         ({"positive_min": 4}, "need a value"),
                         ({"on_bad_row": "ignore"}, "on_bad_row")):
        with pytest.raises(DatasetError, match=message):
            import_interactions(f, None, **COLS, **bad)
    with pytest.raises(DatasetError, match="file not found"):
        import_interactions(tmp_path / "absent.csv", None, **COLS)


def test_the_cli_imports_prints_a_summary_and_refuses_bad_rows(tmp_path):
    write(tmp_path / "e.tsv", f"member\tfilm\twhen\tstars\nu1\tm1\t{T0}\t5\nu2\tm1\t{T0 + 9}\t2")
    base = ["import", "interactions", "e.tsv", "--user", "member", "--item", "film", "--time", "when"]
    r = foryou(*base, "--out", "ds", "--value", "stars", "--positive-min", "4", "--negative-max", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "imported interactions" in r.stdout and "rows read" in r.stdout and "time range" in r.stdout
    assert foryou("data", "validate", "ds", cwd=tmp_path).returncode == 0
    write(tmp_path / "bad.csv", f"user,item,time\na,x,{T0}\nb,y,yesterday")
    cmd = ["import", "interactions", "bad.csv", "--out", "ds2", "--user", "user", "--item", "item", "--time", "time"]
    assert_one_line_error(foryou(*cmd, cwd=tmp_path), "1 bad row, the first at line 3: unparseable time")
    r = foryou(*cmd, "--on-bad-row", "skip", cwd=tmp_path)
    assert r.returncode == 0 and "bad rows" in r.stdout, r.stderr
    assert_one_line_error(foryou(*cmd[:-1], "when", "--force", cwd=tmp_path), "no column 'when' (--time)")
    assert_one_line_error(foryou("import", "movielens", "x", "--out", "y", "--user", "u", cwd=tmp_path),
                          "only for `foryou import interactions`", code=2)
