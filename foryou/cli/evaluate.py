"""`foryou eval`: offline evaluation of our pages against baselines (and the oracle) on one split."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from foryou.cli.params import DatasetArg, SetOption, StateOption, UserError, bad, dataset_dir, load_config
from foryou.cli.render import console, print_eval, progress_bars


def _baselines(spec: str) -> tuple[str, ...]:
    """`all`, `none` or a comma list, each checked against the known baselines."""
    from foryou.eval.baselines import BASELINES

    chosen = BASELINES if spec == "all" else () if spec == "none" else tuple(
        b.strip() for b in spec.split(",") if b.strip())
    unknown = [b for b in chosen if b not in BASELINES]
    if unknown:
        raise bad("--baselines", f"unknown baseline {unknown[0]!r}; one of all, none, {', '.join(BASELINES)}")
    return tuple(chosen)


def _users(spec: str) -> tuple[str, int | None]:
    """`--users`: a segment name (all, cold, warm) or a positive number of users to sample."""
    from foryou.eval.protocols import SEGMENTS

    if spec in ("all", *SEGMENTS):
        return spec, None
    if spec.isdigit() and int(spec) > 0:
        return "all", int(spec)
    raise bad("--users", f"{spec!r} is not all, {', '.join(SEGMENTS)} or a positive number")


def eval_(
    dataset: DatasetArg,
    report: Annotated[Path, typer.Option(help="directory for metrics.json and index.html")],
    baselines: Annotated[str, typer.Option(help="all, none, or a comma list of random,popularity,recent_popularity,"
                                                "reverse_chron,als,bpr,item_knn,ease")] = "all",
    protocol: Annotated[str, typer.Option(help="temporal (page served at the test window's start), leave-last-out "
                                               "(each user's last positive held out), random (a seeded 20 % of "
                                               "positives held out) or minirecsys (the reference mimic's "
                                               "protocol)")] = "temporal",
    users: Annotated[str, typer.Option(help="whom to evaluate: all, cold (no positive engagement before the "
                                            "split), warm (≥ 5) or N (a seeded sample of N users)")] = "all",
    tune: Annotated[bool, typer.Option(help="tune the baselines' hyperparameters on the validation split (and, "
                                            "once, our heuristic where `foryou train` has not)")] = True,
    seed: Annotated[int, typer.Option(help="seed of the user sample, bootstrap and random baseline")] = 0,
    oracle: Annotated[bool, typer.Option(help="compare with the oracle (synthetic worlds)")] = True,
    workers: Annotated[int, typer.Option(help="fit the baselines as parallel Ray tasks on this many CPUs (a local "
                                              "Ray cluster; needs foryou[scale]); the same numbers as one process",
                                         min=1, max=256)] = 1,
    set_: SetOption = None,
    state_dir: StateOption = None,
) -> None:
    """Offline evaluation: our pages vs baselines (and the oracle) on one split → JSON + HTML report."""
    from foryou.eval.protocols import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise bad("--protocol", f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    chosen = _baselines(baselines)
    if workers > 1 and importlib.util.find_spec("ray") is None:
        raise UserError("--workers needs Ray: pip install 'foryou[scale]'")
    segment, max_users = _users(users)
    dataset_dir(dataset)
    from foryou.data.state import state_dir as state_of
    from foryou.eval.evaluator import evaluate
    from foryou.eval.heuristic import learn_if_unlearned
    from foryou.eval.report import write_report
    from foryou.reports import catalog
    from foryou.timeline.windows import resolve_for, small_catalog_note

    with progress_bars() as bar:
        # as the baselines are tuned on validation, so is our heuristic, once (unless `foryou train` did)
        learned = learn_if_unlearned(dataset, load_config(set_), state_dir, bar) \
            if tune and protocol == "temporal" else None
        config = resolve_for(dataset, load_config(set_), state_dir)  # the baselines' catalog uses the engine's windows
        result = evaluate(dataset, protocol, chosen, config, max_users=max_users, seed=seed, oracle=oracle,
                          progress=bar, state=state_dir, segment=segment, tune=tune, workers=workers)
        if learned is not None:
            result["learned_heuristic"] = learned.record()
        bar("report", 0.0)
        json_path, html_path = write_report(result, report)
        catalog.record(state_of(dataset, state_dir), "eval", html_path,
                       f"foryou eval {dataset} · {protocol} · {users} users")  # listed in the web app
        bar("report", 1.0)
    if learned is not None:
        console.print(learned.line(), style="green" if learned.promoted else "yellow", markup=False, highlight=False,
                      soft_wrap=True)
    print_eval(result)
    note = small_catalog_note(result["catalog_size"], result["page_size"],
                              config.timeline.sources.max_age_hours)
    if note:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
    console.print(f"report → {html_path}  ·  metrics → {json_path}  ({result['seconds']['total']:.0f} s)")
