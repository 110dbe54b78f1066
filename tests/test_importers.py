"""Importers: small fixtures in each source's real format, written here; real data only in the slow test."""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from foryou.data.dataset import Dataset
from foryou.data.importers import (
    IMPORTERS,
    MAPPINGS,
    import_higgs,
    import_lastfm,
    import_minirecsys,
    import_movielens,
)
from foryou.data.manifest import DatasetError
from foryou.data.schema import TABLES
from foryou.data.validate import validate_dir  # part of the package: the validator always runs here
from foryou.vocab import DAY

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
T0 = 1_700_000_000


def _utc(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, tzinfo=UTC).timestamp())


def _rows(table: pa.Table, *cols: str) -> list[tuple]:
    return sorted(zip(*(table[c].to_pylist() for c in cols), strict=True))


def _pairs(table: pa.Table, a: str, b: str) -> list[tuple]:
    return list(zip(table[a].to_pylist(), table[b].to_pylist(), strict=True))


def _kinds(ds: Dataset) -> dict[str, int]:
    return {d["values"]: d["counts"] for d in pc.value_counts(ds.engagements["kind"]).to_pylist()}


def check_invariants(ds: Dataset) -> None:
    """What the validator checks: schema, keys, references, time order, no self-follows."""
    for name, spec in TABLES.items():
        table = ds[name]
        assert table.schema == spec.schema, name
        keys = table.group_by(list(spec.key)).aggregate([])
        assert keys.num_rows == table.num_rows, f"duplicate keys in {name}"
        assert ds.manifest.counts[name] == table.num_rows
    users = set(ds.users["user_id"].to_pylist())
    assert set(ds.posts["author_id"].to_pylist()) <= users
    assert set(ds.engagements["user_id"].to_pylist()) <= users
    assert set(ds.follows["src_id"].to_pylist()) <= users
    assert set(ds.follows["dst_id"].to_pylist()) <= users
    assert not any(s == d for s, d in _pairs(ds.follows, "src_id", "dst_id"))
    post_time = dict(zip(ds.posts["post_id"].to_pylist(), ds.posts["created_at"].to_pylist(), strict=True))
    for p, t in _pairs(ds.engagements, "post_id", "created_at"):
        assert t >= post_time[p]
    user_time = dict(zip(ds.users["user_id"].to_pylist(), ds.users["created_at"].to_pylist(), strict=True))
    for a, t in _pairs(ds.posts, "author_id", "created_at"):
        assert t >= user_time[a]
    assert min(ds.users["created_at"].to_pylist(), default=0) >= 0
    assert ds.impressions.num_rows == 0 and ds.manifest.has_impressions is False
    split = ds.manifest.split
    lo, hi = ds.manifest.time_range
    assert lo <= split.train_end <= split.valid_end <= hi


# -- fixtures in the sources' formats ---------------------------------------------------------------


def write_minirecsys(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "user_id": [1, 2, 3],
                "followers_count": [5, 6, 7],
                "following_count": [1, 2, 3],
                "account_age_days": [10, 100, 1000],
                "verified": [False, True, False],
                "interests": [["tech"], ["art", "news"], []],
                "avg_tweets_per_day": [0.5, 1.0, 2.0],
            }
        ),
        root / "users.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "tweet_id": [10, 11, 12],
                "author_id": [1, 2, 3],
                "category": ["tech", "art", "news"],
                "text_length": [100, 50, 7],
                "has_media": [True, False, False],
                "has_link": [False, True, False],
                "quality_score": [0.9, 0.1, 0.5],
                "nsfw_score": [0.7, 0.1, 0.2],
                "toxicity_score": [0.1, 0.5, 0.0],
                "hours_old": [1.0, 2.0, 3.0],
                "author_followers": [5, 6, 7],
                "author_verified": [False, True, False],
            }
        ),
        root / "tweets.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "follower_id": [1, 1, 2, 3, 3],
                "followed_id": [2, 2, 3, 3, 1],  # a duplicate and a self-follow
                "follow_weight": [0.1, 0.1, 0.2, 0.3, 0.4],
            }
        ),
        root / "follows.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "user_id": [2, 3, 1, 3, 3, 2],
                "tweet_id": [10, 10, 11, 10, 10, 12],
                "interaction_type": ["like", "retweet", "reply", "click", "click", "bookmark"],
                "engagement_prob": [0.9, 0.8, 0.7, 0.6, 0.6, 0.5],
                "timestamp": [T0 + 100, T0 + 200, T0 + 5 * DAY, T0 + 300, T0 + 300, T0 + 400],
                "split": ["train", "train", "test", "train", "train", "test"],
            }
        ),
        root / "interactions.parquet",
    )
    return root


def _write_tsv(path: Path, header: str, rows: list[tuple], encoding: str = "utf-8") -> None:
    lines = [header, *("\t".join(str(v) for v in row) for row in rows)]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def write_lastfm(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _write_tsv(
        root / "artists.dat",
        "id\tname\turl\tpictureURL",
        [
            (1, "MALICE MIZER", "http://a", "http://p"),
            (2, 'Björk "live"', "http://b", "http://q"),
            (3, "C", "u", "p"),
        ],
    )
    _write_tsv(root / "user_artists.dat", "userID\tartistID\tweight", [(2, 1, 500), (2, 2, 40), (3, 3, 7)])
    _write_tsv(root / "user_friends.dat", "userID\tfriendID", [(2, 3), (3, 2), (3, 2), (4, 4)])
    _write_tsv(
        root / "user_taggedartists.dat",
        "userID\tartistID\ttagID\tday\tmonth\tyear",
        [
            (2, 1, 7, 1, 4, 2009),  # two tags the same day: one like
            (2, 1, 8, 1, 4, 2009),
            (2, 2, 8, 1, 5, 2009),
            (3, 1, 7, 1, 6, 2010),  # no play count: value 1
            (4, 2, 7, 1, 1, 1956),  # bogus year: dropped
        ],
    )
    _write_tsv(root / "tags.dat", "tagID\ttagValue", [(7, "rock"), (8, "électro")], encoding="latin-1")
    return root


def write_higgs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    t = 1_341_100_800  # 2012-07-01 00:00 UTC
    lines = [
        f"5 9 {t + 100} RT",
        f"6 9 {t + 50} MT",  # same author, same day: same post; earliest event = created_at
        f"6 9 {t + 50} RE",
        f"7 8 {t + 60} RT",
        f"5 9 {t + DAY + 10} RT",  # next day: another post
        f"5 9 {t + 100} RT",  # exact duplicate
    ]
    with gzip.open(root / "higgs-activity_time.txt.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    return root


def write_movielens(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    ratings = [(1, 1, 5, 880000000), (1, 2, 1, 880000100), (2, 1, 3, 880000050), (2, 2, 4, 880000200),
               (3, 1, 2, 879999000)]  # fmt: skip
    (root / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings))
    g1 = ["0"] * 19
    g1[3] = g1[5] = "1"  # Animation, Comedy → first set is 3
    g2 = ["0"] * 19
    g3 = ["0"] * 19
    g3[18] = "1"
    items = [
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/x|{'|'.join(g1)}",
        f'2|Café "Noir" (1996)|01-Jan-1996||http://us.imdb.com/y|{"|".join(g2)}',
        f"3|Unrated (1997)|01-Jan-1997||http://us.imdb.com/z|{'|'.join(g3)}",
    ]
    (root / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    return root


# -- minirecsys -----------------------------------------------------------------------------------


def test_minirecsys_mapping(tmp_path: Path) -> None:
    ds = import_minirecsys(write_minirecsys(tmp_path / "mini"))
    check_invariants(ds)
    m = ds.manifest
    assert m.source == "minirecsys" and m.generator == "foryou.import.minirecsys 0.1.0"
    assert m.positives_only is True
    assert m.counts == {"users": 3, "posts": 3, "follows": 3, "engagements": 4, "impressions": 0}
    # leaks and the source's split never reach our tables
    for table in ds.tables.values():
        for col in ("engagement_prob", "quality_score", "split", "follow_weight"):
            assert col not in table.column_names
    assert _rows(ds.engagements, "user_id", "post_id", "kind", "created_at", "value") == [
        (1, 11, "reply", T0 + 5 * DAY, 1.0),
        (2, 10, "like", T0 + 100, 1.0),
        (3, 10, "click", T0 + 300, 1.0),
        (3, 10, "repost", T0 + 200, 1.0),
    ]
    notes = " | ".join(m.notes)
    assert "1 interaction of unmappable types dropped (bookmark: 1)" in notes
    assert "1 exact duplicate engagement" in notes
    assert "1 self-follow and 1 duplicate dropped" in notes
    assert _rows(ds.follows, "src_id", "dst_id", "created_at") == [
        (1, 2, T0 + 100),
        (2, 3, T0 + 100),
        (3, 1, T0 + 100),
    ]
    users = dict(zip(ds.users["user_id"].to_pylist(), ds.users["created_at"].to_pylist(), strict=True))
    assert users == {1: T0 + 100 - 10 * DAY, 2: T0 + 100 - 100 * DAY, 3: T0 + 100 - 1000 * DAY}
    assert set(ds.users["kind"].to_pylist()) == {"person"}
    posts = {r["post_id"]: r for r in ds.posts.to_pylist()}
    last = T0 + 5 * DAY
    assert posts[10]["created_at"] == T0 + 100  # first interaction precedes last − hours_old
    assert posts[11]["created_at"] == last - 2 * 3600
    assert posts[12]["created_at"] == last - 3 * 3600  # bookmark was dropped: no engagement on it
    assert [posts[i]["topic"] for i in (10, 11, 12)] == [2, 0, 1]  # sorted: art, news, tech
    assert m.config["topics"] == ["art", "news", "tech"]
    assert (posts[10]["is_nsfw"], posts[11]["is_nsfw"], posts[10]["is_toxic"], posts[11]["is_toxic"]) == (
        True,
        False,
        False,
        True,
    )
    assert (posts[10]["has_media"], posts[10]["has_link"], posts[11]["has_link"]) == (True, False, True)
    assert [posts[i]["length"] for i in (10, 11, 12)] == [100, 50, 7]
    assert all(p["kind"] == "original" and p["parent_id"] is None for p in posts.values())
    assert not any(p["is_spam"] or p["is_misinfo"] for p in posts.values())


def test_minirecsys_missing_column(tmp_path: Path) -> None:
    root = write_minirecsys(tmp_path / "mini")
    pq.write_table(pa.table({"user_id": [1]}), root / "users.parquet")
    with pytest.raises(DatasetError, match=r"account_age_days not found"):
        import_minirecsys(root)


# -- lastfm ---------------------------------------------------------------------------------------


def test_lastfm_mapping(tmp_path: Path) -> None:
    ds = import_lastfm(write_lastfm(tmp_path / "lastfm"))
    check_invariants(ds)
    m = ds.manifest
    assert m.positives_only is True and m.source == "lastfm"
    offset = 10  # largest listener id 4 → next power of ten
    assert m.config["catalog_offset"] == offset
    users = {r["user_id"]: r for r in ds.users.to_pylist()}
    assert sorted(users) == [2, 3, 4, 11, 12, 13]
    assert {u["kind"] for i, u in users.items() if i < offset} == {"person"}
    assert {u["kind"] for i, u in users.items() if i > offset} == {"catalog"}
    assert users[12]["handle"] == 'Björk "live"'
    apr, may, jun = _utc(2009, 4, 1), _utc(2009, 5, 1), _utc(2010, 6, 1)
    assert _rows(ds.engagements, "user_id", "post_id", "kind", "created_at", "value") == [
        (2, 1, "like", apr, 500.0),
        (2, 2, "like", may, 40.0),
        (3, 1, "like", jun, 1.0),
    ]
    posts = {r["post_id"]: r for r in ds.posts.to_pylist()}
    assert {p: r["author_id"] for p, r in posts.items()} == {1: 11, 2: 12, 3: 13}
    assert posts[1]["created_at"] == apr and posts[2]["created_at"] == may
    assert posts[3]["created_at"] == apr  # never tagged: the dataset start
    assert users[11]["created_at"] == apr and users[12]["created_at"] == may
    # topics: tag 7 (2 uses after the bogus row is dropped) ties tag 8 (2 uses): lower id first
    assert m.config["topics"] == ["rock", "électro"]
    assert (posts[1]["topic"], posts[2]["topic"], posts[3]["topic"]) == (0, 1, -1)
    assert _rows(ds.follows, "src_id", "dst_id", "created_at") == [(2, 3, apr), (3, 2, apr)]
    notes = " | ".join(m.notes)
    # the bogus-year row is a bad row, shown with its line number (header = line 1), never silently dropped
    assert "user_taggedartists.dat: 1 bad row (line 6: date before 2005 or invalid '1/1/1956')" in notes
    assert "bogus years 1956" in notes
    assert "1 play-count pair (of 3) with no dated tag event" in notes and "0 of them were tagged only" in notes
    assert "1 self-follow and 1 duplicate dropped" in notes
    # listener 4 only tagged in 1956 and self-followed: exists, created at the dataset start
    assert users[4]["created_at"] == apr


# -- higgs ----------------------------------------------------------------------------------------


def test_higgs_mapping(tmp_path: Path) -> None:
    ds = import_higgs(write_higgs(tmp_path / "higgs"))
    check_invariants(ds)
    t = 1_341_100_800
    m = ds.manifest
    assert m.positives_only is True and m.source == "higgs"
    assert ds.follows.num_rows == 0
    assert sorted(ds.users["user_id"].to_pylist()) == [5, 6, 7, 8, 9]
    assert set(ds.users["created_at"].to_pylist()) == {t + 50}
    # posts: (9, day0) first at t+50, (8, day0) at t+60, (9, day1) at t+DAY+10
    assert _rows(ds.posts, "post_id", "author_id", "created_at") == [
        (1, 9, t + 50),
        (2, 8, t + 60),
        (3, 9, t + DAY + 10),
    ]
    assert set(ds.posts["topic"].to_pylist()) == {-1}
    assert _rows(ds.engagements, "user_id", "post_id", "kind", "created_at") == [
        (5, 1, "repost", t + 100),
        (5, 3, "repost", t + DAY + 10),
        (6, 1, "profile_click", t + 50),
        (6, 1, "reply", t + 50),
        (7, 2, "repost", t + 60),
    ]
    notes = " | ".join(m.notes)
    assert "1 exact duplicate engagement" in notes
    assert "training window only" in notes


# -- movielens ------------------------------------------------------------------------------------


def test_movielens_mapping(tmp_path: Path) -> None:
    ds = import_movielens(write_movielens(tmp_path / "ml"))
    check_invariants(ds)
    m = ds.manifest
    assert m.positives_only is False and m.source == "movielens"
    assert _kinds(ds) == {"click": 5, "like": 2, "not_interested": 2}
    eng = _rows(ds.engagements, "user_id", "post_id", "kind", "value")
    assert (1, 1, "like", 5.0) in eng and (2, 2, "like", 4.0) in eng
    assert (1, 2, "not_interested", 1.0) in eng and (3, 1, "not_interested", 2.0) in eng
    assert sorted(v for *_, k, v in eng if k == "click") == [1.0, 2.0, 3.0, 4.0, 5.0]
    offset = 10  # largest user id 3
    users = {r["user_id"]: r for r in ds.users.to_pylist()}
    assert sorted(users) == [1, 2, 3, 11, 12, 13]
    assert users[12]["handle"] == 'Café "Noir" (1996)' and users[12]["kind"] == "catalog"
    posts = {r["post_id"]: r for r in ds.posts.to_pylist()}
    assert {p: r["author_id"] for p, r in posts.items()} == {1: 1 + offset, 2: 2 + offset, 3: 3 + offset}
    assert (posts[1]["topic"], posts[2]["topic"], posts[3]["topic"]) == (3, -1, 18)
    assert posts[1]["created_at"] == 879999000 and posts[2]["created_at"] == 880000100
    assert posts[3]["created_at"] == 879999000  # never rated: the dataset start
    assert users[1]["created_at"] == 880000000 and users[3]["created_at"] == 879999000
    times = ds.engagements["created_at"].to_numpy()
    assert (np.diff(times) >= 0).all()  # sorted by time


# -- shared behaviour -----------------------------------------------------------------------------

WRITERS = {
    "minirecsys": write_minirecsys,
    "lastfm": write_lastfm,
    "higgs": write_higgs,
    "movielens": write_movielens,
}


def test_registry_and_mappings() -> None:
    assert set(IMPORTERS) == set(MAPPINGS) == set(WRITERS)
    for name, text in MAPPINGS.items():
        assert text.startswith(f"**{name}**") and "\n" not in text


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_missing_dir_raises(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match="not found"):
        IMPORTERS[name](tmp_path / "absent")


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_missing_file_raises(tmp_path: Path, name: str) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="not found") as info:
        IMPORTERS[name](tmp_path / "empty")
    assert str(tmp_path / "empty") in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_roundtrip_and_validator(tmp_path: Path, name: str) -> None:
    ds = IMPORTERS[name](WRITERS[name](tmp_path / "src"))
    out = ds.write(tmp_path / "out")
    back = Dataset.load(out, validate=False)
    assert back.manifest == ds.manifest
    for table in TABLES:
        assert back[table].equals(ds[table])
    assert validate_dir(out) == []
    pq.write_table(pa.concat_tables([ds.posts, ds.posts]), out / "posts.parquet")  # the check can fail:
    assert any(p.table == "posts" and p.count > 0 for p in validate_dir(out))  # duplicate post ids are caught


# -- the real datasets (when present) -------------------------------------------------------------

REAL = {
    "minirecsys": ("minirecsys", {"engagements": 25_756, "posts": 10_000}),
    "lastfm": ("lastfm_hetrec2011_2k", {"follows": 25_434}),
    "higgs": ("higgs_twitter", {"users": 304_691, "engagements": 563_069}),
    "movielens": ("movielens_100k", {"posts": 1_682}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_dataset(tmp_path: Path, name: str) -> None:
    folder, expected = REAL[name]
    src = SHARED / folder
    if not src.is_dir():
        pytest.skip(f"{src} not present")
    start = time.perf_counter()
    ds = IMPORTERS[name](src)
    assert time.perf_counter() - start < 30
    for table, count in expected.items():
        assert ds.manifest.counts[table] == count
    keys = list(TABLES["engagements"].key)
    assert ds.engagements.group_by(keys).aggregate([]).num_rows == ds.engagements.num_rows
    posts = ds.posts.select(["post_id", "created_at"]).rename_columns(["post_id", "post_time"])
    joined = ds.engagements.join(posts, keys="post_id")
    assert joined.num_rows == ds.engagements.num_rows
    assert pc.all(pc.greater_equal(joined["created_at"], joined["post_time"])).as_py()
    assert pc.all(pc.is_in(ds.posts["author_id"], value_set=ds.users["user_id"])).as_py()
    assert not pc.any(pc.equal(ds.follows["src_id"], ds.follows["dst_id"])).as_py()
    assert validate_dir(ds.write(tmp_path / name)) == []
