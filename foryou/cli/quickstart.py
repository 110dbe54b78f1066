"""`foryou quickstart`: the main job on the embedded default world, from building it to serving it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from foryou.cli.data import show_stats
from foryou.cli.params import UserError, check_preset, describe, existing_dataset
from foryou.cli.render import console, print_page, status
from foryou.cli.serve import serve_dataset
from foryou.cli.train import run_training
from foryou.cli.world import build_world


def quickstart(
    out: Annotated[Path, typer.Option(help="where the default world lives")] = Path("runs/default"),
    preset: Annotated[str, typer.Option(help="world preset")] = "small",
    seed: Annotated[int, typer.Option(help="world seed")] = 0,
    serve_: Annotated[bool, typer.Option("--serve/--no-serve", help="end by serving it over HTTP")] = True,
    port: Annotated[int, typer.Option(help="port for the service", min=1, max=65535)] = 8000,
    force: Annotated[bool, typer.Option(help="replace a different dataset at --out (another preset, seed or "
                                             "source), with its models and event store")] = False,
    retrain: Annotated[bool, typer.Option(help="train again even when promoted models exist (by default they "
                                               "are reused, also after the data changed, e.g. by `foryou "
                                               "compact`)")] = False,
) -> None:
    """The main job on the embedded default: build (or reuse) the default world, summarise it, train
    the models (once), show an explained For You page, then serve it on 127.0.0.1."""
    check_preset(preset)
    existing = existing_dataset(out, force)
    if existing is not None and (existing.preset, existing.seed, existing.source) == (preset, seed, "synthetic"):
        console.print(f"[green]reusing[/] world at {out} (delete it to rebuild)")
    elif existing is not None and not force:
        raise UserError(f"{out} holds another dataset ({describe(existing)}), not the {preset} world with "
                        f"seed {seed}; pass --force to replace it (its models and event store go with it) or "
                        "choose another --out")
    else:
        build_world(preset, seed, out)
    show_stats(out)
    train_unless_trained(out, retrain)
    show_example_timeline(out)
    if serve_:
        serve_dataset(out, port=port)


def train_unless_trained(path: Path, retrain: bool = False) -> None:
    """Train the models for this world once (promoted where they beat the heuristic on validation, as
    `foryou train` does); later runs reuse them, also when the data changed since (the service's writes
    folded in by `foryou compact`): retraining is a choice."""
    from foryou.config import ForYouConfig
    from foryou.training.pipeline import dataset_fingerprint, registry_for

    trained = [v for v in registry_for(path).list() if v.name == "heavy_ranker"]
    if trained and not retrain:
        current = max(trained, key=lambda v: v.version)
        if current.dataset_fingerprint == dataset_fingerprint(path):
            console.print(f"[green]reusing[/] trained models ({current.label}); `foryou train {path}` retrains",
                          highlight=False)
        else:
            console.print(f"[yellow]reusing[/] trained models ({current.label}): the data changed since they "
                          f"were trained; `foryou train {path}` (or `foryou quickstart --retrain`) retrains",
                          highlight=False, soft_wrap=True)
        return
    run_training(path, ForYouConfig())


def show_example_timeline(path: Path) -> None:
    """The For You page of the most active user, explained, and how to ask for any other."""
    from foryou.timeline.engine import RecommendationEngine

    with status("opening the serving index (built and snapshotted on first use)"):
        engine = RecommendationEngine.open(path)
    idx = engine.state.index
    user = int(idx.user_ids[int(np.argmax(idx.follows.out_degree()))])
    page = engine.recommend(user, n=10, explain=True)
    engine.close()
    print_page(page, explain=True)
    console.print(f"next: [bold]foryou timeline {path} USER --explain --trace[/] for any user; "
                  f"[bold]foryou bench timeline {path}[/] for latency", highlight=False)
