"""`foryou data validate|stats`, `foryou import` (a real dataset onto the foryou schema) and `foryou compact`
(the service's event store folded into the dataset)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from foryou import logs
from foryou.cli.params import DatasetArg, UserError, bad, dataset_dir, refuse_to_replace
from foryou.cli.render import console, print_summary

data_app = typer.Typer(no_args_is_help=True, help="Inspect and check datasets.")
log = logging.getLogger("foryou.cli")


def show_stats(path: Path) -> None:
    from foryou.data.stats import dataset_stats

    print_summary(f"dataset {path}", dataset_stats(path))


@data_app.command("validate")
def data_validate(path: DatasetArg) -> None:
    """Check schema, types, ids, duplicates, time order and value ranges; list every problem."""
    from foryou.data.dataset import MANIFEST
    from foryou.data.validate import validate_dir

    if not (path / MANIFEST).exists() and not any(path.glob("*.parquet")):
        dataset_dir(path)  # no such directory, or not a dataset at all (rather than a list of what is missing)
    problems = validate_dir(path)
    if not problems:
        console.print(f"[green]valid[/] {path}")
        return
    for p in problems:
        console.print(f"[red]✗[/] {p}", highlight=False)
    raise UserError(f"{path}: {len(problems)} problem(s)")


@data_app.command("stats")
def data_stats(path: DatasetArg) -> None:
    """Summary table computed by DuckDB over the Parquet files (`data validate` checks every byte)."""
    show_stats(path)


def import_(
    source: Annotated[str, typer.Argument(help="minirecsys | lastfm | higgs | movielens")],
    src: Annotated[Path, typer.Argument(help="directory with the source's original files")],
    out: Annotated[Path, typer.Option(help="output dataset directory")],
    force: Annotated[bool, typer.Option(help="replace an existing dataset at --out")] = False,
) -> None:
    """Map a real dataset onto the foryou schema (see README, "Importers")."""
    from foryou.data.importers import IMPORTERS
    from foryou.data.validate import validate_dir

    if source not in IMPORTERS:
        raise bad("SOURCE", f"unknown source {source!r}; choose one of {', '.join(IMPORTERS)}")
    refuse_to_replace(out, force)
    with logs.Timer() as t:
        dataset = IMPORTERS[source](src)
        dataset.write(out)
    problems = validate_dir(out)
    log.info("imported", extra={"source": source, "src": str(src), "out": str(out),
                                "seconds": round(t.seconds, 3), "problems": len(problems)})
    console.print(f"[green]imported[/] {source} → {out} in {t.seconds:.1f} s")
    for note in dataset.manifest.notes:
        console.print(f"  note: {note}", highlight=False)
    if problems:
        raise UserError(f"{out}: imported but invalid: {problems[0]}")
    show_stats(out)


def compact(dataset: DatasetArg,
            store: Annotated[Path | None, typer.Option(help="the event store `foryou serve --store` used "
                                                       "(default DATASET/.service/events.sqlite)",
                                                       show_default=False)] = None) -> None:
    """Fold the service's event store into the dataset's Parquet tables (atomic) for the next
    `foryou train`. Stop the server first."""
    from foryou.service.compact import compact as run

    dataset_dir(dataset)
    result = run(dataset, store=store)  # a server still holding the dataset: ServerRunning, one line
    print_summary(f"compact {dataset}", result)
