"""Importers: real or external datasets mapped onto the foryou schema (`foryou.data.schema`).

One function per source, each `(src: Path) -> Dataset`, registered in `IMPORTERS`. `MAPPINGS` holds one
Markdown paragraph per source describing exactly how it maps (the README includes it). The helpers
below are shared by the importers; everything is vectorised (pyarrow / numpy), nothing prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

from foryou.data.dataset import Dataset, DatasetError

# -- shared helpers ------------------------------------------------------------------------------


def require_dir(src: str | Path, what: str) -> Path:
    """`src` as a Path; DatasetError when it is not an existing directory."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(f"{src}: {what} source directory not found")
    return src


def require_file(src: Path, name: str, what: str) -> Path:
    """`src / name`; DatasetError when the file is missing."""
    path = src / name
    if not path.is_file():
        raise DatasetError(f"{path}: expected {what} file {name} not found")
    return path


def read_delimited(
    path: Path,
    columns: dict[str, pa.DataType | None],
    delimiter: str,
    header: bool,
    encoding: str = "utf8",
) -> pa.Table:
    """Read a delimited text file (gzip by extension) into typed columns.

    With `header`, the file's header must name the `columns`; without, `columns` name every field in
    order. Columns typed `None` are skipped. Quoting is off: these formats never quote, and titles
    contain stray quote characters.
    """
    wanted = {name: typ for name, typ in columns.items() if typ is not None}
    read = pv.ReadOptions(encoding=encoding, column_names=None if header else list(columns))
    convert = pv.ConvertOptions(column_types=wanted, include_columns=list(wanted))
    try:
        return pv.read_csv(
            path,
            read_options=read,
            parse_options=pv.ParseOptions(delimiter=delimiter, quote_char=False),
            convert_options=convert,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{path}: cannot parse: {first}") from exc


def column(table: pa.Table, col: str, dtype: type = np.int64) -> np.ndarray:
    """A table column as a numpy array of `dtype` (ids default to int64)."""
    return table[col].to_numpy().astype(dtype, copy=False)


def catalog_offset(max_person_id: int) -> int:
    """Catalog account ids = item id + this: the next power of ten above every person id."""
    return 10 ** max(1, math.ceil(math.log10(max(int(max_person_id), 0) + 1)))


def handles(prefix: str, ids: np.ndarray) -> pa.Array:
    """Display handles like `user42` (vectorised)."""
    return pc.binary_join_element_wise(prefix, pa.array(ids, pa.int64()).cast(pa.string()), "")


def first_times(ids: np.ndarray, event_ids: np.ndarray, event_times: np.ndarray, default: int) -> np.ndarray:
    """Per id (in `ids`, unique) the earliest event time, `default` where it has none."""
    out = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    if len(event_ids):
        order = np.argsort(ids, kind="stable")
        pos = order[np.searchsorted(ids, event_ids, sorter=order)]
        np.minimum.at(out, pos, np.asarray(event_times, dtype=np.int64))
    out[out == np.iinfo(np.int64).max] = default
    return out


def users_table(ids: np.ndarray, handle: pa.Array, kind: str, created_at: np.ndarray) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "user_id": pa.array(ids, pa.int64()),
            "handle": handle,
            "kind": pa.array(np.full(n, kind, dtype=object), pa.string()),
            "created_at": pa.array(created_at, pa.int64()),
        }
    )


def original_posts(
    post_id: np.ndarray,
    author_id: np.ndarray,
    created_at: np.ndarray,
    topic: np.ndarray | None = None,
    *,
    has_media: np.ndarray | None = None,
    has_link: np.ndarray | None = None,
    length: np.ndarray | None = None,
    is_nsfw: np.ndarray | None = None,
    is_toxic: np.ndarray | None = None,
) -> pa.Table:
    """Original posts (no parent); absent attributes are unknown: topic -1, flags false, length 0."""
    n = len(post_id)
    false = np.zeros(n, dtype=bool)

    def flag(x: np.ndarray | None) -> pa.Array:
        return pa.array(false if x is None else np.asarray(x, dtype=bool), pa.bool_())

    return pa.table(
        {
            "post_id": pa.array(post_id, pa.int64()),
            "author_id": pa.array(author_id, pa.int64()),
            "created_at": pa.array(created_at, pa.int64()),
            "kind": pa.array(np.full(n, "original", dtype=object), pa.string()),
            "parent_id": pa.nulls(n, pa.int64()),
            "topic": pa.array(np.full(n, -1) if topic is None else topic, pa.int16()),
            "has_media": flag(has_media),
            "has_link": flag(has_link),
            "length": pa.array(np.zeros(n) if length is None else length, pa.int32()),
            "is_nsfw": flag(is_nsfw),
            "is_toxic": flag(is_toxic),
            "is_spam": flag(None),
            "is_misinfo": flag(None),
        }
    )


def engagements_table(
    user_id: np.ndarray, post_id: np.ndarray, kind: pa.Array | str, created_at: np.ndarray, value: np.ndarray
) -> pa.Table:
    n = len(user_id)
    if isinstance(kind, str):
        kind = pa.array(np.full(n, kind, dtype=object), pa.string())
    return pa.table(
        {
            "user_id": pa.array(user_id, pa.int64()),
            "post_id": pa.array(post_id, pa.int64()),
            "kind": kind,
            "created_at": pa.array(created_at, pa.int64()),
            "value": pa.array(value, pa.float32()),
        }
    )


def dedupe_engagements(table: pa.Table) -> tuple[pa.Table, int]:
    """Drop exact duplicate keys (user, post, kind, time), keeping the largest value; sort by time."""
    keys = ["user_id", "post_id", "kind", "created_at"]
    out = table.group_by(keys, use_threads=False).aggregate([("value", "max")])
    out = out.rename_columns([*keys, "value"]).select([*keys, "value"])
    out = out.sort_by(
        [
            ("created_at", "ascending"),
            ("user_id", "ascending"),
            ("post_id", "ascending"),
            ("kind", "ascending"),
        ]
    )
    return out, table.num_rows - out.num_rows


def dedupe_follows(src_id: np.ndarray, dst_id: np.ndarray, created_at: int) -> tuple[pa.Table, int, int]:
    """Follows without self-follows and duplicate edges: (table, self-follows dropped, duplicates dropped)."""
    src_id = np.asarray(src_id, dtype=np.int64)
    dst_id = np.asarray(dst_id, dtype=np.int64)
    keep = src_id != dst_id
    n_self = int((~keep).sum())
    pairs = (
        np.unique(np.stack([src_id[keep], dst_id[keep]], axis=1), axis=0) if keep.any() else np.empty((0, 2))
    )
    n_dup = int(keep.sum()) - len(pairs)
    table = pa.table(
        {
            "src_id": pa.array(pairs[:, 0], pa.int64()),
            "dst_id": pa.array(pairs[:, 1], pa.int64()),
            "created_at": pa.array(np.full(len(pairs), created_at, dtype=np.int64), pa.int64()),
        }
    )
    return table, n_self, n_dup


def count_self_engagements(
    post_id: np.ndarray, author_id: np.ndarray, eng_user: np.ndarray, eng_post: np.ndarray
) -> int:
    """How many engagements are by the author of the post engaged with."""
    if len(eng_post) == 0:
        return 0
    order = np.argsort(post_id, kind="stable")
    pos = np.searchsorted(post_id, eng_post, sorter=order)
    return int((np.asarray(author_id)[order][pos] == eng_user).sum())


def map_values(col: pa.ChunkedArray | pa.Array, mapping: dict[str, str]) -> pa.Array:
    """Map strings through `mapping`; unmapped values become null."""
    idx = pc.index_in(col, value_set=pa.array(list(mapping), pa.string()))
    return pc.take(pa.array(list(mapping.values()), pa.string()), idx)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def topic_names_note(names: Sequence[str]) -> str:
    return "topics: " + ", ".join(f"{i}={n}" for i, n in enumerate(names))


# -- registry ------------------------------------------------------------------------------------

from foryou.data.importers.higgs import import_higgs  # noqa: E402
from foryou.data.importers.lastfm import import_lastfm  # noqa: E402
from foryou.data.importers.minirecsys import import_minirecsys  # noqa: E402
from foryou.data.importers.movielens import import_movielens  # noqa: E402

IMPORTERS: dict[str, Callable[[Path], Dataset]] = {
    "minirecsys": import_minirecsys,
    "lastfm": import_lastfm,
    "higgs": import_higgs,
    "movielens": import_movielens,
}

MAPPINGS: dict[str, str] = {
    "minirecsys": (
        "**minirecsys** (Parquet `users`, `tweets`, `follows`, `interactions` of the mini-recsys mimic): "
        "`users` → users (`person`, handle `user<id>`, `created_at` = the dataset's first interaction time "
        "− `account_age_days`·86400, clipped at 0). `tweets` → original posts (`tweet_id`, `author_id`; "
        "`topic` = index of `category` in the sorted distinct categories; `has_media`, `has_link` as given; "
        "`length` = `text_length`; `is_nsfw` = `nsfw_score` ≥ 0.5, `is_toxic` = `toxicity_score` ≥ 0.5, "
        "spam/misinfo false; `created_at` = min(first interaction on the tweet, last interaction time − "
        "`hours_old`·3600), clipped at 0). `follows`: `follower_id` → `src_id`, `followed_id` → `dst_id`, "
        "`created_at` = the first interaction time (unknown); `follow_weight` dropped; self-follows and "
        "duplicates dropped. `interactions` → engagements (value 1) with `like`→like, `retweet`→repost, "
        "`reply`→reply, `click`→click (other types are dropped and counted in the notes); exact duplicate "
        "keys dropped. Dropped as leaks: `engagement_prob` (the generator's label probability) and "
        "`quality_score` (a generator latent); their `split` column is not kept (we split by time). "
        "Positives only, no impressions."
    ),
    "lastfm": (
        "**lastfm** (HetRec 2011 Last.fm 2k, tab-separated with headers, `tags.dat` Latin-1): listeners → "
        "users (`person`, ids kept). Each artist → one `catalog` account (id = artist id + offset, the next "
        "power of ten above the largest listener id, i.e. 10000) and one original post by it (`post_id` = "
        "artist id; `topic` = index of the artist's most frequent tag among the 30 most frequent tags of "
        "`user_taggedartists`, else −1; flags false, length 0). `user_friends` → follows as listed (both "
        "directions are listed), deduplicated, at the dataset start. Each `user_taggedartists` row dated "
        "before 2005 (bogus years) is dropped; the rest become `like` engagements at 00:00 UTC of "
        "day/month/year, one per (user, artist, date) however many tags, value = the user's play count of "
        "the artist from `user_artists` (1 when absent). Play-count pairs without a tag event have no date "
        "and are not imported as events (counted in the notes). A post (and its catalog account) is created "
        "at its first engagement, a listener at their first like or friendship (friendships are dated at the "
        "dataset start), else at the dataset start. Positives only, "
        "no impressions."
    ),
    "higgs": (
        "**higgs** (SNAP Higgs Twitter, `higgs-activity_time.txt.gz`: userA userB unix_time RT|MT|RE, "
        "userA acts on userB): every id seen → users (`person`, created at the dataset start). Tweets are "
        "not in the data, so each (userB, UTC day) that received activity becomes one synthetic original "
        "post by userB (topic −1, flags false, length 0), created at its earliest event, `post_id` "
        "numbered from 1 in (created_at, author) order. Events → engagements by userA on that post, value 1: "
        "RT → repost, RE → reply, MT (mention) → profile_click; exact duplicate keys dropped. No follows "
        "(the follower graph is not in this copy): any graph must be built from the training window only, "
        "to avoid leaks. Positives only, no impressions."
    ),
    "movielens": (
        "**movielens** (MovieLens 100K, `u.data` tab-separated user item rating time; `u.item` "
        "`|`-separated Latin-1): raters → users (`person`, ids kept, created at their first rating). Each "
        "movie → one `catalog` account (id = item id + 1000, the next power of ten above the largest user "
        "id, handle = title) and one original post (`post_id` = item id, `topic` = first genre flag set, "
        "0–18 in `u.genre` order, else −1; created at its first rating). Every rating → a `click` with "
        "value = rating; a rating ≥ 4 also → `like`, a rating ≤ 2 also → `not_interested` (same time and "
        "value). Explicit dislikes exist, so not positives-only; no impressions."
    ),
}

__all__ = [
    "IMPORTERS",
    "MAPPINGS",
    "import_higgs",
    "import_lastfm",
    "import_minirecsys",
    "import_movielens",
]
