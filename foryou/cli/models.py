"""`foryou models list|show|promote|rollback`: the model registry of a dataset."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from foryou.cli.params import DatasetArg, dataset_dir
from foryou.cli.render import console, print_model_versions

if TYPE_CHECKING:
    from foryou.registry import ModelRegistry

models_app = typer.Typer(no_args_is_help=True, help="The model registry: list, show, promote, roll back.")
ModelName = Annotated[str, typer.Argument(help="model name")]


def _registry(dataset: Path) -> ModelRegistry:
    from foryou.training.pipeline import registry_for

    return registry_for(dataset_dir(dataset))


@models_app.command("list")
def models_list(dataset: DatasetArg) -> None:
    """Every model version with its headline metrics; * marks the promoted one, ! a damaged one."""
    versions = _registry(dataset).list()
    if not versions:
        console.print("no models yet: run [bold]foryou train DATASET[/]")
        return
    print_model_versions(dataset, versions)


@models_app.command("show")
def models_show(
    dataset: DatasetArg,
    name: ModelName,
    version: Annotated[int | None, typer.Option(help="version (default: promoted, else latest)")] = None,
) -> None:
    """One version's manifest: config, metrics, dataset fingerprint, code revision."""
    v = _registry(dataset).show(name, version)
    console.print_json(json.dumps(asdict(v), default=str))


@models_app.command("promote")
def models_promote(
    dataset: DatasetArg,
    name: ModelName,
    version: Annotated[int, typer.Argument(help="version to serve")],
) -> None:
    """Serve this version from now on (engines load it on their next open)."""
    v = _registry(dataset).promote(name, version)
    console.print(f"promoted {v.label}")


@models_app.command("rollback")
def models_rollback(dataset: DatasetArg, name: ModelName) -> None:
    """Go back to the previously promoted version."""
    v = _registry(dataset).rollback(name)
    console.print(f"rolled back to {v.label}")
