"""`foryou data export` and what the flat files need: an export re-imported through `foryou import
interactions` gives the same dataset (each native format, string ids), the users file, id policies,
integer topics, the train-side time scale and Last.fm's bad rows. Small fixtures written here."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_cli import assert_one_line_error, foryou
from test_importers import WRITERS, write_lastfm

from foryou.data.dataset import Dataset
from foryou.data.importers import IMPORTERS, import_lastfm
from foryou.data.importers.export import export_flat
from foryou.data.importers.interactions import import_interactions
from foryou.data.manifest import DatasetError, read_manifest
from foryou.data.schema import TABLES
from foryou.data.timescale import scale_of
from foryou.data.validate import validate_dir
from foryou.vocab import DAY, HOUR

T0 = 1_700_000_000


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip("\n") + "\n")
    return path


def reimport(flat: Path, out: Path) -> Dataset:
    """Run the exported command's arguments through the library (the CLI is tested once, below)."""
    args = dict(user="user", item="item", time="time", kind="kind", value="value", items=flat / "items.csv",
                users=flat / "users.csv")
    if sum(1 for _ in (flat / "social.csv").open()) > 1:
        args["social"] = flat / "social.csv"
    return import_interactions(flat / "interactions.csv", out, **args).dataset  # type: ignore[arg-type]


def assert_same(a: Dataset, b: Dataset) -> None:
    for name in TABLES:
        assert a[name].equals(b[name]), name
    for key in ("split", "time_scale", "positives_only", "time_range", "counts"):
        assert getattr(a.manifest, key) == getattr(b.manifest, key), key


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_native_format_round_trips_through_the_flat_files(tmp_path: Path, name: str) -> None:
    native = IMPORTERS[name](WRITERS[name](tmp_path / "src"))
    native.write(tmp_path / "native")
    result = export_flat(tmp_path / "native", tmp_path / "flat")
    assert result.lost == [] and result.rows["interactions.csv"] == native.engagements.num_rows
    back = reimport(tmp_path / "flat", tmp_path / "back")
    assert_same(native, back)  # integer ids are kept: the very same tables
    assert validate_dir(tmp_path / "back") == []


def test_string_ids_round_trip_up_to_the_id_maps(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", f"""who,what,when,stars
@zoe,post/7,{T0 + 10},5
@adam,post/7,{T0},1
@zoe,uuid-1,{T0 + 20},3
@bea,uuid-1,{T0 + 30},4""")
    items = write(tmp_path / "items.csv", f"what,created,category,author\npost/7,{T0 - 5},news,@bea\nuuid-1,,art,")
    social = write(tmp_path / "s.csv", "src,dst\n@zoe,@adam\n@adam,@zoe")
    users = write(tmp_path / "u.csv", f"who,handle,joined\n@zoe,Zoë,{T0 - DAY}\n@carl,Carl,{T0 - 2 * DAY}")
    first = import_interactions(events, tmp_path / "ds", user="who", item="what", time="when", value="stars",
                                positive_min=4, negative_max=2, items=items, social=social, users=users)
    assert first.dataset.manifest.counts["engagements"] == 4
    export_flat(tmp_path / "ds", tmp_path / "flat")
    assert "@zoe" in (tmp_path / "flat" / "users.csv").read_text()  # external ids, not internal ones
    back = reimport(tmp_path / "flat", tmp_path / "back")
    assert_same(first.dataset, back)
    for which in ("users", "items"):
        assert pq.read_table(tmp_path / "ds" / "ids" / f"{which}.parquet").equals(
            pq.read_table(tmp_path / "back" / "ids" / f"{which}.parquet"))


def test_the_cli_exports_and_prints_the_command_that_reimports(tmp_path: Path) -> None:
    IMPORTERS["movielens"](WRITERS["movielens"](tmp_path / "src")).write(tmp_path / "native")
    r = foryou("data", "export", "native", "flat", "--reimport-to", "back", columns=400, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert all((tmp_path / "flat" / f).is_file() for f in ("interactions.csv", "items.csv", "social.csv",
                                                             "users.csv"))
    command = next(line for line in r.stdout.splitlines() if line.startswith("foryou import interactions"))
    r = foryou(*shlex.split(command)[1:], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_same(Dataset.load(tmp_path / "native"), Dataset.load(tmp_path / "back"))
    assert_one_line_error(foryou("data", "export", "absent", "flat2", cwd=tmp_path), "absent: no such directory")


def test_a_users_file_adds_users_handles_and_earlier_creation(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", f"user,item,time\na,x,{T0}\nb,x,{T0 + 60}")
    users = write(tmp_path / "users.csv", f"""id,created_at,screen_name,age
a,{T0 - 3600},Alice ,31
b,{T0 + 3600},,40
c,2023-01-01,Carol,22
a,{T0 - 7200},dup,1""")
    r = import_interactions(events, tmp_path / "ds", user="user", item="item", time="time", users=users,
                            users_columns={"handle": "screen_name"})
    ds = Dataset.load(tmp_path / "ds")
    uid = dict(zip(r.user_ids["external_id"].to_pylist(), r.user_ids["user_id"].to_pylist(), strict=True))
    assert list(uid) == ["a", "b", "c"]  # c has no event: numbered last
    people = {u["user_id"]: u for u in ds.users.to_pylist() if u["kind"] == "person"}
    assert people[uid["a"]]["created_at"] == T0 - 3600 and people[uid["a"]]["handle"] == "Alice "  # first row
    assert people[uid["b"]]["created_at"] == T0 + 60  # listed after their first event: created at it
    assert people[uid["b"]]["handle"] == "b"  # no handle in the file: the external id
    assert people[uid["c"]]["created_at"] == 1_672_531_200 and people[uid["c"]]["handle"] == "Carol"
    assert any(n.startswith("users file users.csv: 3 users") for n in ds.manifest.notes)
    with pytest.raises(DatasetError, match="no column 'nope' \\(handle\\)"):
        import_interactions(events, None, user="user", item="item", time="time", users=users,
                            users_columns={"handle": "nope"})
    cli = foryou("import", "interactions", "e.csv", "--out", "ds2", "--user", "user", "--item", "item", "--time",
                 "time", "--users", "users.csv", "--users-columns", "handle=screen_name", cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert Dataset.load(tmp_path / "ds2").users.equals(ds.users)


def test_id_policies(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", f"user,item,time\n42,7,{T0}\n5,900,{T0 + 1}")
    auto = import_interactions(events, None, user="user", item="item", time="time")
    assert sorted(auto.dataset.engagements["user_id"].to_pylist()) == [5, 42]  # whole numbers are kept
    assert sorted(auto.dataset.posts["post_id"].to_pylist()) == [7, 900]
    assert auto.dataset.manifest.config["catalog_offset"] == 100  # above the largest person id
    numbered = import_interactions(events, None, user="user", item="item", time="time", ids="number")
    assert numbered.dataset.engagements["user_id"].to_pylist() == [1, 2]
    mixed = write(tmp_path / "m.csv", f"user,item,time\n42,7,{T0}\n007,x,{T0 + 1}")
    r = import_interactions(mixed, None, user="user", item="item", time="time")
    assert r.user_ids["user_id"].to_pylist() == [1, 2] and r.item_ids["external_id"].to_pylist() == ["7", "x"]
    with pytest.raises(DatasetError, match=r"--ids keep: 1 user id not a whole number .*'007'"):
        import_interactions(mixed, None, user="user", item="item", time="time", ids="keep")


def test_whole_number_categories_are_the_topic_ids(tmp_path: Path) -> None:
    events = write(tmp_path / "e.csv", f"user,item,time\na,x,{T0}\nb,y,{T0 + 1}\nb,z,{T0 + 2}")
    items = write(tmp_path / "items.csv", "item,topic\nx,7\ny,-1\nz,7")
    ds = import_interactions(events, None, user="user", item="item", time="time", items=items).dataset
    assert sorted(ds.posts["topic"].to_pylist()) == [-1, 7, 7]
    assert ds.manifest.config["topics"] == [str(i) for i in range(8)]
    named = write(tmp_path / "named.csv", "item,topic\nx,7\ny,rock\nz,rock")  # not all numbers: ranked
    ds = import_interactions(events, None, user="user", item="item", time="time", items=named).dataset
    assert sorted(ds.posts["topic"].to_pylist()) == [0, 0, 1] and ds.manifest.config["topics"] == ["rock", "7"]


def test_the_time_scale_is_learned_from_the_train_side_only(tmp_path: Path) -> None:
    """Train events engage fresh items (hours); the last 30 % engage items a year old. The learned scale
    must be the train side's (a feed), not a mixture that knows about the test window."""
    lines = ["user,item,time"]
    for k in range(70):  # train: each item engaged within 2 hours of its first event
        lines += [f"u{k},i{k},{T0 + k * DAY}", f"v{k},i{k},{T0 + k * DAY + 2 * 3600}"]
    for k in range(60):  # later: the old items again, a year on
        lines.append(f"w{k},i{k},{T0 + 400 * DAY + k}")
    ds = import_interactions(write(tmp_path / "e.csv", "\n".join(lines)), tmp_path / "ds", user="user",
                             item="item", time="time").dataset
    split, scale = ds.manifest.split, ds.manifest.time_scale
    assert scale is not None and scale.learned_before == split.train_end
    times = ds.engagements["created_at"].to_numpy()
    train = times < split.train_end
    assert train.sum() < len(times)  # the later events exist but are not seen
    posts, eng = ds.posts, ds.engagements
    expected = scale_of(posts["post_id"].to_numpy(), posts["created_at"].to_numpy(),
                        eng["post_id"].to_numpy()[train], times[train])
    assert scale.model_dump(exclude={"learned_before"}) == expected.model_dump(exclude={"learned_before"})
    assert scale.kind == "feed" and scale.age_p99_hours <= 2 * HOUR / 3600
    everything = scale_of(posts["post_id"].to_numpy(), posts["created_at"].to_numpy(), eng["post_id"].to_numpy(),
                          times)
    assert everything.kind == "catalog"  # what a leaky scale would have said
    # an older manifest without a scale is measured the same way on open
    manifest = read_manifest(tmp_path / "ds")
    assert manifest.time_scale == scale


def test_lastfm_play_counts_tagged_only_on_bad_rows_are_said_so(tmp_path: Path) -> None:
    root = write_lastfm(tmp_path / "lastfm")
    with (root / "user_artists.dat").open("a") as f:
        f.write("4\t2\t9\n")  # listener 4 tagged artist 2 only in 1956 (a bad row)
    notes = " | ".join(import_lastfm(root).manifest.notes)
    assert "2 play-count pairs (of 4) with no dated tag event" in notes
    assert "1 of them were tagged only on bad rows, see user_taggedartists.dat" in notes


def test_time_scale_of_an_older_manifest_uses_the_train_side(tmp_path: Path) -> None:
    from foryou.data.timescale import time_scale_of_dir

    lines = ["user,item,time"] + [f"u{k % 9},i{k % 13},{T0 + k * 3600 * (1 + k // 50)}" for k in range(100)]
    ds = import_interactions(write(tmp_path / "e.csv", "\n".join(lines)), tmp_path / "ds", user="user",
                             item="item", time="time").dataset
    assert time_scale_of_dir(tmp_path / "ds") == ds.manifest.time_scale
    assert np.all(np.diff(ds.engagements["created_at"].to_numpy()) >= 0)
    assert pa.types.is_int64(ds.engagements["created_at"].type)


def test_what_the_flat_files_cannot_carry_is_said(tiny_world_dir: Path, tmp_path: Path) -> None:
    result = export_flat(tiny_world_dir, tmp_path / "flat")
    lost = " | ".join(result.lost)
    assert "replies or reposts exported as original items" in lost and "impressions not exported" in lost
    back = reimport(tmp_path / "flat", tmp_path / "back")
    world = Dataset.load(tiny_world_dir)
    assert back.engagements.num_rows == world.engagements.num_rows and back.posts.num_rows == world.posts.num_rows
    assert back.follows.num_rows == world.follows.num_rows and validate_dir(tmp_path / "back") == []
