"""`foryou bench interactions`: generate a large CSV of ratings (vectorised) and time `import_interactions`
on it in a child process of its own, so the peak RSS reported is the import's."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from foryou.bench.offline import machine, peak_rss_mb

TimeStyle = Literal["iso", "unix"]
START = 1_600_000_000  # 2020-09-13: events spread over the next year
SPAN = 365 * 86_400
IMPORT_OPTIONS: dict[str, Any] = {"user": "user_id", "item": "item_id", "time": "timestamp", "value": "rating",
                                  "positive_min": 4, "negative_max": 2}


def write_interactions_csv(path: Path, rows: int, users: int, items: int, seed: int = 0,
                           times: TimeStyle = "iso") -> Path:
    """A CSV of `rows` ratings: user_id ("u123", activity skewed), item_id ("i45", popularity Zipf-like),
    timestamp (ISO date-times or Unix seconds), rating 1-5 (mostly 3-5) — built column-wise, no Python loop."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    chunk = 2_000_000
    with pcsv.CSVWriter(path, pa.schema([("user_id", pa.string()), ("item_id", pa.string()),
                                         ("timestamp", pa.string()), ("rating", pa.int8())]),
                        write_options=pcsv.WriteOptions(quoting_style="none")) as writer:
        for lo in range(0, rows, chunk):
            n = min(chunk, rows - lo)
            user = np.minimum(rng.pareto(1.5, n) * users / 20, users - 1).astype(np.int64) + 1
            item = np.minimum(rng.zipf(1.3, n), items).astype(np.int64)
            t = START + rng.integers(0, SPAN, n)
            rating = rng.choice(np.arange(1, 6, dtype=np.int8), n, p=[0.06, 0.11, 0.27, 0.34, 0.22])
            when = (pc.strftime(pa.array(t * 1_000_000, pa.timestamp("us")), format="%Y-%m-%dT%H:%M:%S")
                    if times == "iso" else pa.array(t).cast(pa.string()))
            writer.write_table(pa.table({
                "user_id": pc.binary_join_element_wise("u", pa.array(user).cast(pa.string()), ""),
                "item_id": pc.binary_join_element_wise("i", pa.array(item).cast(pa.string()), ""),
                "timestamp": when, "rating": pa.array(rating)}))
    return path


def _import_in_child(csv: Path, out: Path) -> dict[str, Any]:
    """Run in a fresh process: import, write and validate, each timed; its own peak RSS."""
    from foryou.data.importers.interactions import import_interactions
    from foryou.data.validate import validate_dir

    t0 = time.perf_counter()
    result = import_interactions(csv, **IMPORT_OPTIONS)
    imported = time.perf_counter() - t0
    result.write(out)
    written = time.perf_counter() - t0
    problems = validate_dir(out)
    total = time.perf_counter() - t0
    return {"import_s": round(imported, 2), "write_s": round(written - imported, 2),
            "validate_s": round(total - written, 2), "seconds": round(total, 2), "peak_rss_mb": peak_rss_mb(),
            "valid": not problems, "rows_read": result.rows_read, "bad_rows": result.bad.count,
            "duplicates": result.duplicates, "counts": result.dataset.manifest.counts}


def bench_interactions(rows: int, users: int, items: int, seed: int = 0, times: TimeStyle = "iso",
                       keep: Path | None = None) -> dict[str, Any]:
    """Generate the CSV (timed), then `import_interactions` on it in a child process: wall seconds for import +
    write + validate (what `foryou import interactions` does), rows/s and the child's peak RSS. Everything is
    written to a temporary directory and removed, unless `keep` (then the CSV and dataset stay there)."""
    work = Path(tempfile.mkdtemp(prefix="foryou-bench-interactions-")) if keep is None else keep
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    try:
        t0 = time.perf_counter()
        csv = write_interactions_csv(work / "interactions.csv", rows, users, items, seed, times)
        generate_s = time.perf_counter() - t0
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            child = pool.submit(_import_in_child, csv, work / "dataset").result()
        size_mb = csv.stat().st_size / 2**20
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return {"bench": "interactions", "rows": rows, "users": users, "items": items, "times": times,
            "file_mb": round(size_mb, 1), "generate_s": round(generate_s, 2), **child,
            "rows_per_s": round(rows / child["seconds"]), "options": IMPORT_OPTIONS,
            "kept": str(keep) if keep is not None else None,
            "load_avg_1_5_15": {"before": [round(x, 2) for x in load_before],
                                "after": [round(x, 2) for x in os.getloadavg()]}, "machine": machine()}
