"""`foryou simulate`: the closed loop on a synthetic world, with an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from foryou.cli.params import UserError, load_config, refuse_to_replace, user_errors
from foryou.cli.render import console, print_simulation, progress_bars


def simulate(
    ctx: typer.Context,
    world: Annotated[Path, typer.Argument(help="a synthetic world (needs ground truth)")],
    days: Annotated[int, typer.Option(help="simulated days", min=1)] = 14,
    experiment: Annotated[str | None, typer.Option(help="an experiment of this world (foryou experiments "
                                                        "create); its arms are served side by side")] = None,
    url: Annotated[str | None, typer.Option(help="drive a running `foryou serve` at this URL instead of an "
                                                 "in-process engine")] = None,
    users: Annotated[float, typer.Option(help="share of the world's users simulated (0.2: 14 days × 2 arms of the "
                                              "default world in < 10 min on 2 cores)", min=0.001, max=1.0)] = 0.2,
    seed: Annotated[int, typer.Option(help="simulation seed (sessions, actions, new posts)")] = 0,
    out: Annotated[Path | None, typer.Option(help="output directory (default WORLD/simulations/NAME-sSEED)")] = None,
    retrain: Annotated[bool, typer.Option(help="retrain the heavy ranker every night on world + feedback")] = False,
    feedback: Annotated[bool, typer.Option(help="write world + simulated feedback as OUT/feedback for "
                                                "`foryou train`")] = False,
    new_posts: Annotated[bool, typer.Option(help="new posts keep arriving")] = True,
    force: Annotated[bool, typer.Option(help="replace the feedback dataset an earlier run left in OUT/feedback "
                                             "(with --feedback or --retrain)")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="engine config override (repeatable)")] = None,
) -> None:
    """Closed loop: the world's users are served pages, act by the ground truth, and the engine learns
    from every action; writes an HTML report (per arm and day, significance table)."""
    from foryou.data.manifest import read_manifest
    from foryou.data.state import state_dir
    from foryou.experiments import ExperimentStore
    from foryou.reports import catalog
    from foryou.simulation import Simulation, SimulationConfig
    from foryou.simulation.report import write_json, write_report

    if not read_manifest(world).has_ground_truth:
        raise UserError(f"{world}: simulation needs a synthetic world with ground truth (`foryou world`)")
    config = load_config(set_)
    exp = ExperimentStore(world).get(experiment) if experiment else None  # no such one: a ForYouError
    with user_errors(ValidationError):
        cfg = SimulationConfig(**_given(ctx, set_, days=days, seed=seed, user_share=users, retrain=retrain,
                                        new_posts=new_posts))
    seed = cfg.seed if "seed" in cfg.model_fields_set else config.simulation.seed
    out = out or world / "simulations" / f"{experiment or 'baseline'}-s{seed}"
    if feedback or (cfg.retrain if "retrain" in cfg.model_fields_set else config.simulation.retrain):
        refuse_to_replace(out / "feedback", force)
    engine = None
    if url:
        from foryou.simulation.http_backend import HttpEngine

        engine = HttpEngine(url)
    with progress_bars() as bar:
        sim = Simulation(world, cfg, experiment=exp, engine_config=config, engine=engine, out=out,
                         progress=bar)
        result = sim.run()
    title = f"foryou simulate {world} · {sim.cfg.days} days · {experiment or 'baseline'} · seed {sim.cfg.seed}"
    report = write_report(result, out / "report.html", title)
    write_json(result, out / "results.json")
    catalog.record(state_dir(world), "simulation", report, title)  # listed in the web app
    if feedback:
        console.print(f"feedback dataset → {sim.write_feedback(out / 'feedback')}")
    print_simulation(result)
    console.print(f"report → {report}")


def _given(ctx: typer.Context, set_: list[str] | None, **options: object) -> dict[str, object]:
    """The options typed on the command line; the rest come from the config (`--set simulation.days=3`).
    `--users` keeps its own default (0.2) unless `--set simulation.user_share=...` names one."""
    params = {"user_share": "users"}
    given = {field: value for field, value in options.items()  # by name: typer may bring its own click
             if getattr(ctx.get_parameter_source(params.get(field, field)), "name", "DEFAULT") != "DEFAULT"}
    if "user_share" not in given and not any(s.startswith("simulation.user_share=") for s in set_ or []):
        given["user_share"] = options["user_share"]
    return given
