"""Benchmarks behind `foryou bench ...`: each returns a JSON-able dict with machine facts."""

from __future__ import annotations

import os
import platform
import resource
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from foryou.config import world_config
from foryou.data.importers import IMPORTERS
from foryou.data.validate import validate_dir
from foryou.data.world import generate_world

# Where each importer finds its files under ../shared/data.
REAL_DATA = {"minirecsys": "minirecsys", "lastfm": "lastfm_hetrec2011_2k", "higgs": "higgs_twitter",
             "movielens": "movielens_100k"}


def machine() -> dict[str, Any]:
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "platform": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.machine()}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bench_world(preset: str, seed: int, out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    world = generate_world(world_config(preset), seed, preset=preset)
    generated = time.perf_counter() - t0
    world.write(out)
    total = time.perf_counter() - t0
    m = world.dataset.manifest
    return {"bench": "world", "preset": preset, "seed": seed, "generate_s": round(generated, 2),
            "generate_and_write_s": round(total, 2), "peak_rss_mb": peak_rss_mb(),
            "counts": m.counts, "signal": m.signal, "machine": machine()}


def bench_imports(data: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, folder in REAL_DATA.items():
        src = data / folder
        t0 = time.perf_counter()
        dataset = IMPORTERS[name](src)
        imported = time.perf_counter() - t0
        out = Path("runs/imports") / name
        dataset.write(out)
        problems = validate_dir(out)
        results[name] = {"import_s": round(imported, 2), "import_and_write_s": round(time.perf_counter() - t0, 2),
                         "valid": not problems, "counts": dataset.manifest.counts}
    return {"bench": "import", "datasets": results, "peak_rss_mb": peak_rss_mb(), "machine": machine()}
