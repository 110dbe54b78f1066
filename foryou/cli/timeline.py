"""`foryou timeline`: one user's For You page as a table, optionally explained and traced."""

from __future__ import annotations

from typing import Annotated

import typer

from foryou.cli.params import DatasetArg, StateOption, UserError, dataset_dir, load_config
from foryou.cli.render import console, print_page, print_trace, status


def timeline(
    dataset: DatasetArg,
    user: Annotated[str, typer.Argument(help="user id: the dataset's own (a string for datasets imported with "
                                             "their ids, else an int)")],
    n: Annotated[int, typer.Option(help="page size", min=1, max=200)] = 35,
    explain: Annotated[bool, typer.Option(help="show why each post scored what it did")] = False,
    trace: Annotated[bool, typer.Option(help="show every pipeline step: in, out, removed, time")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override, e.g. "
                                                   "timeline.exploration.strategy=ucb (repeatable)")] = None,
    state_dir: StateOption = None,
) -> None:
    """Build the For You page for one user and print it as a table."""
    from foryou.timeline.engine import RecommendationEngine, UnknownUser

    dataset_dir(dataset)
    config = load_config(set_)
    with status("opening the serving index (built and snapshotted on first use)"):
        engine = RecommendationEngine.open(dataset, config, state=state_dir)
    try:
        if engine.n_posts == 0:
            raise UserError(f"{dataset}: the dataset has no posts")
        page = engine.recommend(user, n=n, explain=explain, trace=trace).shown(engine.ids)
        note = engine.catalog_note(n)
    except UnknownUser as exc:
        raise UserError(f"{exc}; `foryou data stats {dataset}` shows the users") from None
    finally:
        engine.close()
    print_page(page, explain)
    if note:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    if trace:
        print_trace(page)
