"""A/B experiments: definitions, deterministic layered assignment, exposure logs and analysis.

    from foryou.experiments import create_experiment, get_experiment_results
    create_experiment("runs/default", {"name": "explore", "arms": [
        {"name": "control"}, {"name": "ucb", "overrides": {"timeline": {"exploration": {"strategy": "ucb"}}}}]})
    get_experiment_results("runs/default", "explore")   # per-arm metrics, tests, SRM, MDE
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foryou.config import EngagementWeights
from foryou.experiments.analysis import analyse, user_table
from foryou.experiments.assignment import assign
from foryou.experiments.definition import Arm, Experiment
from foryou.experiments.runtime import ActiveExperiments
from foryou.experiments.store import ExperimentError, ExperimentLog, ExperimentStore

__all__ = ["ActiveExperiments", "Arm", "Experiment", "ExperimentError", "ExperimentLog", "ExperimentStore",
           "assign", "create_experiment", "get_experiment_results", "list_experiments"]


def create_experiment(dataset_dir: str | Path, config: dict[str, Any] | Experiment,
                      state: str | Path | None = None) -> Experiment:
    """Validate and store an experiment (placed in its layer) in the dataset's state directory (`state`:
    `--state-dir`); returns it as stored."""
    experiment = config if isinstance(config, Experiment) else Experiment.model_validate(config)
    return ExperimentStore(dataset_dir, state).create(experiment)


def list_experiments(dataset_dir: str | Path, state: str | Path | None = None) -> list[Experiment]:
    return ExperimentStore(dataset_dir, state).list()


def get_experiment_results(dataset_dir: str | Path, name: str, log_path: str | Path | None = None,
                           weights: EngagementWeights | None = None, state: str | Path | None = None) -> dict[str, Any]:
    """Per-arm metrics with Welch / z tests, intervals, lift, SRM and MDE, from the experiment log
    (the dataset's live log by default; a simulation's log with `log_path`)."""
    store = ExperimentStore(dataset_dir, state)
    experiment = store.get(name)
    path = Path(log_path) if log_path else store.log_path
    if not path.exists():
        raise ExperimentError(f"{path}: no experiment log yet (serve or simulate first)")
    log = ExperimentLog(path)
    try:
        return analyse(experiment, user_table(log, experiment, weights))
    finally:
        log.close()
