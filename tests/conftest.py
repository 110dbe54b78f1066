"""Shared fixtures. Tests write only under pytest's tmp dirs: each test runs in its own tmp dir
(so a default relative path such as `runs/logs/trace.jsonl` lands there, never in the working tree)
and the library's JSON-lines log goes to a tmp file (`FORYOU_LOG`, read when `foryou.logs` loads)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Models, snapshots and event stores of every dataset the tests make go under one root for the session,
# so a session fixture's trained models are found from any test's working directory (foryou.data.state).
os.environ["FORYOU_LOG"] = str(Path(tempfile.mkdtemp(prefix="foryou-tests-")) / "foryou.jsonl")
os.environ["FORYOU_STATE_DIR"] = str(Path(os.environ["FORYOU_LOG"]).parent / "state")

import pytest

from foryou.config import world_config
from foryou.data.world import World, generate_world

# The session's folder goes when the session ends (~0.5 GB a run: snapshots and models).
atexit.register(shutil.rmtree, Path(os.environ["FORYOU_LOG"]).parent, ignore_errors=True)


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_world() -> World:
    return generate_world(world_config("tiny"), seed=1, preset="tiny")


@pytest.fixture(scope="session")
def tiny_world_dir(tiny_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("worlds") / "tiny"
    tiny_world.write(out)
    return out


@pytest.fixture(scope="session")
def foryou_cli(tmp_path_factory):
    """Runs the CLI in a pytest tmp dir only: its cwd and its log (FORYOU_LOG) are written there."""
    base = tmp_path_factory.getbasetemp().resolve()

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        assert Path(cwd).resolve().is_relative_to(base), f"{cwd}: tests write only under {base}"
        return _foryou(*args, cwd=Path(cwd))

    return run


def _foryou(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Use the `foryou_cli` fixture, which keeps cwd (and so the log) inside pytest's tmp dir."""
    return subprocess.run([sys.executable, "-m", "foryou.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={"FORYOU_LOG": str(cwd / "log.jsonl"), "COLUMNS": "160", "PATH": "/usr/bin:/bin",
                               "FORYOU_STATE_DIR": os.environ["FORYOU_STATE_DIR"]},
                          timeout=600)
