"""Summary statistics of a Dataset directory, from DuckDB SQL over its Parquet files (plain Python values)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from foryou.data.manifest import DatasetError, Manifest, read_manifest
from foryou.data.schema import TABLES
from foryou.data.validate import one_row
from foryou.vocab import DAY, ENGAGEMENT_KINDS, POST_KINDS, USER_KINDS

QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def dataset_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts, degree percentiles, activity span and CTR by engagement kind of the dataset at `path`.

    Out-degree percentiles are over persons, in-degree over all users; both count users with no edges.
    CTR of a kind is its engagements per impression (None without impressions).

    A missing or unreadable table raises DatasetError. The statistics read only the columns they need;
    `foryou data validate` (validate_dir) is what decodes and checks every byte.
    """
    path = Path(path)
    manifest = read_manifest(path)
    con = duckdb.connect()
    try:
        return _stats(con, path, manifest)
    except duckdb.Error as exc:  # e.g. a page that does not decompress
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{path}: unreadable Parquet data ({first}); run `foryou data validate {path}`") from exc
    finally:
        con.close()


def _stats(con: duckdb.DuckDBPyConnection, path: Path, manifest: Manifest) -> dict[str, Any]:
    con.execute("SET enable_progress_bar = false")  # no bar on the terminal of a long check
    for name in TABLES:
        file = path / f"{name}.parquet"
        if not file.exists():
            raise DatasetError(f"{path}: missing {file.name}")
        try:
            pq.read_metadata(file)  # a truncated file has no footer: say which file, not DuckDB's traceback
        except (OSError, pa.ArrowException) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DatasetError(f"{file}: unreadable Parquet file ({first})") from exc
        literal = str(file).replace("'", "''")
        con.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{literal}')")

    def scalar(sql: str) -> Any:
        return one_row(con, sql)[0]

    def by_kind(table: str, kinds: tuple[str, ...]) -> dict[str, Any]:
        counts = dict(con.execute(f'SELECT kind, count(*) FROM "{table}" GROUP BY kind').fetchall())
        return {"total": sum(counts.values()), "by_kind": {k: counts.pop(k, 0) for k in kinds} | counts}

    def degrees(edge: str, where: str) -> dict[str, Any]:
        qs = ", ".join(f"quantile_cont(d, {q})" for q in QUANTILES.values())
        row = one_row(
            con,
            f"SELECT {qs}, max(d) FROM (SELECT coalesce(e.n, 0) AS d FROM users u LEFT JOIN"
            f" (SELECT {edge} AS id, count(*) AS n FROM follows GROUP BY 1) e ON e.id = u.user_id {where})",
        )
        return dict(zip([*QUANTILES, "max"], [None if v is None else float(v) for v in row], strict=True))

    users = by_kind("users", USER_KINDS)
    posts = by_kind("posts", POST_KINDS)
    engagements = by_kind("engagements", ENGAGEMENT_KINDS)
    impressions = scalar("SELECT count(*) FROM impressions")
    lo, hi = one_row(
        con,
        "SELECT min(lo), max(hi) FROM (SELECT min(created_at) lo, max(created_at) hi FROM posts"
        " UNION ALL SELECT min(created_at), max(created_at) FROM engagements"
        " UNION ALL SELECT min(created_at), max(created_at) FROM impressions)",
    )
    stats = {
        "name": manifest.name,
        "source": manifest.source,
        "positives_only": manifest.positives_only,
        "signal": dict(manifest.signal),
        "users": users,
        "posts": posts,
        "follows": scalar("SELECT count(*) FROM follows"),
        "out_degree": degrees("src_id", "WHERE u.kind = 'person'"),
        "in_degree": degrees("dst_id", ""),
        "engagements": engagements,
        "engaged_users": scalar("SELECT count(DISTINCT user_id) FROM engagements"),
        "time_range": (lo, hi),
        "days": 0.0 if lo is None else (hi - lo) / DAY,
        "impressions": impressions,
        "sessions": scalar("SELECT count(DISTINCT session_id) FROM impressions"),
        "ctr": {k: n / impressions if impressions else None for k, n in engagements["by_kind"].items()},
    }
    return stats
