"""`foryou world`: generate a synthetic world with its ground truth and summarise it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from foryou.cli.data import show_stats
from foryou.cli.params import check_preset, refuse_to_replace
from foryou.cli.render import console, progress_bars

log = logging.getLogger("foryou.cli")


def build_world(preset: str, seed: int, out: Path) -> None:
    """Generate and write a world (the caller has checked what --out holds)."""
    from foryou.config import world_config
    from foryou.data.world import generate_world

    checked = check_preset(preset)
    with progress_bars() as bar:
        world = generate_world(world_config(checked), seed, bar, preset)
        bar("writing parquet", 0.0)
        world.write(out)
        bar("writing parquet", 1.0)
    log.info("world built", extra={"preset": preset, "seed": seed, "out": str(out),
                                   "seconds": round(world.seconds, 3), "counts": world.dataset.manifest.counts})
    console.print(f"[green]world[/] {preset} seed {seed} → {out} in {world.seconds:.1f} s")


def world(
    preset: Annotated[str, typer.Option(help="tiny | small (default world) | medium | large")] = "small",
    seed: Annotated[int, typer.Option(help="random seed; same seed → identical tables")] = 0,
    out: Annotated[Path, typer.Option(help="output dataset directory")] = Path("runs/world"),
    force: Annotated[bool, typer.Option(help="replace an existing dataset at --out")] = False,
) -> None:
    """Generate a synthetic world with ground truth and print its summary."""
    check_preset(preset)
    refuse_to_replace(out, force)
    build_world(preset, seed, out)
    show_stats(out)
