"""The generic importer's ids and schema tables: the DuckDB tables `good`, `item_meta`, `edges` and
`user_meta` → users, posts, engagements, follows (a `Mapped`) plus the external-id maps.

Ids: `keep` uses the external ids themselves (whole numbers 0 … 2^31−1), `number` numbers them from 1 in
order of first event (then by external id; ids without events last), `auto` keeps them when every one is
such a whole number (users and items decided apart). Nothing prints.
"""

from __future__ import annotations

from typing import Literal

import duckdb
import numpy as np
import pyarrow as pa

from foryou.data.importers.common import Mapped, catalog_offset, dedupe_follows, plural
from foryou.data.importers.sidefiles import FLAGS
from foryou.data.importers.sql import sql_row
from foryou.data.manifest import DatasetError
from foryou.vocab import NEGATIVE

NAME = "interactions"
VERSION = "0.2.0"
MAX_TOPICS = 100
MAX_KEPT_ID = 2**31 - 1
ID_FILES = {"users": "ids/users.parquet", "items": "ids/items.parquet"}
IdPolicy = Literal["auto", "keep", "number"]
_WHOLE = "regexp_full_match(ext, '0|[1-9][0-9]{0,9}') AND TRY_CAST(ext AS BIGINT) <= " + str(MAX_KEPT_ID)


def _number(con: duckdb.DuckDBPyConnection, table: str, sources: str, policy: IdPolicy, what: str) -> bool:
    """Table `table` (ext, id, first_t) over the union `sources` of (ext, time) rows; True when ids are kept."""
    con.execute(f"CREATE TEMP TABLE {table}_ext AS SELECT ext, min(first_t) AS first_t FROM ({sources}) GROUP BY ext")
    (n_other, example) = sql_row(con, f"SELECT count(*), min(ext) FROM {table}_ext WHERE NOT ({_WHOLE})")
    if policy == "keep" and n_other:
        raise DatasetError(f"--ids keep: {plural(int(n_other), what + ' id')} not a whole number "
                           f"0…{MAX_KEPT_ID:,} (e.g. {example!r})")
    keep = policy == "keep" or (policy == "auto" and not n_other)
    order = "CAST(ext AS BIGINT)" if keep else "row_number() OVER (ORDER BY first_t NULLS LAST, ext)"
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT ext, {order} AS id, first_t FROM {table}_ext")
    return keep


def _topics(con: duckdb.DuckDBPyConnection) -> tuple[list[str], bool]:
    """Table `topics` (category → topic id): categories that are all whole numbers −1 … MAX_TOPICS−1 are the
    topic ids themselves; else the MAX_TOPICS most frequent become 0 … (0 = most frequent)."""
    (n_other, n_any) = sql_row(con, f"""SELECT count(*) FILTER (WHERE NOT coalesce(TRY_CAST(topic AS INTEGER)
        BETWEEN -1 AND {MAX_TOPICS - 1} AND regexp_full_match(topic, '-1|0|[1-9][0-9]*'), false)),
        count(*) FROM item_meta WHERE topic IS NOT NULL""")
    if n_any and not n_other:
        con.execute("CREATE TEMP TABLE topics AS SELECT DISTINCT topic, CAST(topic AS INTEGER) AS tid "
                    "FROM item_meta WHERE topic IS NOT NULL")
        (top,) = sql_row(con, "SELECT max(tid) FROM topics")
        return [str(i) for i in range(int(top) + 1)], True
    con.execute(f"""CREATE TEMP TABLE topics AS SELECT topic, row_number() OVER (ORDER BY n DESC, topic) - 1 AS tid
        FROM (SELECT topic, count(*) AS n FROM item_meta WHERE topic IS NOT NULL GROUP BY topic)
        QUALIFY tid < {MAX_TOPICS}""")
    return [r[0] for r in con.execute("SELECT topic FROM topics ORDER BY tid").fetchall()], False


def build_tables(con: duckdb.DuckDBPyConnection, notes: list[str], ids: IdPolicy = "auto",
                 ) -> tuple[Mapped, pa.Table, pa.Table]:
    """The mapped tables plus the id maps (external_id → user_id, external_id → post_id)."""
    keep_users = _number(con, "uid", """SELECT u AS ext, t AS first_t FROM good
        UNION ALL SELECT author, NULL FROM item_meta WHERE author IS NOT NULL
        UNION ALL SELECT src, NULL FROM edges UNION ALL SELECT dst, NULL FROM edges
        UNION ALL SELECT id, NULL FROM user_meta""", ids, "user")
    keep_items = _number(con, "iid", "SELECT i AS ext, t AS first_t FROM good UNION ALL SELECT id, NULL FROM item_meta",
                         ids, "item")
    topic_names, kept_topics = _topics(con)
    (start, max_person) = sql_row(con, "SELECT (SELECT min(t) FROM good), (SELECT max(id) FROM uid)")
    offset = catalog_offset(int(max_person))
    eng = con.sql("""SELECT uu.id AS user_id, pp.id AS post_id, kind, t AS created_at, CAST(v AS FLOAT) AS value
        FROM good JOIN uid uu ON good.u = uu.ext JOIN iid pp ON good.i = pp.ext
        ORDER BY created_at, user_id, post_id, kind""").to_arrow_table()
    con.execute(f"""CREATE TEMP TABLE post AS SELECT p.id AS post_id, a.id AS author, p.ext,
            coalesce(least(m.created, p.first_t), {int(start)}) AS created_at, m.created > p.first_t AS moved,
            coalesce(CAST(tp.tid AS SMALLINT), -1) AS topic, coalesce(m.length, 0) AS length, m.name,
            {', '.join(f'coalesce(m.{f}, false) AS {f}' for f in FLAGS)}
        FROM iid p LEFT JOIN item_meta m ON m.id = p.ext LEFT JOIN uid a ON a.ext = m.author
        LEFT JOIN topics tp ON tp.topic = m.topic""")
    posts = con.sql(f"""SELECT post_id, coalesce(author, post_id + {offset}) AS author_id, created_at,
        'original' AS kind, NULL::BIGINT AS parent_id, topic, has_media, has_link, length, is_nsfw, is_toxic,
        is_spam, is_misinfo FROM post ORDER BY post_id""").to_arrow_table()
    # A person exists from the earliest of: the users file's time, their first event, their first post.
    users = con.sql(f"""SELECT u.id AS user_id, coalesce(m.handle, u.ext) AS handle, 'person' AS kind,
            coalesce(least(m.created, u.first_t, a.first_post), {int(start)}) AS created_at
        FROM uid u LEFT JOIN user_meta m ON m.id = u.ext
        LEFT JOIN (SELECT author, min(created_at) AS first_post FROM post GROUP BY author) a ON a.author = u.id
        UNION ALL SELECT post_id + {offset}, coalesce(name, ext), 'catalog', created_at FROM post
            WHERE author IS NULL ORDER BY user_id""").to_arrow_table()
    notes += _table_notes(con, offset, keep_users, keep_items, kept_topics)
    follows = _follows(con, int(start), notes)
    positives_only = not any(k in NEGATIVE for k in set(eng["kind"].to_pylist()))
    config = {"topics": topic_names, "catalog_offset": offset, "id_files": ID_FILES}
    user_ids = con.sql("SELECT ext AS external_id, id AS user_id FROM uid ORDER BY id").to_arrow_table()
    item_ids = con.sql("SELECT ext AS external_id, id AS post_id FROM iid ORDER BY id").to_arrow_table()
    return Mapped(NAME, VERSION, users, posts, eng, follows, positives_only=positives_only, notes=notes,
                  config=config), user_ids, item_ids


def _table_notes(con: duckdb.DuckDBPyConnection, offset: int, keep_users: bool, keep_items: bool,
                 kept_topics: bool) -> list[str]:
    row = sql_row(con, "SELECT count(*) FILTER (WHERE author IS NULL), count(*) FILTER (WHERE moved), "
                      "(SELECT count(DISTINCT topic) FROM item_meta) FROM post")
    n_catalog, n_moved, n_topics = (int(x) for x in row)
    how = {True: "the external ids themselves (whole numbers)",
           False: "numbered from 1 in order of first event"}
    notes = [f"external ids: {ID_FILES['users']} (external_id → user_id; user ids are {how[keep_users]}) and "
             f"{ID_FILES['items']} (external_id → post_id; post ids are {how[keep_items]})"]
    if n_catalog:
        notes.append(f"{plural(n_catalog, 'item')} without an author → catalog accounts: user_id = post_id + "
                     f"{offset:,} (handle = the item's name or external id)")
    if n_moved:
        notes.append(f"{plural(n_moved, 'item')} created after its first event: created at that event")
    if n_topics and kept_topics:
        notes.append(f"topics: the items' categories are whole numbers, kept as topic ids ({n_topics:,} distinct)")
    elif n_topics:
        kept = min(n_topics, MAX_TOPICS)
        notes.append(f"topics: the {kept:,} categories most frequent in the items file, 0 = most frequent"
                     + (f"; {n_topics - kept:,} rarer ones → -1" if n_topics > kept else ""))
    return notes


def _follows(con: duckdb.DuckDBPyConnection, start: int, notes: list[str]) -> pa.Table | None:
    edges = con.execute("SELECT s.id, d.id FROM edges JOIN uid s ON s.ext = edges.src "
                        "JOIN uid d ON d.ext = edges.dst").fetchnumpy()
    src, dst = list(edges.values())
    if not len(src):
        return None
    follows, n_self, n_dup = dedupe_follows(np.asarray(src), np.asarray(dst), start)
    if n_self or n_dup:
        notes.append(f"follows: {plural(n_self, 'self-follow')} and {plural(n_dup, 'duplicate edge')} dropped")
    return follows
