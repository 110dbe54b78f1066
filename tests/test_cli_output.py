"""What the CLI prints off a terminal and in a narrow one, and where its files go."""

from __future__ import annotations

import shutil

import torch
from test_cli import PROGRESS, REPO, foryou

from foryou.data.state import models_dir, state_dir
from foryou.training.pipeline import registry_for


def test_progress_off_a_terminal_is_one_plain_line_per_phase(tmp_path):
    """`./dev run > log`: each phase says when it starts (elapsed time), not 4 silent minutes."""
    r = foryou("world", "--preset", "tiny", "--out", "w", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines and all(PROGRESS.match(ln) for ln in lines), r.stderr
    phases = [PROGRESS.sub("", ln) for ln in lines]
    assert "impressions" in phases and "writing parquet" in phases and phases[-1] == "done", phases
    assert len(phases) == len(set(phases))  # one line per phase, however often it reports progress
    assert "━" not in r.stderr and "%" not in r.stderr  # no bars


def test_status_off_a_terminal_is_plain_lines(tmp_path, tiny_world_dir):
    r = foryou("timeline", str(tiny_world_dir), "7", "--n", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    phases = [PROGRESS.sub("", ln) for ln in r.stderr.splitlines()]
    assert phases == ["opening the serving index (built and snapshotted on first use)", "done"], r.stderr


def test_models_list_never_cuts_a_model_name_at_80_columns(tmp_path, tiny_world_dir):
    shutil.copytree(tiny_world_dir, tmp_path / "w", ignore=shutil.ignore_patterns(".serving", "models"))
    registry = registry_for(tmp_path / "w")
    names = ["safety_nsfw", "safety_toxic", "safety_spam", "safety_misinfo", "light_ranker_in_network",
             "light_ranker_out_of_network", "heavy_ranker"]
    for name in names:
        registry.register(name, {"w": torch.zeros(1)}, config={}, metrics={}, dataset_fingerprint="x",
                          schema="test", promote=True)
    r = foryou("models", "list", "w", cwd=tmp_path, columns=80)
    assert r.returncode == 0, r.stderr
    shown = r.stdout.split()  # each name whole, on one line
    for name in names:
        assert any(name in tok for tok in shown), (name, r.stdout)
    assert all(len(ln) <= 80 for ln in r.stdout.splitlines()), r.stdout


def test_cli_runs_write_nothing_into_the_working_tree(tmp_path):
    """The log (FORYOU_LOG) and the relative defaults (runs/...) land in the test's tmp dir."""
    repo_log = REPO / "log.jsonl"
    before = repo_log.stat().st_mtime_ns if repo_log.exists() else None
    had_runs = (REPO / "runs").exists()
    r = foryou("world", "--preset", "tiny", "--out", "runs/w", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert '"event": "world built"' in (tmp_path / "log.jsonl").read_text()
    assert (tmp_path / "runs" / "w" / "manifest.json").exists()
    assert (repo_log.stat().st_mtime_ns if repo_log.exists() else None) == before
    assert (REPO / "runs").exists() == had_runs


def test_models_list_spells_out_a_damaged_version(tmp_path, tiny_world_dir):
    """Relies on ModelVersion.status from the registry (foryou/registry.py)."""
    shutil.copytree(tiny_world_dir, tmp_path / "w", ignore=shutil.ignore_patterns(".serving", "models"))
    registry = registry_for(tmp_path / "w")
    for name in ("safety_spam", "heavy_ranker"):
        registry.register(name, {"w": torch.zeros(1)}, config={}, metrics={}, dataset_fingerprint="x",
                          schema="test", promote=True)
    (models_dir(state_dir(tmp_path / "w")) / "safety_spam" / "promoted.json").write_text("{not json")
    r = foryou("models", "list", "w", cwd=tmp_path, columns=80)
    assert r.returncode == 0, r.stderr
    rows = {ln.split()[1]: ln.split()[0] for ln in r.stdout.splitlines() if " v1 " in f"{ln} "}
    assert rows == {"safety_spam": "!", "heavy_ranker": "*"}, r.stdout
    assert "! safety_spam v1: corrupt:" in r.stdout and "promoted.json" in r.stdout
