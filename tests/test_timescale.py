"""Defaults that fit the data: the manifest's learned time scale and the windows derived from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from foryou.config import ForYouConfig, apply_overrides, parse_overrides
from foryou.data.dataset import Dataset
from foryou.data.importers.interactions import import_interactions
from foryou.data.manifest import MANIFEST, read_manifest
from foryou.data.timescale import scale_of
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.windows import resolve_for, resolve_windows, small_catalog_note
from foryou.vocab import DAY

T0 = 1_600_000_000


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A catalog: 200 items engaged with by 80 users over a year (no --set anywhere)."""
    rng = np.random.default_rng(0)
    users, items, per_user = 80, 200, 12
    lines = ["user,item,time"]
    for u in range(users):
        for i in rng.choice(items, per_user, replace=False):
            lines.append(f"u{u},i{i},{T0 + int(rng.integers(0, 365 * DAY))}")
    root = tmp_path_factory.mktemp("catalog")
    (root / "events.csv").write_text("\n".join(lines) + "\n")
    import_interactions(root / "events.csv", root / "ds", user="user", item="item", time="time")
    return root / "ds"


def test_catalog_time_scale_is_learned(catalog_dir: Path) -> None:
    scale = read_manifest(catalog_dir).time_scale
    assert scale is not None and scale.kind == "catalog"
    assert scale.age_p90_hours > 30 * 24 and scale.age_p50_hours <= scale.age_p90_hours <= scale.age_p99_hours


def test_tiny_world_is_a_feed_with_exactly_the_default_windows(tiny_world_dir: Path) -> None:
    scale = read_manifest(tiny_world_dir).time_scale
    assert scale is not None and scale.kind == "feed"
    resolved = resolve_for(tiny_world_dir)
    assert resolved == ForYouConfig()
    assert resolved.timeline.sources.model_dump() == ForYouConfig().timeline.sources.model_dump()
    assert resolved.simclusters.half_life_hours == ForYouConfig().simclusters.half_life_hours


def test_catalog_gives_full_pages_with_zero_flags(catalog_dir: Path) -> None:
    engine = RecommendationEngine.open(catalog_dir, cache=False)
    try:
        page_size = engine.config.timeline.mixing.page_size
        src = engine.config.timeline.sources
        assert src.max_age_hours > 365 * 24 and src.trending_count_hours > 24
        assert engine.config.simclusters.half_life_hours > 8
        for user in (1, 2, 40):
            assert len(engine.recommend(user).items) == page_size
        note = engine.catalog_note()  # 200 posts < 10 pages of 35
        assert note is not None and note.startswith(f"note: only {engine.n_posts} posts can be served")
    finally:
        engine.close()


def test_fixed_windows_reproduce_the_empty_page(catalog_dir: Path) -> None:
    config = ForYouConfig.model_validate(parse_overrides(["timeline.sources.windows=fixed"]))
    engine = RecommendationEngine.open(catalog_dir, config, cache=False)
    try:
        assert engine.config.timeline.sources.max_age_hours == 48
        assert len(engine.recommend(1).items) < engine.config.timeline.mixing.page_size
    finally:
        engine.close()


def test_set_overrides_a_derived_window(catalog_dir: Path) -> None:
    config = ForYouConfig.model_validate(parse_overrides(["timeline.sources.trending_count_hours=100",
                                                          "simclusters.half_life_hours=3"]))
    resolved = resolve_for(catalog_dir, config)
    assert resolved.timeline.sources.trending_count_hours == 100
    assert resolved.simclusters.half_life_hours == 3
    assert resolved.timeline.sources.max_age_hours > 365 * 24  # what is not set is still derived
    # an override tree merged later keeps what is unset unset, and resolving twice changes nothing
    later = apply_overrides(config, {"weights": {"like": 2.0}})
    assert resolve_for(catalog_dir, later).timeline.sources.max_age_hours == resolved.timeline.sources.max_age_hours
    assert resolve_windows(resolved, read_manifest(catalog_dir).time_scale) == resolved


def test_an_older_manifest_without_time_scale_still_loads(catalog_dir: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    Dataset.load(catalog_dir).write(old)
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["time_scale"]
    (old / MANIFEST).write_text(json.dumps(manifest))
    assert read_manifest(old).time_scale is None
    assert resolve_for(old) == resolve_for(catalog_dir)


def test_scale_of_edge_cases() -> None:
    empty = np.empty(0, np.int64)
    assert scale_of(empty, empty, empty, empty).kind == "feed"
    ids, created = np.array([3, 1]), np.array([0, 0])
    hours = scale_of(ids, created, np.array([1, 3, 9]), np.array([3600, 7200, 5]))
    assert hours.engagements == 2 and hours.age_p99_hours <= 2 and hours.kind == "feed"


def test_small_catalog_note() -> None:
    assert small_catalog_note(350, 35, 48) is None
    note = small_catalog_note(1, 35, 48)
    assert note is not None and "1 post " in note and "max_age_hours = 48 h" in note and "\n" not in note


def test_cli_timeline_full_page_and_note(catalog_dir: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "foryou.cli", "timeline", str(catalog_dir), "u1"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={"FORYOU_LOG": str(tmp_path / "log.jsonl"), "COLUMNS": "200", "PATH": "/usr/bin:/bin",
                              "FORYOU_STATE_DIR": os.environ["FORYOU_STATE_DIR"],
                              "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    assert "35 posts" in out.stdout
    notes = [line for line in out.stdout.splitlines() if line.startswith("note: only 199 posts can be served")]
    assert len(notes) == 1
