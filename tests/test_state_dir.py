"""A dataset can live on read-only storage: `train`, `timeline`, `eval`, `serve` and experiments keep
their files (models, serving snapshots, event store, experiments) in the dataset's state directory
(foryou.data.state), never in the dataset directory; `--state-dir` puts them exactly where asked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from foryou.data.state import models_dir, state_dir

REPO = Path(__file__).resolve().parents[1]


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under `path` with its size and mtime: what "nothing was written" compares."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}


def _foryou(*args: str, cwd: Path, state_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "foryou.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={"FORYOU_LOG": str(cwd / "log.jsonl"), "COLUMNS": "160", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(REPO), "FORYOU_STATE_DIR": str(state_root)}, timeout=600)


def test_state_dir_is_keyed_by_the_dataset_path(tmp_path, monkeypatch):
    monkeypatch.setenv("FORYOU_STATE_DIR", str(tmp_path / "root"))
    a, b = tmp_path / "x" / "tiny", tmp_path / "y" / "tiny"
    assert state_dir(a) != state_dir(b) and state_dir(a).name.startswith("tiny-")
    assert state_dir(a) == state_dir(tmp_path / "x" / ".." / "x" / "tiny")  # the same dataset, however spelled
    assert state_dir(a).is_relative_to(tmp_path / "root")
    assert state_dir(a, tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.delenv("FORYOU_STATE_DIR")
    monkeypatch.chdir(tmp_path)
    assert state_dir(a).is_relative_to(tmp_path / "runs" / "state")


@pytest.mark.slow
def test_train_timeline_and_eval_never_write_into_the_dataset(tiny_world_dir, tmp_path):
    data = tmp_path / "w"
    shutil.copytree(tiny_world_dir, data)
    before = _tree(data)
    root = tmp_path / "state-root"
    train = _foryou("train", str(data), "--only", "heavy_ranker", "--set", "training.heavy_ranker.epochs=1",
                    cwd=tmp_path, state_root=root)
    assert train.returncode == 0, train.stderr
    user = "7"
    page = _foryou("timeline", str(data), user, cwd=tmp_path, state_root=root)
    assert page.returncode == 0, page.stderr
    report = _foryou("eval", str(data), "--report", str(tmp_path / "report"), "--users", "30",
                     "--baselines", "popularity", "--no-oracle", cwd=tmp_path, state_root=root)
    assert report.returncode == 0, report.stderr
    assert _tree(data) == before  # not one file added, removed or touched
    stored = list(root.iterdir())
    assert len(stored) == 1 and stored[0].name.startswith("w-")
    assert (models_dir(stored[0]) / "heavy_ranker").is_dir()  # the trained model, in the state directory


def test_state_dir_option_puts_the_models_where_asked(tiny_world_dir, tmp_path):
    data, mine = tmp_path / "w", tmp_path / "mine"
    shutil.copytree(tiny_world_dir, data)
    r = _foryou("train", str(data), "--only", "realgraph", "--state-dir", str(mine), cwd=tmp_path,
                state_root=tmp_path / "root")
    assert r.returncode == 0, r.stderr
    listing = _foryou("models", "list", str(data), "--state-dir", str(mine), cwd=tmp_path,
                      state_root=tmp_path / "root")
    assert listing.returncode == 0 and "realgraph v1" in listing.stdout, listing.stdout + listing.stderr
    assert (models_dir(mine) / "realgraph").is_dir() and not (tmp_path / "root").exists()
