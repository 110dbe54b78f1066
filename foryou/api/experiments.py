"""A/B experiments for an agent platform: created in the dataset's state directory (where `foryou serve`
and `foryou experiments` read them), applied to the platform's next pages, analysed from its log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foryou.experiments import Experiment, ExperimentLog, ExperimentStore
from foryou.experiments.analysis import analyse, user_table
from foryou.experiments.store import ExperimentError


def create_experiment(dataset: Path, state: Path, config: dict[str, Any] | Experiment) -> Experiment:
    """Validate and store an experiment (running from the next page on); ExperimentError when the name is
    taken or the layer is full. `config`: an Experiment or its dict (name, arms with weights and
    config overrides, layer, metric ...); `arms` may also map each name to {weight, overrides} as over HTTP."""
    if not isinstance(config, Experiment) and isinstance(config.get("arms"), dict):
        config = {**config, "arms": [{"name": k, **v} for k, v in config["arms"].items()]}
    experiment = config if isinstance(config, Experiment) else Experiment.model_validate(config)
    return ExperimentStore(dataset, state).create(experiment)


def experiment_results(dataset: Path, state: Path, experiment_id: str) -> dict[str, Any]:
    """Per-arm analysis (exposures, users, metrics, Welch / z tests, SRM, MDE) from the live log."""
    store = ExperimentStore(dataset, state)
    experiment = store.get(experiment_id)
    if not store.log_path.exists():
        raise ExperimentError(f"{store.log_path}: no experiment log yet (serve pages first)")
    log = ExperimentLog(store.log_path)
    try:
        results = analyse(experiment, user_table(log, experiment))
        rows = log.query("SELECT arm, count(*), count(DISTINCT user_id), coalesce(sum(items), 0) FROM exposures "
                         "WHERE experiment = ? GROUP BY arm", (experiment.name,))
    finally:
        log.close()
    results["exposures"] = {arm: {"pages": int(n), "users": int(u), "posts": int(p)} for arm, n, u, p in rows}
    return results
