"""The generic importer's optional files: items (`item_meta`), social edges (`edges`) and users
(`user_meta`), each read into a DuckDB table keyed by external id. Columns are found by conventional
names, or given per role. Nothing prints."""

from __future__ import annotations

from pathlib import Path

import duckdb

from foryou.data.importers.common import plural
from foryou.data.importers.sql import (
    file_columns,
    first_line,
    resolve_column,
    source_sql,
    sql_ident,
    sql_row,
    sql_text,
    time_sql,
)
from foryou.data.manifest import DatasetError

FLAGS = ("has_media", "has_link", "is_nsfw", "is_toxic", "is_spam", "is_misinfo")
CREATED = ("created_at", "created", "time", "timestamp", "date")
ITEM_ROLES: dict[str, tuple[str, ...]] = {
    "id": ("item_id", "item", "id"), "created": CREATED,
    "topic": ("topic", "category", "genre"), "author": ("author", "author_id", "owner", "owner_id", "creator"),
    "length": ("length", "text_length", "len"), "name": ("name", "title", "handle"),
    **{flag: (flag,) for flag in FLAGS},
}
SOCIAL_ROLES: dict[str, tuple[str, ...]] = {
    "src": ("src", "src_id", "source", "follower", "follower_id", "from"),
    "dst": ("dst", "dst_id", "target", "followee", "followed", "followed_id", "friend", "friend_id", "to"),
}
USER_ROLES: dict[str, tuple[str, ...]] = {
    "id": ("user_id", "user", "id"), "created": (*CREATED, "joined", "joined_at", "signup"),
    "handle": ("handle", "screen_name", "username", "name"),
}


def roles(cols: list[str], known: dict[str, tuple[str, ...]], given: dict[str, str], path: Path) -> dict[str, str]:
    """role → the file's column: as `given` (which must exist), else the first conventional name found."""
    unknown = set(given) - set(known)
    if unknown:
        raise DatasetError(f"{path}: unknown column role(s) {', '.join(sorted(unknown))}; "
                           f"roles: {', '.join(known)}")
    found = {role: resolve_column(cols, col, path, role) for role, col in given.items()}
    lower = {c.lower(): c for c in reversed(cols)}
    for role, names in known.items():
        hit = next((lower[n.lower()] for n in names
                    if n.lower() in lower and lower[n.lower()] not in found.values()), None)
        if role not in found and hit is not None:
            found[role] = hit
    return found


def verbatim(found: dict[str, str], role: str) -> str:
    """A display text column as written (not trimmed, unlike ids); empty → NULL."""
    return f"NULLIF(CAST({sql_ident(found[role])} AS VARCHAR), '')" if role in found else "NULL"


def no_items(con: duckdb.DuckDBPyConnection) -> list[str]:
    con.execute("CREATE TEMP TABLE item_meta AS SELECT NULL::VARCHAR AS id, NULL::BIGINT AS created, "
                "NULL::VARCHAR AS topic, NULL::VARCHAR AS author, 0::BIGINT AS length, NULL::VARCHAR AS name, "
                + ", ".join(f"false AS {f}" for f in FLAGS) + " WHERE false")
    return []


def read_items(con: duckdb.DuckDBPyConnection, path: Path, given: dict[str, str], item_col: str,
               time_format: str | None) -> list[str]:
    """Table `item_meta` (one row per item id, the first listed) from the items file."""
    cols = file_columns(con, path, "items")
    found = roles(cols, {**ITEM_ROLES, "id": (item_col, *ITEM_ROLES["id"])}, given, path)
    found["id"] = found.get("id") or resolve_column(cols, item_col, path, "the item id")

    def text(role: str) -> str:
        return sql_text(sql_ident(found[role])) if role in found else "NULL"

    flags = ", ".join(f"coalesce(TRY_CAST({text(f)} AS BOOLEAN), TRY_CAST({text(f)} AS DOUBLE) <> 0, false) AS {f}"
                      for f in FLAGS)
    try:
        con.execute(f"""CREATE TEMP TABLE item_meta AS SELECT {text('id')} AS id,
              {time_sql(text('created'), time_format)} AS created, {text('topic')} AS topic,
              {text('author')} AS author,
              coalesce(TRY_CAST(least(greatest(TRY_CAST({text('length')} AS DOUBLE), 0), 2147483647) AS BIGINT), 0)
                AS length, {verbatim(found, 'name')} AS name, {flags}
            FROM {source_sql(path, 'items')} WITH ORDINALITY WHERE {text('id')} IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY {text('id')} ORDER BY ordinality) = 1""")
    except duckdb.Error as exc:
        raise DatasetError(f"{path}: cannot read: {first_line(exc)}") from exc
    (n,) = sql_row(con, "SELECT count(*) FROM item_meta")
    used = ", ".join(f"{role} = {col!r}" for role, col in found.items())
    return [f"items file {path.name}: {plural(int(n), 'item')}; {used}"]


def read_social(con: duckdb.DuckDBPyConnection, path: Path | None, given: dict[str, str], mutual: bool) -> list[str]:
    """Table `edges` (src follows dst, external ids) from the social file; mutual → both directions."""
    if path is None:
        con.execute("CREATE TEMP TABLE edges (src VARCHAR, dst VARCHAR)")
        return []
    cols = file_columns(con, path, "social")
    found = roles(cols, SOCIAL_ROLES, given, path)
    rest = [c for c in cols if c not in found.values()]
    for role in ("src", "dst"):
        if role not in found and rest:
            found[role] = rest.pop(0)
    if len(found) < 2:
        raise DatasetError(f"{path}: need two columns (src, dst); the file has: {', '.join(cols)}")
    src, dst = sql_text(sql_ident(found["src"])), sql_text(sql_ident(found["dst"]))
    both = f" UNION ALL SELECT {dst}, {src} FROM {source_sql(path, 'social2')}" if mutual else ""
    try:
        con.execute(f"CREATE TEMP TABLE edges AS SELECT * FROM (SELECT {src} AS src, {dst} AS dst "
                    f"FROM {source_sql(path, 'social')}{both}) WHERE src IS NOT NULL AND dst IS NOT NULL")
    except duckdb.Error as exc:
        raise DatasetError(f"{path}: cannot read: {first_line(exc)}") from exc
    (n,) = sql_row(con, "SELECT count(*) FROM edges")
    how = "mutual: both directions" if mutual else "directed"
    return [f"social file {path.name}: {plural(int(n), 'edge')} ({how}), src = {found['src']!r}, "
            f"dst = {found['dst']!r}, dated at the dataset start"]


def read_users(con: duckdb.DuckDBPyConnection, path: Path | None, given: dict[str, str], user_col: str,
               time_format: str | None) -> list[str]:
    """Table `user_meta` (id, created, handle; one row per user id, the first listed) from the users file.
    A user listed there exists even without events; created = the earlier of the file's time and their
    first activity."""
    if path is None:
        con.execute("CREATE TEMP TABLE user_meta (id VARCHAR, created BIGINT, handle VARCHAR)")
        return []
    cols = file_columns(con, path, "users")
    found = roles(cols, {**USER_ROLES, "id": (user_col, *USER_ROLES["id"])}, given, path)
    if "id" not in found:
        raise DatasetError(f"{path}: no user id column ({user_col!r}, user_id, user or id); the file has: "
                           f"{', '.join(cols[:20])}")

    def text(role: str) -> str:
        return sql_text(sql_ident(found[role])) if role in found else "NULL"

    try:
        con.execute(f"""CREATE TEMP TABLE user_meta AS SELECT {text('id')} AS id,
              {time_sql(text('created'), time_format)} AS created, {verbatim(found, 'handle')} AS handle
            FROM {source_sql(path, 'users')} WITH ORDINALITY WHERE {text('id')} IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY {text('id')} ORDER BY ordinality) = 1""")
    except duckdb.Error as exc:
        raise DatasetError(f"{path}: cannot read: {first_line(exc)}") from exc
    (n, n_bad) = sql_row(con, "SELECT count(*), count(*) FILTER (WHERE created < 0) FROM user_meta")
    if n_bad:
        con.execute("UPDATE user_meta SET created = NULL WHERE created < 0")
    used = ", ".join(f"{role} = {col!r}" for role, col in found.items())
    return [f"users file {path.name}: {plural(int(n), 'user')}; {used}"
            + (f"; {plural(int(n_bad), 'time')} before 1970 ignored" if n_bad else "")]
