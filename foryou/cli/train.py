"""`foryou train`: train the models on the train window, register them, and promote each one that serves
better pages than what is served now on the validation window (foryou.eval.promotion)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from foryou.cli.params import SetOption, StateOption, UserError, bad, dataset_dir, load_config
from foryou.cli.render import console, print_model_metrics, progress_bars

if TYPE_CHECKING:
    from foryou.config import ForYouConfig

# foryou.training.pipeline.MODELS, spelled out so that `--help` does not import torch (a test keeps them equal)
TRAINABLE = ("realgraph", "light_ranker", "heavy_ranker", "phoenix", "two_tower")


def train(
    dataset: Annotated[Path, typer.Argument(help="dataset directory (without impressions: sampled negatives)")],
    only: Annotated[str | None, typer.Option(help=f"train one model: {', '.join(TRAINABLE)}",
                                             show_default=False)] = None,
    promote: Annotated[bool | None, typer.Option(
        help="--promote: promote whatever the validation comparison says; --no-promote: never "
             "[default: promote a model only if its validation page NDCG@10 beats what is served]")] = None,
    tune: Annotated[int, typer.Option(help="heavy-ranker hyperparameter trials (optuna) on validation", min=0)] = 0,
    workers: Annotated[int, typer.Option(help="heavy ranker: data-parallel worker processes on Ray Train (a local "
                                              "Ray cluster, or RAY_ADDRESS's; needs foryou[scale])", min=1,
                                         max=256)] = 1,
    set_: SetOption = None,
    state_dir: StateOption = None,
) -> None:
    """Train the models on the train window (early stopping on validation), register them, and promote
    each one whose pages beat what is served now on the validation window (page NDCG@10)."""
    import importlib.util

    if only is not None and only not in TRAINABLE:
        raise bad("--only", f"unknown model {only!r}; one of {', '.join(TRAINABLE)}")
    dataset_dir(dataset)
    if tune and importlib.util.find_spec("optuna") is None:
        raise UserError("--tune needs optuna: pip install 'foryou[tune]'")
    config = load_config(set_)
    if workers > 1:
        from foryou.config import apply_overrides

        try:
            import ray.train.torch  # noqa: F401
        except ImportError:
            raise UserError("--workers needs Ray Train: pip install 'foryou[scale]'") from None
        config = apply_overrides(config, {"training": {"heavy_ranker": {"workers": workers}}})
    run_training(dataset, config, only=only, promote=promote, tune=tune, state=state_dir)


def run_training(dataset: Path, config: ForYouConfig, only: str | None = None, promote: bool | None = None,
                 tune: int = 0, state: Path | None = None) -> None:
    """Train, then promote each model only where the validation gate (or `promote`) says so; print the
    metrics and one verdict line per model. `foryou train` and `foryou quickstart` both run this."""
    from foryou.eval.heuristic import tune_heuristic
    from foryou.eval.promotion import gate
    from foryou.timeline.windows import resolve_for
    from foryou.training.pipeline import train_all

    gating = config.training.promotion
    with progress_bars() as bar:
        # the learned heuristic first (any --only): the models then train and are gated under it
        heuristic = tune_heuristic(dataset, config, state, force=promote, min_gain=gating.min_gain,
                               max_users=gating.max_users, seed=gating.seed, progress=bar)
        config = resolve_for(dataset, config, state)  # the engine's windows: hard negatives and the gate use them
        results = train_all(dataset, config, only=only, promote=False, progress=bar, tune=tune, state=state)
        candidates = {name: int(r["version"]) for name, r in results.items() if isinstance(r, dict) and "version" in r}
        verdicts = gate(dataset, candidates, config, state, force=promote, min_gain=gating.min_gain,
                        max_users=gating.max_users, seed=gating.seed, progress=bar)
    tuning = results.pop("tuning", None)
    if tuning:
        console.print(f"tuning: best of {len(tuning['trials'])} trials: {tuning['best']}", highlight=False)
    for name, r in results.items():
        print_model_metrics(name, r)
    for verdict in [heuristic, *verdicts] if heuristic is not None else verdicts:
        console.print(verdict.line(), style="green" if verdict.promoted else "yellow", markup=False, highlight=False,
                      soft_wrap=True)
