"""`foryou train`: train the models on the train window, register and (by default) promote them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foryou.cli.params import SetOption, UserError, bad, dataset_dir, load_config
from foryou.cli.render import console, print_model_metrics, progress_bars

# foryou.training.pipeline.MODELS, spelled out so that `--help` does not import torch (a test keeps them equal)
TRAINABLE = ("realgraph", "light_ranker", "heavy_ranker", "two_tower")


def train(
    dataset: Annotated[Path, typer.Argument(help="dataset directory (without impressions: sampled negatives)")],
    only: Annotated[str | None, typer.Option(help=f"train one model: {', '.join(TRAINABLE)}",
                                             show_default=False)] = None,
    promote: Annotated[bool | None, typer.Option(
        help="promote what was trained [default: promote, except models trained against sampled negatives]")] = None,
    tune: Annotated[int, typer.Option(help="heavy-ranker hyperparameter trials (optuna) on validation", min=0)] = 0,
    set_: SetOption = None,
) -> None:
    """Train the models on the train window (early stopping on validation), register and promote them
    (without impressions: register only, see --promote)."""
    import importlib.util

    if only is not None and only not in TRAINABLE:
        raise bad("--only", f"unknown model {only!r}; one of {', '.join(TRAINABLE)}")
    dataset_dir(dataset)
    if tune and importlib.util.find_spec("optuna") is None:
        raise UserError("--tune needs optuna: pip install 'foryou[tune]'")
    config = load_config(set_)
    from foryou.training.pipeline import train_all

    with progress_bars() as bar:
        results = train_all(dataset, config, only=only, promote=promote, progress=bar, tune=tune)
    tuning = results.pop("tuning", None)
    if tuning:
        console.print(f"tuning: best of {len(tuning['trials'])} trials: {tuning['best']}", highlight=False)
    for name, r in results.items():
        print_model_metrics(name, r)
    if promote is None and any("negatives" in r for r in results.values() if isinstance(r, dict)):
        console.print("[yellow]registered, not promoted[/]: without impressions (sampled negatives) the trained "
                      "models put our pages below the heuristic rankers on MovieLens, Last.fm and Higgs "
                      "(EVALUATION.md); serve them with --promote or `foryou models promote`", highlight=False)
