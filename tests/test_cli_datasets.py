"""Commands that write a dataset never replace one silently (one `error:` line, exit 1, data untouched,
unless --force), and quickstart's retraining after the data changed is a choice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_cli import assert_one_line_error, foryou
from test_importers import write_movielens

from foryou.cli.bench import bench_world
from foryou.cli.quickstart import train_unless_trained
from foryou.cli.train import TRAINABLE
from foryou.training.pipeline import MODELS, registry_for


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under `path` with its size and mtime: equal snapshots = untouched."""
    return {str(f.relative_to(path)): (f.stat().st_size, f.stat().st_mtime_ns) for f in path.rglob("*") if f.is_file()}


@pytest.fixture
def world_copy(tmp_path: Path, tiny_world_dir: Path) -> Path:
    """The tiny world (preset tiny, seed 1) at tmp_path/w."""
    shutil.copytree(tiny_world_dir, tmp_path / "w", ignore=shutil.ignore_patterns(".serving", "models"))
    return tmp_path / "w"


def test_quickstart_refuses_to_replace_a_different_dataset(tmp_path, world_copy):
    before = snapshot(world_copy)
    r = foryou("quickstart", "--preset", "tiny", "--seed", "0", "--out", "w", "--no-serve", cwd=tmp_path)
    assert_one_line_error(r, "--force")
    assert "the tiny world with seed 1" in r.stderr
    assert snapshot(world_copy) == before


def test_writing_commands_refuse_an_existing_dataset(tmp_path, world_copy):
    before = snapshot(world_copy)
    src = write_movielens(tmp_path / "ml")
    for args in (["world", "--preset", "tiny", "--out", "w"],
                 ["import", "movielens", str(src), "--out", "w"],
                 ["bench", "world", "--preset", "tiny", "--out", "w"]):
        assert_one_line_error(foryou(*args, cwd=tmp_path), "already holds a dataset; pass --force")
    assert snapshot(world_copy) == before
    r = foryou("import", "movielens", str(src), "--out", "w", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((world_copy / "manifest.json").read_text())["source"] == "movielens"


def test_a_folder_that_is_not_a_dataset_is_never_replaced_even_with_force(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("years of work")
    for args in (["world", "--preset", "tiny", "--out", "docs", "--force"],
                 ["quickstart", "--preset", "tiny", "--out", "docs", "--force", "--no-serve"]):
        assert_one_line_error(foryou(*args, cwd=tmp_path), "docs is not a dataset (no manifest.json)")
    assert (tmp_path / "docs" / "thesis.tex").read_text() == "years of work"


def test_simulate_refuses_to_replace_an_earlier_feedback_dataset(tmp_path, world_copy):
    (tmp_path / "sim").mkdir()
    shutil.copytree(world_copy, tmp_path / "sim" / "feedback")
    before = snapshot(tmp_path / "sim" / "feedback")
    r = foryou("simulate", "w", "--days", "1", "--users", "0.01", "--out", "sim", "--feedback", cwd=tmp_path)
    assert_one_line_error(r, "sim/feedback already holds a dataset; pass --force")
    assert snapshot(tmp_path / "sim" / "feedback") == before


def test_bench_world_defaults_to_small_and_leaves_no_world_behind(tmp_path):
    import inspect

    assert inspect.signature(bench_world).parameters["preset"].default == "small"
    r = foryou("bench", "world", "--help", cwd=tmp_path)
    assert "default world" in r.stdout and "[default: small]" in r.stdout
    r = foryou("bench", "world", "--preset", "tiny", "--json", "b.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "b.json").read_text())["preset"] == "tiny"
    assert not any(p.name != "logs" for p in (tmp_path / "runs").iterdir())  # the scratch world is gone


# -- retraining after the data changed is a choice ----------------------------------------------------


def _promote_fake_heavy_ranker(world: Path, fingerprint: str) -> None:
    registry_for(world).register("heavy_ranker", {"w": torch.zeros(1)}, config={}, metrics={},
                                 dataset_fingerprint=fingerprint, schema="test-fake", promote=True)


def test_quickstart_reuses_models_trained_before_the_data_changed(tmp_path, world_copy):
    """After `foryou compact` the fingerprint differs: quickstart says so, and does not retrain."""
    _promote_fake_heavy_ranker(world_copy, "fingerprint-before-compact")
    r = foryou("quickstart", "--preset", "tiny", "--seed", "1", "--out", "w", "--no-serve", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if "reusing trained models" in ln)
    assert "heavy_ranker v1" in line and "data changed" in line and "foryou train w" in line and "--retrain" in line
    assert [v.label for v in registry_for(world_copy).list()] == ["heavy_ranker v1"]  # nothing trained


def test_retrain_flag_and_the_reuse_decision(monkeypatch, tmp_path, world_copy):
    calls: list[Path] = []

    def fake_train_all(path, config=None, **kw):
        calls.append(Path(path))
        return {}

    monkeypatch.setattr("foryou.training.pipeline.train_all", fake_train_all)
    train_unless_trained(world_copy)
    assert calls == [world_copy]  # nothing trained: trains
    _promote_fake_heavy_ranker(world_copy, "old")
    train_unless_trained(world_copy)
    assert calls == [world_copy]  # trained on older data: reused
    train_unless_trained(world_copy, retrain=True)
    assert calls == [world_copy, world_copy]  # --retrain: trains
    r = foryou("quickstart", "--help", cwd=tmp_path)
    assert "--retrain" in r.stdout and "--force" in r.stdout


def test_train_only_lists_and_checks_every_model(tmp_path, world_copy):
    assert TRAINABLE == MODELS
    r = foryou("train", "--help", cwd=tmp_path, columns=200)
    assert all(name in r.stdout for name in MODELS), r.stdout
    r = foryou("train", "w", "--only", "safety_nsfw", cwd=tmp_path)
    assert_one_line_error(r, "unknown model 'safety_nsfw'; one of " + ", ".join(MODELS), code=2)


def test_simulation_settings_reach_the_run_through_set(tmp_path, world_copy):
    """`--set simulation.*` is the one tree's: an option left at its default does not override it."""
    r = foryou("simulate", "w", "--users", "0.01", "--out", "sim", "--no-new-posts",
               "--set", "simulation.days=1", "--set", "simulation.seed=3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "sim" / "results.json").read_text())
    assert saved["summary"]["days"] == 1 and saved["summary"]["seed"] == 3
    r = foryou("simulate", "w", "--users", "0.01", "--no-new-posts", "--set", "simulation.days=1",
               "--set", "simulation.seed=3", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "w" / "simulations" / "baseline-s3" / "results.json").exists()
