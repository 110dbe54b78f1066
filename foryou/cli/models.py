"""`foryou models list|show|promote|rollback`: the model registry of a dataset."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from foryou.cli.params import DatasetArg, StateOption, dataset_dir
from foryou.cli.render import console, print_model_versions

if TYPE_CHECKING:
    from foryou.registry import ModelRegistry

models_app = typer.Typer(no_args_is_help=True, help="The model registry: list, show, promote, roll back.")
ModelName = Annotated[str, typer.Argument(help="model name")]
LIGHT_SIDES = ("light_ranker_in_network", "light_ranker_out_of_network")


def _registry(dataset: Path, state: Path | None = None) -> ModelRegistry:
    from foryou.training.pipeline import registry_for

    return registry_for(dataset_dir(dataset), state)


@models_app.command("list")
def models_list(dataset: DatasetArg, state_dir: StateOption = None) -> None:
    """Every model version with its headline metrics; * marks the promoted one, ! a damaged one."""
    versions = _registry(dataset, state_dir).list()
    if not versions:
        console.print("no models yet: run [bold]foryou train DATASET[/]")
        return
    print_model_versions(dataset, versions)


@models_app.command("show")
def models_show(
    dataset: DatasetArg,
    name: ModelName,
    version: Annotated[int | None, typer.Option(help="version (default: promoted, else latest)")] = None,
    state_dir: StateOption = None,
) -> None:
    """One version's manifest: config, metrics, dataset fingerprint, code revision."""
    v = _registry(dataset, state_dir).show(name, version)
    console.print_json(json.dumps(asdict(v), default=str))


@models_app.command("promote")
def models_promote(
    dataset: DatasetArg,
    name: ModelName,
    version: Annotated[int, typer.Argument(help="version to serve")],
    state_dir: StateOption = None,
) -> None:
    """Serve this version from now on (a running `foryou serve` within a second, other engines on their next
    open). `light_ranker`: each side
    (light_ranker_in_network, light_ranker_out_of_network) that has this version."""
    reg = _registry(dataset, state_dir)
    names = _names(reg, name)
    if len(names) > 1:  # both sides: those that have this version (a side may have been skipped)
        names = [n for n in names if any(v.version == version for v in reg.list() if v.name == n)] or names[:1]
    for n in names:
        console.print(f"promoted {reg.promote(n, version).label}")


@models_app.command("rollback")
def models_rollback(dataset: DatasetArg, name: ModelName, state_dir: StateOption = None) -> None:
    """Go back to the previously promoted version (`light_ranker`: on each side)."""
    reg = _registry(dataset, state_dir)
    for n in _names(reg, name):
        console.print(f"rolled back to {reg.rollback(n).label}")


def _names(reg: ModelRegistry, name: str) -> list[str]:
    """`light_ranker` — what `foryou train --only` calls the pair — means each side the registry holds."""
    if name == "light_ranker" and name not in reg.names():
        return [n for n in LIGHT_SIDES if n in reg.names()] or [name]
    return [name]
