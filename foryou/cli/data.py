"""`foryou data validate|stats|export`, `foryou import` (a real dataset onto the foryou schema) and `foryou compact`
(the service's event store folded into the dataset)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from foryou import logs
from foryou.cli.params import DatasetArg, UserError, bad, dataset_dir, refuse_to_replace
from foryou.cli.render import console, print_summary

data_app = typer.Typer(no_args_is_help=True, help="Inspect and check datasets.")
log = logging.getLogger("foryou.cli")


@data_app.command("export")
def data_export(path: DatasetArg,
                out_dir: Annotated[Path, typer.Argument(help="folder for interactions.csv, items.csv, social.csv, "
                                                             "users.csv")],
                reimport_to: Annotated[str, typer.Option(help="the dataset directory the printed command "
                                                              "re-imports into")] = "DATASET") -> None:
    """Write the dataset as flat CSV files with external ids, and print the `foryou import interactions`
    command that re-imports them into the same dataset (README, "Bring your own data")."""
    from foryou.data.importers.export import export_flat

    dataset_dir(path)
    with logs.Timer() as t:
        result = export_flat(path, out_dir, reimport_to)
    log.info("exported", extra={"dataset": str(path), "out": str(out_dir), "rows": result.rows,
                                "seconds": round(t.seconds, 3)})
    console.print(f"[green]exported[/] {path} → {out_dir} in {t.seconds:.1f} s: "
                  + ", ".join(f"{name} {n:,}" for name, n in result.rows.items()), highlight=False, soft_wrap=True)
    for line in result.lost:
        console.print(f"  note: {line}", highlight=False)
    console.print("re-import with:", highlight=False)
    console.print(result.command_line, highlight=False, soft_wrap=True)


def show_stats(path: Path) -> None:
    from foryou.data.stats import dataset_stats

    print_summary(f"dataset {path}", dataset_stats(path))


@data_app.command("validate")
def data_validate(path: DatasetArg) -> None:
    """Check schema, types, ids, duplicates, time order and value ranges; list every problem."""
    from foryou.data.manifest import MANIFEST
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


INTERACTIONS_DEFAULTS: dict[str, Any] = {"fixed_kind": "like", "neutral_kind": "click", "mutual": False,
                                         "on_bad_row": "error", "ids": "auto"}
Opt = typer.Option  # the options below apply to `foryou import interactions` only
Text = str | None
ColumnMap = Annotated[str | None, Opt(help="interactions: ROLE=COLUMN,... for the --items/--social/--users "
                                      "file (default: found by name)", show_default=False)]


def import_(
    source: Annotated[str, typer.Argument(help="minirecsys | lastfm | higgs | movielens | interactions")],
    src: Annotated[Path, typer.Argument(help="directory with the source's original files (interactions: "
                                              "a CSV / TSV / Parquet / JSON-lines file)")],
    out: Annotated[Path, typer.Option(help="output dataset directory")],
    force: Annotated[bool, typer.Option(help="replace an existing dataset at --out")] = False,
    user: Annotated[Text, Opt(help="interactions: the user id column")] = None,
    item: Annotated[Text, Opt(help="interactions: the item id column")] = None,
    time: Annotated[Text, Opt(help="interactions: the time column")] = None,
    kind: Annotated[Text, Opt(help="interactions: a column of engagement kinds (else --fixed-kind)")] = None,
    fixed_kind: Annotated[str, Opt(help="interactions: the kind of every event (or of a positive rating)")]
    = "like",
    kind_map: Annotated[Text, Opt(help="interactions: FROM=KIND,... for --kind values that are not "
                                       "engagement kinds (view=click,fav=like)")] = None,
    value: Annotated[Text, Opt(help="interactions: a strength or rating column (else value 1)")] = None,
    positive_min: Annotated[float | None, Opt(help="interactions: rating >= this → --fixed-kind")] = None,
    negative_max: Annotated[float | None, Opt(help="interactions: rating <= this → not_interested")] = None,
    neutral_kind: Annotated[str, Opt(help="interactions: the kind of ratings in between, or 'none' to "
                                          "leave them out")] = "click",
    time_format: Annotated[Text, Opt(help="interactions: s | ms | us | ns | iso | a strptime pattern "
                                          "(default: detected)")] = None,
    items: Annotated[Path | None, Opt(help="interactions: items file (id, created, topic, author, length, "
                                           "name, flags)")] = None,
    items_columns: ColumnMap = None,
    social: Annotated[Path | None, Opt(help="interactions: social edges file (src follows dst)")] = None,
    social_columns: ColumnMap = None,
    mutual: Annotated[bool, Opt(help="interactions: social edges go both ways")] = False,
    users: Annotated[Path | None, Opt(help="interactions: users file (id, created, handle); its users exist "
                                           "even without events")] = None,
    users_columns: ColumnMap = None,
    ids: Annotated[str, Opt(help="interactions: auto (keep whole-number ids, number the others) | keep | "
                                 "number")] = "auto",
    on_bad_row: Annotated[str, Opt(help="interactions: error | skip")] = "error",
) -> None:
    """Map a real dataset, or any file of interactions, onto the foryou schema (see README, "Importers" and
    "Bring your own data")."""
    given = {k: v for k, v in locals().items() if k not in ("source", "src", "out", "force")}
    from foryou.data.importers import IMPORTERS

    if source == "interactions":
        refuse_to_replace(out, force)
        import_interactions_file(src, out, **given)
        return
    if source not in IMPORTERS:
        raise bad("SOURCE", f"unknown source {source!r}; choose one of {', '.join([*IMPORTERS, 'interactions'])}")
    wrong = [k for k, v in given.items() if v != INTERACTIONS_DEFAULTS.get(k)]
    if wrong:
        raise bad(f"--{wrong[0].replace('_', '-')}", "only for `foryou import interactions`")
    refuse_to_replace(out, force)
    with logs.Timer() as t:
        dataset = IMPORTERS[source](src)
        dataset.write(out)
    finish_import(source, src, out, t.seconds, dataset.manifest.notes)
    show_stats(out)


def import_interactions_file(src: Path, out: Path, *, user: str | None, item: str | None, time: str | None,
                             kind_map: str | None, neutral_kind: str, items_columns: str | None,
                             social_columns: str | None, mutual: bool, on_bad_row: str, users_columns: str | None,
                             ids: str, **options: Any) -> None:
    """`foryou import interactions FILE --out DS --user COL --item COL --time COL [...]`."""
    from foryou.data.importers.interactions import import_interactions

    for flag, column in (("--user", user), ("--item", item), ("--time", time)):
        if not column:
            raise bad(flag, f"`foryou import interactions` needs {flag} COLUMN")
    if on_bad_row not in ("error", "skip"):
        raise bad("--on-bad-row", f"{on_bad_row!r} is not error or skip")
    if ids not in ("auto", "keep", "number"):
        raise bad("--ids", f"{ids!r} is not auto, keep or number")
    with logs.Timer() as t:
        result = import_interactions(
            src, out, user=str(user), item=str(item), time=str(time), on_bad_row=on_bad_row,  # type: ignore[arg-type]
            kind_map=pairs("--kind-map", kind_map), neutral_kind=None if neutral_kind == "none" else neutral_kind,
            items_columns=pairs("--items-columns", items_columns), social_columns=pairs("--social-columns",
                                                                                          social_columns),
            social_mutual=mutual, users_columns=pairs("--users-columns", users_columns),
            ids=ids, **options)  # type: ignore[arg-type]
    finish_import("interactions", src, out, t.seconds, result.dataset.manifest.notes)
    print_summary(f"import {src.name}", result.summary())


def pairs(flag: str, text: str | None) -> dict[str, str]:
    """`a=b,c=d` as a dict; anything else is a usage error."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, eq, val = part.partition("=")
        if not eq or not key.strip() or not val.strip():
            raise bad(flag, f"expected KEY=VALUE,..., got {part!r}")
        out[key.strip()] = val.strip()
    return out


def finish_import(source: str, src: Path, out: Path, seconds: float, notes: list[str]) -> None:
    """Validate what was written, log and say so with the importer's notes; UserError when it is invalid."""
    from foryou.data.validate import validate_dir

    problems = validate_dir(out)
    log.info("imported", extra={"source": source, "src": str(src), "out": str(out),
                                "seconds": round(seconds, 3), "problems": len(problems)})
    console.print(f"[green]imported[/] {source} → {out} in {seconds:.1f} s")
    for note in notes:
        console.print(f"  note: {note}", highlight=False)
    if problems:
        raise UserError(f"{out}: imported but invalid: {problems[0]}")


def compact(dataset: DatasetArg,
            store: Annotated[Path | None, typer.Option(help="the event store `foryou serve --store` used "
                                                       "(default: the state directory's)",
                                                       show_default=False)] = None) -> None:
    """Fold the service's event store into the dataset's Parquet tables (atomic) for the next
    `foryou train`. Stop the server first."""
    from foryou.service.compact import compact as run

    dataset_dir(dataset)
    result = run(dataset, store=store)  # a server still holding the dataset: ServerRunning, one line
    print_summary(f"compact {dataset}", result)
