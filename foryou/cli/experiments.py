"""`foryou experiments create|list|stop|results`: A/B experiments whose arms are config overrides."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from foryou.cli.params import DatasetArg, bad, dataset_dir, user_errors, validation_message
from foryou.cli.render import console, print_created_experiment, print_experiment, print_experiments

experiments_app = typer.Typer(no_args_is_help=True, help="A/B experiments: create, list, results, stop.")
ExperimentName = Annotated[str, typer.Argument(help="experiment name")]


def _mistakes() -> AbstractContextManager[None]:
    """A definition that does not validate: one line (the store's own refusals are ForYouErrors already)."""
    return user_errors(ValidationError)


@experiments_app.command("create")
def experiments_create(
    dataset: Annotated[Path, typer.Argument(help="dataset directory (experiments live in DATASET/experiments/)")],
    name: ExperimentName,
    arm: Annotated[list[str], typer.Option(help="NAME or NAME:key=value;key=value (repeatable; the first is the "
                                                "control), e.g. 'ucb:timeline.exploration.strategy=ucb'")],
    weight: Annotated[list[float] | None, typer.Option(help="relative share per arm, in --arm order")] = None,
    traffic: Annotated[float, typer.Option(help="share of the layer's users in the experiment", min=0.0,
                                           max=1.0)] = 1.0,
    layer: Annotated[str, typer.Option(help="experiments in one layer never share a user")] = "default",
    salt: Annotated[str, typer.Option(help="assignment salt (default: the name)")] = "",
    primary: Annotated[str, typer.Option(help="utility | engagement_rate | negative_rate | session_depth")] = "utility",
    description: Annotated[str, typer.Option(help="free text")] = "",
) -> None:
    """Define an experiment: arms are config overrides (exploration, weights, diversity ...)."""
    from foryou.experiments import Arm, create_experiment

    weights = weight or [1.0] * len(arm)
    if len(weights) != len(arm):
        raise bad("--weight", f"{len(weights)} --weight value(s) for {len(arm)} --arm(s)")
    dataset_dir(dataset)
    arms = []
    for spec, w in zip(arm, weights, strict=True):
        try:
            arms.append(Arm.parse(spec, w))
        except ValidationError as exc:
            raise bad("--arm", f"{spec!r}: {validation_message(exc)}") from None
        except ValueError as exc:  # not key=value (parse_overrides)
            raise bad("--arm", f"{spec!r}: {exc}") from None
    with _mistakes():
        exp = create_experiment(dataset, {
            "name": name, "description": description, "salt": salt, "layer": layer, "traffic": traffic,
            "primary_metric": primary, "arms": arms})
    print_created_experiment(exp)


@experiments_app.command("list")
def experiments_list(dataset: DatasetArg) -> None:
    """Every experiment with its layer, traffic, arms and status."""
    from foryou.experiments import list_experiments

    with _mistakes():
        exps = list_experiments(dataset_dir(dataset))
    if not exps:
        console.print("no experiments yet: [bold]foryou experiments create DATASET NAME --arm control --arm ...[/]")
        return
    print_experiments(dataset, exps)


@experiments_app.command("stop")
def experiments_stop(dataset: DatasetArg, name: ExperimentName) -> None:
    """Stop assigning users (results stay readable)."""
    from foryou.experiments import ExperimentStore

    with _mistakes():
        ExperimentStore(dataset_dir(dataset)).set_status(name, "stopped")
    console.print(f"stopped {name}")


@experiments_app.command("results")
def experiments_results(
    dataset: DatasetArg,
    name: ExperimentName,
    log_path: Annotated[Path | None, typer.Option("--log", help="an experiment log (a simulation's "
                                                  "OUT/experiment_log.sqlite); default: the live log")] = None,
) -> None:
    """Per-arm metrics, Welch / z tests, 95 % intervals, lift, SRM and MDE."""
    from foryou.experiments import get_experiment_results

    with _mistakes():
        results = get_experiment_results(dataset_dir(dataset), name, log_path)
    print_experiment(results)
