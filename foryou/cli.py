"""`foryou <command>`: the one entry point. Thin: parses, calls into the layers, renders.

Every mistake prints exactly one line starting `error: ` on stderr (no box, no traceback). A wrong
command line (typer/click usage errors: unknown option, missing argument, a value of the wrong type,
out of range or not among the allowed names) exits 2; every other mistake the user can fix (a missing
or invalid dataset, an unknown user, an existing output, a busy port...) exits 1. Anything else is a
bug: it keeps its traceback (also logged). `foryou` or a command group with no arguments prints its
help and exits 0. Library code never prints — this module owns the terminal.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import numpy as np
import typer
import typer.main
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from foryou import logs
from foryou.errors import ForYouError

if TYPE_CHECKING:
    from foryou.config import ForYouConfig
    from foryou.data.dataset import Manifest

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="foryou: X's For You timeline, runnable and inspectable.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and check datasets.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that write JSON.")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")

console = Console()
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, however narrow the terminal
log = logging.getLogger("foryou.cli")

PRESETS = ("tiny", "small", "medium", "large")
# foryou.training.pipeline.MODELS, spelled out so that `--help` does not import torch (a test keeps them equal)
TRAINABLE = ("realgraph", "light_ranker", "heavy_ranker", "safety", "two_tower", "twhin")


class UserError(ForYouError):
    """A mistake the user can fix; shown as one line."""


def _bad(param: str, message: str) -> typer.BadParameter:
    """A wrong value on the command line: a usage error (exit 2), like the ones typer raises itself."""
    return typer.BadParameter(message, param_hint=f"'{param}'")


# -- rendering ----------------------------------------------------------------------------------


HEARTBEAT_S = 30.0  # off a terminal, a stage still running says how far it got at most this often


@contextmanager
def progress_bars() -> Iterator[Callable[[str, float], None]]:
    """A `(stage, fraction)` callback drawing one rich bar per stage on a terminal; elsewhere (a pipe, a
    log file) one plain line per stage as it starts, `[elapsed] stage`, and a line when all is done."""
    if not err.is_terminal:
        with _plain_lines() as say:
            started: dict[str, float] = {}

            def line(stage: str, frac: float) -> None:
                now = time.perf_counter()
                if stage not in started:
                    say(stage)
                    started[stage] = now
                elif now - started[stage] >= HEARTBEAT_S and frac < 1.0:
                    say(f"{stage} {min(max(frac, 0.0), 1.0):.0%}")
                    started[stage] = now

            yield line
        return
    with Progress(TextColumn("[bold]{task.description:<26}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=err, transient=False) as bars:
        tasks: dict[str, Any] = {}

        def update(stage: str, frac: float) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=1.0)
            bars.update(tasks[stage], completed=min(max(frac, 0.0), 1.0))

        yield update


@contextmanager
def _plain_lines() -> Iterator[Callable[[str], None]]:
    """`say(what)` prints `[  12.3 s] what` on stderr; a last `done` line when the block succeeds."""
    start = time.perf_counter()

    def say(what: str) -> None:
        err.print(f"[{time.perf_counter() - start:7.1f} s] {what}", highlight=False, markup=False)

    yield say
    say("done")


@contextmanager
def status(what: str) -> Iterator[None]:
    """A spinner on a terminal; elsewhere a plain line when the work starts and one when it is done."""
    if err.is_terminal:
        with err.status(what):
            yield
        return
    with _plain_lines() as say:
        say(what)
        yield


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_fmt(x)}" for k, x in v.items())
    return "—" if v is None else str(v)


def _print_summary(title: str, stats: dict[str, Any]) -> None:
    """Render a nested stats dict as one two-column table (nested dicts become indented rows)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")

    def rows(d: dict[str, Any], indent: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict) and (len(v) > 6 or any(isinstance(x, dict) for x in v.values())):
                table.add_row(f"{indent}{k}", "")
                rows(v, indent + "  ")
            else:
                table.add_row(f"{indent}{k}", _fmt(v))

    rows(stats)
    console.print(table)


# -- world --------------------------------------------------------------------------------------


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise _bad("--preset", f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")


def _existing_dataset(out: Path, force: bool) -> Manifest | None:
    """What `--out` holds before a command writes a dataset there: nothing (None: write away), or the
    manifest of a dataset (the caller decides whether it may replace it). A file, or a folder with other
    things in it, is never replaced, even with --force; nor is an unreadable dataset without --force."""
    from foryou.data.dataset import MANIFEST, DatasetError, Manifest, read_manifest

    if not out.exists():
        return None
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a directory; choose another --out")
    if not (out / MANIFEST).exists():
        if any(out.iterdir()):
            raise UserError(f"{out} is not a dataset (no {MANIFEST}) and is not empty; choose another --out")
        return None
    try:
        return read_manifest(out)
    except DatasetError as exc:
        if not force:
            raise UserError(f"{exc}; pass --force to replace the dataset at {out}") from None
        return Manifest.model_construct(name=str(out), source="unreadable", generator="")  # replaced below


def _refuse_to_replace(out: Path, force: bool) -> None:
    """Commands writing a dataset never replace one silently: one `error:` line unless --force."""
    if _existing_dataset(out, force) is not None and not force:
        raise UserError(f"{out} already holds a dataset; pass --force to replace it (its models, event "
                        "store and experiments go with it) or choose another --out")


def _build_world(preset: str, seed: int, out: Path) -> None:
    """Generate and write a world (the caller has checked what --out holds)."""
    from foryou.config import world_config
    from foryou.data.world import generate_world

    _check_preset(preset)
    with progress_bars() as bar:
        world = generate_world(world_config(preset), seed, bar, preset)
        bar("writing parquet", 0.0)
        world.write(out)
        bar("writing parquet", 1.0)
    log.info("world built", extra={"preset": preset, "seed": seed, "out": str(out),
                                   "seconds": round(world.seconds, 3), "counts": world.dataset.manifest.counts})
    console.print(f"[green]world[/] {preset} seed {seed} → {out} in {world.seconds:.1f} s")


def _show_stats(path: Path) -> None:
    from foryou.data.stats import dataset_stats

    _print_summary(f"dataset {path}", dataset_stats(path))


@app.command()
def world(
    preset: Annotated[str, typer.Option(help="tiny | small (default world) | medium | large")] = "small",
    seed: Annotated[int, typer.Option(help="random seed; same seed → identical tables")] = 0,
    out: Annotated[Path, typer.Option(help="output dataset directory")] = Path("runs/world"),
    force: Annotated[bool, typer.Option(help="replace an existing dataset at --out")] = False,
) -> None:
    """Generate a synthetic world with ground truth and print its summary."""
    _check_preset(preset)
    _refuse_to_replace(out, force)
    _build_world(preset, seed, out)
    _show_stats(out)


@app.command()
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
    _check_preset(preset)
    existing = _existing_dataset(out, force)
    if existing is not None and (existing.preset, existing.seed, existing.source) == (preset, seed, "synthetic"):
        console.print(f"[green]reusing[/] world at {out} (delete it to rebuild)")
    elif existing is not None and not force:
        raise UserError(f"{out} holds another dataset ({_describe(existing)}), not the {preset} world with "
                        f"seed {seed}; pass --force to replace it (its models and event store go with it) or "
                        "choose another --out")
    else:
        _build_world(preset, seed, out)
    _show_stats(out)
    _train_unless_trained(out, retrain)
    _show_example_timeline(out)
    if serve_:
        _serve(out, "127.0.0.1", port, 1, None, [], Path("runs/logs/trace.jsonl"), None)


def _describe(m: Manifest) -> str:
    if m.source == "synthetic":
        return f"the {m.preset} world with seed {m.seed}"
    return f"{m.name}, source {m.source}"


def _train_unless_trained(path: Path, retrain: bool = False) -> None:
    """Train the models for this world once; later runs reuse the promoted versions, also when the data
    changed since (the service's writes folded in by `foryou compact`): retraining is a choice."""
    from foryou.training.pipeline import dataset_fingerprint, registry_for, train_all

    current = registry_for(path).promoted("heavy_ranker")
    if current is not None and not retrain:
        if current.dataset_fingerprint == dataset_fingerprint(path):
            console.print(f"[green]reusing[/] trained models ({current.label}); `foryou train {path}` retrains",
                          highlight=False)
        else:
            console.print(f"[yellow]reusing[/] trained models ({current.label}): the data changed since they "
                          f"were trained; `foryou train {path}` (or `foryou quickstart --retrain`) retrains",
                          highlight=False, soft_wrap=True)
        return
    with progress_bars() as bar:
        results = train_all(path, progress=bar)
    for name, r in results.items():
        _print_model_metrics(name, r)


def _show_example_timeline(path: Path) -> None:
    """The For You page of the most active user, explained, and how to ask for any other."""
    from foryou.timeline.engine import RecommendationEngine

    with status("opening the serving index (built and snapshotted on first use)"):
        engine = RecommendationEngine.open(path)
    idx = engine.state.index
    user = int(idx.user_ids[int(np.argmax(idx.follows.out_degree()))])
    page = engine.recommend(user, n=10, explain=True)
    engine.close()
    _print_page(page, explain=True)
    console.print(f"next: [bold]foryou timeline {path} USER --explain --trace[/] for any user; "
                  f"[bold]foryou bench timeline {path}[/] for latency", highlight=False)


# -- service ------------------------------------------------------------------------------------


@app.command()
def serve(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    host: Annotated[str, typer.Option(help="interface to listen on (non-loopback needs --token)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="worker processes (they share the event store)", min=1, max=64)] = 1,
    token: Annotated[str | None, typer.Option(envvar="FORYOU_TOKEN", help="bearer token for writes",
                                              show_default=False)] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override (repeatable)")] = None,
    trace_log: Annotated[Path, typer.Option(help="JSON-lines trace log (rotated)")] = Path("runs/logs/trace.jsonl"),
    store: Annotated[Path | None, typer.Option(help="event store file (default DATASET/.service/events.sqlite)",
                                               show_default=False)] = None,
) -> None:
    """Serve the For You timeline over HTTP (OpenAPI docs at /docs): pages, durable real-time writes,
    /metrics. Writes are acknowledged after they are committed to the event store."""
    _serve(dataset, host, port, workers, token, set_ or [], trace_log, store)


def _serve(dataset: Path, host: str, port: int, workers: int, token: str | None, overrides: list[str],
           trace_log: Path, store: Path | None) -> None:
    import os
    import socket
    import tempfile

    from foryou.service.app import SETTINGS_ENV, ServeSettings, create_app
    from foryou.service.security import check_bind
    from foryou.service.server import run
    from foryou.service.service import Service, ServiceOptions, store_path
    from foryou.service.store import check_writable

    _dataset_dir(dataset)  # a missing or broken dataset is a one-line error
    if not 1 <= port <= 65535:
        raise _bad("--port", f"{port} is not a TCP port (1 to 65535)")
    try:
        check_bind(host, token)
    except ValueError as exc:  # refusing a non-loopback bind without a token
        raise UserError(str(exc)) from None
    config = _config(overrides)
    with socket.socket() as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}; pass --port") from None
    check_writable(store_path(dataset, store))  # a read-only store: one line here, not one per worker
    settings = ServeSettings(dataset=dataset, config=_overrides(overrides), token=token, trace_log=trace_log,
                             store=store)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    if workers == 1:
        with status("opening the serving index and replaying the event store"):
            svc = Service(dataset, config, ServiceOptions(trace_log=trace_log, store=store))
        app_ = create_app(settings, service=svc)
        user = int(svc.engine.state.index.user_ids[0])
        target: Any = app_
        extra: dict[str, Any] = {}
    else:
        from foryou.timeline.engine import RecommendationEngine

        with status("building the serving snapshot the workers will share"):
            RecommendationEngine.open(dataset, config).close()
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        os.environ["FORYOU_WORKER_SUFFIX"] = "1"
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="foryou-metrics-")
        user = int(np.sort(_user_ids(dataset))[0])
        target, extra = "foryou.service.app:app_from_env", {"factory": True, "workers": workers}
    console.print(f"serving [bold]{dataset}[/] on [bold]{url}[/] ({workers} worker{'s' * (workers > 1)}); "
                  f"API docs {url}/docs; writes {'need the bearer token' if token else 'open (loopback only)'}; "
                  "Ctrl-C stops", highlight=False)
    console.print(f"try: curl '{url}/v1/users/{user}/timeline?n=5'", highlight=False, soft_wrap=True)
    run(target, host, port, config.service.header_timeout_s, **extra)


def _user_ids(dataset: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(dataset / "users.parquet", columns=["user_id"])["user_id"].to_numpy()


@app.command()
def compact(dataset: Annotated[Path, typer.Argument(help="dataset directory")],
            store: Annotated[Path | None, typer.Option(help="the event store `foryou serve --store` used "
                                                       "(default DATASET/.service/events.sqlite)",
                                                       show_default=False)] = None) -> None:
    """Fold the service's event store into the dataset's Parquet tables (atomic) for the next
    `foryou train`. Stop the server first."""
    from foryou.service.compact import ServerRunning
    from foryou.service.compact import compact as run

    _dataset_dir(dataset)
    try:
        result = run(dataset, store=store)
    except ServerRunning as exc:
        raise UserError(str(exc)) from None
    _print_summary(f"compact {dataset}", result)


# -- data ---------------------------------------------------------------------------------------


@data_app.command("validate")
def data_validate(path: Annotated[Path, typer.Argument(help="dataset directory")]) -> None:
    """Check schema, types, ids, duplicates, time order and value ranges; list every problem."""
    from foryou.data.dataset import MANIFEST
    from foryou.data.validate import validate_dir

    if not (path / MANIFEST).exists() and not any(path.glob("*.parquet")):
        _dataset_dir(path)  # no such directory, or not a dataset at all (rather than a list of what is missing)
    problems = validate_dir(path)
    if not problems:
        console.print(f"[green]valid[/] {path}")
        return
    for p in problems:
        console.print(f"[red]✗[/] {p}", highlight=False)
    raise UserError(f"{path}: {len(problems)} problem(s)")


@data_app.command("stats")
def data_stats(path: Annotated[Path, typer.Argument(help="dataset directory")]) -> None:
    """Summary table computed by DuckDB over the Parquet files (`data validate` checks every byte)."""
    _show_stats(path)


# -- import -------------------------------------------------------------------------------------


@app.command("import")
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
        raise _bad("SOURCE", f"unknown source {source!r}; choose one of {', '.join(IMPORTERS)}")
    _refuse_to_replace(out, force)
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
    _show_stats(out)


# -- timeline -----------------------------------------------------------------------------------


@app.command()
def timeline(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    user: Annotated[int, typer.Argument(help="user id")],
    n: Annotated[int, typer.Option(help="page size", min=1, max=200)] = 35,
    explain: Annotated[bool, typer.Option(help="show why each post scored what it did")] = False,
    trace: Annotated[bool, typer.Option(help="show every pipeline step: in, out, removed, time")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override, e.g. "
                                                   "timeline.exploration.strategy=ucb (repeatable)")] = None,
) -> None:
    """Build the For You page for one user and print it as a table."""
    from foryou.timeline.engine import RecommendationEngine, UnknownUser

    _dataset_dir(dataset)
    config = _config(set_)
    with status("opening the serving index (built and snapshotted on first use)"):
        engine = RecommendationEngine.open(dataset, config)
    try:
        if len(engine.state.index.post_id) == 0:
            raise UserError(f"{dataset}: the dataset has no posts")
        page = engine.recommend(user, n=n, explain=explain, trace=trace)
    except UnknownUser as exc:
        raise UserError(f"{exc}; `foryou data stats {dataset}` shows the users") from None
    finally:
        engine.close()
    _print_page(page, explain)
    if trace:
        _print_trace(page)


def _print_page(page, explain: bool) -> None:
    title = f"For You · user {page.user_id} · {len(page.items)} posts"
    if page.cold_start:
        title += " · cold start (follows nobody: trending and interest sources)"
    table = Table(title=title, title_justify="left")
    for col in ("#", "post", "author", "source", "score", "top reasons"):
        table.add_column(col, justify="right" if col in ("#", "post", "author", "score") else "left")
    for it in page.items:
        table.add_row(str(it.rank), str(it.post_id), str(it.author_id), it.source, f"{it.score:.4f}",
                      _reasons(it))
    console.print(table)
    console.print("sources: " + ", ".join(f"{k} {v}" for k, v in page.sources.items()), highlight=False)
    for e in page.errors:
        console.print(f"[yellow]fell back:[/] {e}", highlight=False)
    console.print("models: " + ", ".join(f"{k}={v}" for k, v in page.models.items()), highlight=False)
    if explain and len(page.items) >= 2:
        for it in page.items[:2]:
            _print_explanation(it)


def _reasons(item) -> str:
    heads = sorted(item.predictions.items(), key=lambda kv: -abs(kv[1]))
    parts = [item.network_reason or ("in-network" if item.in_network else "out-of-network")]
    if item.liked_by:
        parts.append(f"liked by {', '.join(map(str, item.liked_by[:3]))}")
    if item.explanation:
        contrib = sorted(item.explanation["heads"].items(), key=lambda kv: -abs(kv[1]["contribution"]))[:2]
        parts += [f"{h} {c['p']:.3f}×{c['weight']:g}" for h, c in contrib]
        parts += [f"{k}×{v:g}" for k, v in item.explanation["factors"].items() if v != 1.0]
    else:
        parts.append(f"p(like) {dict(heads)['like']:.3f}")
    return "; ".join(parts)


def _print_explanation(item) -> None:
    e = item.explanation
    table = Table(title=f"why post {item.post_id} (rank {item.rank}, {e['source']})", title_justify="left")
    for col in ("head", "p", "weight", "p × weight"):
        table.add_column(col, justify="right")
    for h, c in e["heads"].items():
        table.add_row(h, f"{c['p']:.4f}", f"{c['weight']:g}", f"{c['contribution']:+.4f}")
    table.add_row("utility Σ", "", "", f"{e['utility']:+.4f}")
    table.add_row("heavy score", "", "", f"{e['heavy_score']:.4f}")
    for k, v in e["factors"].items():
        table.add_row(f"× {k}", "", "", f"{v:.3f}")
    table.add_row("final score", "", "", f"{e['score']:.4f}")
    console.print(table)
    console.print("features: " + ", ".join(f"{k} {v}" for k, v in e["features"].items()), highlight=False)
    console.print("filters passed: " + ", ".join(e["filters_passed"]), highlight=False)


def _print_trace(page) -> None:
    table = Table(title="trace", title_justify="left")
    for col in ("step", "component", "in", "out", "ms", "removed / error"):
        table.add_column(col)
    for st in page.trace["steps"]:
        note = st.get("error") or (", ".join(map(str, st.get("removed_ids", [])[:6])) if st.get("removed_ids") else "")
        table.add_row(st["kind"], (st.get("pipeline") + "/" if st.get("pipeline") else "") + st["name"],
                      str(st["n_in"]), str(st["n_out"]), f"{st['duration_ms']:.2f}", note)
    console.print(table)


# -- training and the registry ---------------------------------------------------------------------

models_app = typer.Typer(no_args_is_help=True, help="The model registry: list, show, promote, roll back.")
app.add_typer(models_app, name="models")


@app.command()
def train(
    dataset: Annotated[Path, typer.Argument(help="dataset directory (without impressions: sampled negatives)")],
    only: Annotated[str | None, typer.Option(help=f"train one model: {', '.join(TRAINABLE)}",
                                             show_default=False)] = None,
    promote: Annotated[bool | None, typer.Option(
        help="promote what was trained [default: promote, except models trained against sampled negatives]")] = None,
    tune: Annotated[int, typer.Option(help="heavy-ranker hyperparameter trials (optuna) on validation", min=0)] = 0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override (repeatable)")] = None,
) -> None:
    """Train the models on the train window (early stopping on validation), register and promote them
    (without impressions: register only, see --promote)."""
    import importlib.util

    if only is not None and only not in TRAINABLE:
        raise _bad("--only", f"unknown model {only!r}; one of {', '.join(TRAINABLE)}")
    _dataset_dir(dataset)
    if tune and importlib.util.find_spec("optuna") is None:
        raise UserError("--tune needs optuna: pip install 'foryou[tune]'")
    config = _config(set_)
    from foryou.training.pipeline import train_all

    with progress_bars() as bar:
        results = train_all(dataset, config, only=only, promote=promote, progress=bar, tune=tune)
    tuning = results.pop("tuning", None)
    if tuning:
        console.print(f"tuning: best of {len(tuning['trials'])} trials: {tuning['best']}", highlight=False)
    for name, r in results.items():
        _print_model_metrics(name, r)
    if promote is None and any("negatives" in r for r in results.values() if isinstance(r, dict)):
        console.print("[yellow]registered, not promoted[/]: without impressions (sampled negatives) the trained "
                      "models put our pages below the heuristic rankers on MovieLens, Last.fm and Higgs "
                      "(EVALUATION.md); serve them with --promote or `foryou models promote`", highlight=False)


def _print_model_metrics(name: str, r: dict) -> None:
    if "skipped" in r:
        console.print(f"[yellow]{name} skipped[/]: {r['skipped']}", highlight=False)
        return
    fit = r.get("fit", {})
    parts = [f"{k} {_fmt(len(v) if isinstance(v, list) else v)}" for k, v in fit.items()
             if k in ("epochs", "train_rows", "edges", "seconds", "examples_per_s")]
    console.print(f"[green]{name} v{r['version']}[/]: " + ", ".join(parts), highlight=False)
    test = r.get("test", {})
    heads = {h: m for h, m in test.items() if isinstance(m, dict)}
    sampled = r.get("negatives")
    if not heads:
        if test:
            console.print("  test" + (" (vs sampled negatives)" if sampled else "") + ": "
                          + ", ".join(f"{k} {_fmt(v)}" for k, v in test.items()), highlight=False)
        return
    title = f"{name}: test window" + (f", vs {sampled['per_positive']} sampled negatives per positive (no impressions)"
                                      if sampled else "")
    table = Table(title=title, title_justify="left")
    for col in ("head", "AUC", "ceiling AUC", "RCE", "PR-AUC", "ECE", "positives"):
        table.add_column(col, justify="right")
    silent = [h for h, m in heads.items() if m["positives"] == 0]
    if silent:  # a head no test row fires (e.g. repost on MovieLens) has no AUC to show
        table.caption = f"no positives in the test window: {', '.join(silent)}"
        table.caption_justify = "left"
    for head, m in heads.items():
        if head in silent:
            continue
        ceiling = m.get("ceiling_auc", float("nan"))  # only worlds with a ground truth have one
        table.add_row(head, f"{m['auc']:.4f}", "—" if np.isnan(ceiling) else f"{ceiling:.4f}", f"{m['rce']:.2f}",
                      f"{m['pr_auc']:.4f}", f"{m['ece']:.4f}", f"{m['positives']:,}")
    console.print(table)


def _registry(dataset: Path):
    from foryou.training.pipeline import registry_for

    return registry_for(_dataset_dir(dataset))


@models_app.command("list")
def models_list(dataset: Annotated[Path, typer.Argument(help="dataset directory")]) -> None:
    """Every model version with its headline metrics; * marks the promoted one, ! a damaged one."""
    versions = _registry(dataset).list()
    if not versions:
        console.print("no models yet: run [bold]foryou train DATASET[/]")
        return
    # Identifiers are never cut: "name vN" keeps its full width and the metrics theirs; created and code
    # fold in a narrow terminal; what is wrong with a damaged version is spelled out below the table.
    from rich import box

    table = Table(title=f"models in {dataset}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    table.add_column("")
    table.add_column("model", no_wrap=True)
    for col in ("AUC\nlike", "AUC\nclick", "RCE\nlike"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("created", overflow="fold")
    table.add_column("code", overflow="fold")
    damaged = []
    for v in versions:
        test = (v.metrics or {}).get("test", {})
        state = getattr(v, "status", "")  # "promoted", "not promoted", or what is wrong ("corrupt: ...")
        bad = state not in ("", "promoted", "not promoted")
        if bad:
            damaged.append(f"{v.label}: {state}")
        table.add_row("!" if bad else "*" if v.promoted else "", v.label, _metric(test, "like", "auc"),
                      _metric(test, "click", "auc"), _metric(test, "like", "rce"), v.created[:16].replace("T", " "),
                      v.code_revision)
    console.print(table)
    for line in damaged:
        console.print(f"[red]![/] {line}", highlight=False, soft_wrap=True)


def _metric(test: dict, head: str, key: str) -> str:
    value = test.get(head, {}).get(key)
    return "—" if value is None else f"{value:.4f}"


@models_app.command("show")
def models_show(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    name: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[int | None, typer.Option(help="version (default: promoted, else latest)")] = None,
) -> None:
    """One version's manifest: config, metrics, dataset fingerprint, code revision."""
    from dataclasses import asdict

    v = _registry(dataset).show(name, version)
    console.print_json(json.dumps(asdict(v), default=str))


@models_app.command("promote")
def models_promote(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    name: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[int, typer.Argument(help="version to serve")],
) -> None:
    """Serve this version from now on (engines load it on their next open)."""
    v = _registry(dataset).promote(name, version)
    console.print(f"promoted {v.label}")


@models_app.command("rollback")
def models_rollback(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    name: Annotated[str, typer.Argument(help="model name")],
) -> None:
    """Go back to the previously promoted version."""
    v = _registry(dataset).rollback(name)
    console.print(f"rolled back to {v.label}")


# -- experiments and simulation --------------------------------------------------------------------

experiments_app = typer.Typer(no_args_is_help=True, help="A/B experiments: create, list, results, stop.")
app.add_typer(experiments_app, name="experiments")


def _dataset_dir(dataset: Path) -> Path:
    """`dataset`, once it is one: "X: no such directory", "X is not a dataset (no manifest.json)" or what
    is wrong with its manifest is one `error:` line."""
    from foryou.data.dataset import read_manifest

    read_manifest(dataset)
    return dataset


@experiments_app.command("create")
def experiments_create(
    dataset: Annotated[Path, typer.Argument(help="dataset directory (experiments live in DATASET/experiments/)")],
    name: Annotated[str, typer.Argument(help="experiment name")],
    arm: Annotated[list[str], typer.Option(help="NAME or NAME:key=value;key=value (repeatable; the first is the "
                                                "control), e.g. 'ucb:timeline.exploration.strategy=ucb'")],
    weight: Annotated[list[float] | None, typer.Option(help="relative share per arm, in --arm order")] = None,
    traffic: Annotated[float, typer.Option(help="share of the layer's users in the experiment", min=0.0,
                                           max=1.0)] = 1.0,
    layer: Annotated[str, typer.Option(help="experiments in one layer never share a user")] = "default",
    salt: Annotated[str, typer.Option(help="assignment salt (default: the name)")] = "",
    primary: Annotated[str, typer.Option(help="utility | engagement_rate | negative_rate | session_depth")] = "utility",
    description: Annotated[str, typer.Option(help="free text")] = "",
) -> None:
    """Define an experiment: arms are config overrides (exploration, weights, diversity ...)."""
    from foryou.experiments import Arm, create_experiment

    weights = weight or [1.0] * len(arm)
    if len(weights) != len(arm):
        raise _bad("--weight", f"{len(weights)} --weight value(s) for {len(arm)} --arm(s)")
    _dataset_dir(dataset)
    arms = []
    for spec, w in zip(arm, weights, strict=True):
        try:
            arms.append(Arm.parse(spec, w))
        except ValidationError as exc:
            raise _bad("--arm", f"{spec!r}: {_validation_message(exc)}") from None
        except ValueError as exc:  # not key=value (parse_overrides)
            raise _bad("--arm", f"{spec!r}: {exc}") from None
    exp = create_experiment(dataset, {
        "name": name, "description": description, "salt": salt, "layer": layer, "traffic": traffic,
        "primary_metric": primary, "arms": arms})
    console.print(f"[green]created[/] experiment {exp.name} in layer {exp.layer} "
                  f"(buckets {exp.offset:.0%}–{exp.offset + exp.traffic:.0%}); arms: "
                  + ", ".join(f"{a.name} ×{a.weight:g} {json.dumps(a.overrides)}" for a in exp.arms), highlight=False)


@experiments_app.command("list")
def experiments_list(dataset: Annotated[Path, typer.Argument(help="dataset directory")]) -> None:
    """Every experiment with its layer, traffic, arms and status."""
    from foryou.experiments import list_experiments

    exps = list_experiments(_dataset_dir(dataset))
    if not exps:
        console.print("no experiments yet: [bold]foryou experiments create DATASET NAME --arm control --arm ...[/]")
        return
    table = Table(title=f"experiments in {dataset}", title_justify="left")
    for col in ("name", "status", "layer", "traffic", "primary", "arms"):
        table.add_column(col)
    for e in exps:
        table.add_row(e.name, e.status, e.layer, f"{e.offset:.0%}–{e.offset + e.traffic:.0%}", e.primary_metric,
                      "; ".join(f"{a.name} ×{a.weight:g} {json.dumps(a.overrides)}" for a in e.arms))
    console.print(table)


@experiments_app.command("stop")
def experiments_stop(dataset: Annotated[Path, typer.Argument(help="dataset directory")],
                     name: Annotated[str, typer.Argument(help="experiment name")]) -> None:
    """Stop assigning users (results stay readable)."""
    from foryou.experiments import ExperimentStore

    ExperimentStore(_dataset_dir(dataset)).set_status(name, "stopped")
    console.print(f"stopped {name}")


@experiments_app.command("results")
def experiments_results(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    name: Annotated[str, typer.Argument(help="experiment name")],
    log_path: Annotated[Path | None, typer.Option("--log", help="an experiment log (a simulation's "
                                                  "OUT/experiment_log.sqlite); default: the live log")] = None,
) -> None:
    """Per-arm metrics, Welch / z tests, 95 % intervals, lift, SRM and MDE."""
    from foryou.experiments import get_experiment_results

    _print_experiment(get_experiment_results(_dataset_dir(dataset), name, log_path))


def _print_experiment(r: dict[str, Any]) -> None:
    table = Table(title=f"experiment {r['experiment']} · {r['users']:,} users", title_justify="left")
    for col in ("arm", "users", "impressions", "utility", "engagement", "negative", "depth"):
        table.add_column(col, justify="right")
    for a in r["arms"]:
        m = a["metrics"]
        table.add_row(a["arm"], f"{a['users']:,}", f"{a['impressions']:,}",
                      *(f"{m[k]['mean']:.4g} ± {(m[k]['ci_high'] - m[k]['mean']):.2g}"
                        for k in ("utility", "engagement_rate", "negative_rate", "session_depth")))
    console.print(table)
    table = Table(title=f"vs {r['control']} (Welch; * = primary metric)", title_justify="left")
    for col in ("arm", "metric", "diff", "95% CI", "lift", "p", "MDE (rel)", ""):
        table.add_column(col, justify="right")
    for c in r["comparisons"]:
        table.add_row(c["arm"], c["metric"] + (" *" if c["primary"] else ""), f"{c['diff']:+.4g}",
                      f"[{c['ci_low']:+.3g}, {c['ci_high']:+.3g}]", f"{c['lift']:+.1%}", f"{c['p']:.3g}",
                      f"{c['mde_relative']:.1%}", "significant" if c["significant"] else "")
    console.print(table)
    srm = r["srm"]
    console.print(f"sample ratio: {srm.get('observed')} vs expected {srm.get('expected')}, p = {srm['p']:.3g}"
                  + (" [red]MISMATCH[/]" if srm["mismatch"] else " ok") + f"; decision: {r['decision']}",
                  highlight=False)


@app.command()
def simulate(
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
    from foryou.data.dataset import read_manifest
    from foryou.experiments import ExperimentStore
    from foryou.simulation import Simulation, SimulationConfig
    from foryou.simulation.report import write_json, write_report

    if not read_manifest(world).has_ground_truth:
        raise UserError(f"{world}: simulation needs a synthetic world with ground truth (`foryou world`)")
    config = _config(set_)
    exp = ExperimentStore(world).get(experiment) if experiment else None
    out = out or world / "simulations" / f"{experiment or 'baseline'}-s{seed}"
    if feedback or retrain:
        _refuse_to_replace(out / "feedback", force)
    engine = None
    if url:
        from foryou.simulation.http_backend import HttpEngine

        engine = HttpEngine(url)
    cfg = SimulationConfig(days=days, seed=seed, user_share=users, retrain=retrain, new_posts=new_posts)
    with progress_bars() as bar:
        sim = Simulation(world, cfg, experiment=exp, engine_config=config, engine=engine, out=out,
                         progress=bar)
        result = sim.run()
    report = write_report(result, out / "report.html", f"foryou simulate {world} · {days} days · "
                                                        f"{experiment or 'baseline'} · seed {seed}")
    write_json(result, out / "results.json")
    if feedback:
        console.print(f"feedback dataset → {sim.write_feedback(out / 'feedback')}")
    s = result.summary
    console.print(f"[green]simulated[/] {s['days']} days, {s['users_simulated']:,} users, {s['sessions']:,} sessions, "
                  f"{s['impressions']:,} impressions, {s['new_posts']:,} new posts in {s['seconds']:.0f} s"
                  + (f" ({s['new_posts_note']})" if s.get("new_posts_note") else ""), highlight=False)
    table = Table(title="per arm (whole run)", title_justify="left")
    columns = {"engagement": "engagement_rate", "expected utility": "expected_utility",
               "realised utility": "realised_utility", "regret/slot": "regret", "negative": "negative_rate",
               "depth": "session_depth", "creator Gini": "creator_gini", "OON share": "out_of_network_share"}
    for col in ("arm", *columns):
        table.add_column(col, justify="right")
    for arm in result.arms:
        d = result.daily[arm]
        table.add_row(arm, *(f"{float(np.mean(d[k])):.4g}" for k in columns.values()))
    console.print(table)
    for arm, r in result.regret.get("arms", {}).items():
        console.print(f"  {arm}: cumulative regret " + "; ".join(
            f"{label} {r[k]['cumulative']:.3g} [{r[k]['low']:.3g}, {r[k]['high']:.3g}]"
            for k, label in (("regret", "all slots"), ("new_post_regret", "new-post slots"))), highlight=False)
    if result.experiment:
        _print_experiment(result.experiment)
    console.print(f"report → {report}")


# -- evaluation ---------------------------------------------------------------------------------


@app.command("eval")
def eval_(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    report: Annotated[Path, typer.Option(help="directory for metrics.json and index.html")],
    baselines: Annotated[str, typer.Option(help="all, none, or a comma list of random,popularity,reverse_chron,"
                                                "als,bpr,item_knn")] = "all",
    protocol: Annotated[str, typer.Option(help="temporal (page served at the test window's start) or minirecsys "
                                               "(the reference mimic's protocol)")] = "temporal",
    users: Annotated[int | None, typer.Option(help="sample this many test users (temporal)", min=1)] = None,
    seed: Annotated[int, typer.Option(help="seed of the user sample, bootstrap and random baseline")] = 0,
    oracle: Annotated[bool, typer.Option(help="compare with the oracle (synthetic worlds)")] = True,
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override (repeatable)")] = None,
) -> None:
    """Offline evaluation: our pages vs baselines (and the oracle) on one split → JSON + HTML report."""
    from foryou.eval.baselines import BASELINES
    from foryou.eval.protocols import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise _bad("--protocol", f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    chosen = BASELINES if baselines == "all" else () if baselines == "none" else tuple(
        b.strip() for b in baselines.split(",") if b.strip())
    unknown = [b for b in chosen if b not in BASELINES]
    if unknown:
        raise _bad("--baselines", f"unknown baseline {unknown[0]!r}; one of all, none, {', '.join(BASELINES)}")
    _dataset_dir(dataset)
    config = _config(set_)
    from foryou.eval.evaluator import evaluate
    from foryou.eval.report import write_report

    with progress_bars() as bar:
        try:
            result = evaluate(dataset, protocol, chosen, config, max_users=users, seed=seed, oracle=oracle,
                              progress=bar)
        except ValueError as exc:  # the evaluator's own "too few test users/engagements" (not a bug deeper down)
            if not _raised_in(exc, "eval"):
                raise
            raise UserError(str(exc)) from None
        bar("report", 0.0)
        json_path, html_path = write_report(result, report)
        bar("report", 1.0)
    _print_eval(result)
    console.print(f"report → {html_path}  ·  metrics → {json_path}  ({result['seconds']['total']:.0f} s)")


def _print_eval(r: dict[str, Any]) -> None:
    k = 10 if 10 in r["k_values"] else r["k_values"][0]
    cols = [f"ndcg@{k}", f"recall@{r['k_values'][-1]}", f"hit_rate@{k}", "mrr"]
    table = Table(title=f"{r['dataset_name']} · {r['protocol']} · {r['users']:,} users · 95 % intervals",
                  title_justify="left")
    table.add_column("method")
    for c in cols:
        table.add_column(c, justify="right")
    if "oracle" in r:
        table.add_column("utility ÷ oracle", justify="right")
    for name, m in r["methods"].items():
        cells = [f"{m['ranking'][c]['mean']:.4f} [{m['ranking'][c]['lo']:.4f}, {m['ranking'][c]['hi']:.4f}]"
                 for c in cols]
        if "oracle" in r:
            o = r["oracle"]["methods"][name]["ratio"]
            cells.append(f"{o['mean']:.3f} [{o['lo']:.3f}, {o['hi']:.3f}]")
        table.add_row(name, *cells, style="bold" if name == "foryou" else None)
    console.print(table)
    stages = r.get("retrieval", {}).get("stages", {})
    if stages:
        console.print("  retrieval recall@K: " + ", ".join(
            f"{n} {s['recall']['mean']:.3f} (K={s['candidates_per_user']:g})" for n, s in stages.items()),
            highlight=False)
    if "oracle" in r:
        console.print("  utility ÷ oracle, references: " + ", ".join(
            f"{n} {m['ratio']['mean']:.3f}" for n, m in r["oracle"]["methods"].items() if n not in r["methods"]),
            highlight=False)
    for key, value in r["targets"].items():
        console.print(f"  {key}: {_fmt(value)}", highlight=False)


@bench_app.command("world")
def bench_world(
    preset: Annotated[str, typer.Option(help="world preset: tiny | small (the default world, ~1 min) | medium | "
                                             "large (the figures in BENCHMARKS.md; minutes and GBs)")] = "small",
    seed: Annotated[int, typer.Option(help="seed")] = 0,
    out: Annotated[Path | None, typer.Option(help="keep the world here (default: written to a scratch directory "
                                                  "under runs/ and removed)", show_default=False)] = None,
    force: Annotated[bool, typer.Option(help="replace an existing dataset at --out")] = False,
    json_out: Annotated[Path, typer.Option("--json", help="results file")] = Path("runs/bench/world.json"),
) -> None:
    """Time world generation and writing, with peak RSS."""
    from foryou.bench.offline import bench_world as run

    _check_preset(preset)
    if out is not None:
        _refuse_to_replace(out, force)
    result = run(preset, seed, out)
    _write_json(json_out, result)
    _print_summary(f"bench world {preset}", result)


@bench_app.command("import")
def bench_import(
    data: Annotated[Path, typer.Option(help="folder with the real datasets")] = Path("../shared/data"),
    json_out: Annotated[Path, typer.Option("--json", help="results file")] = Path("runs/bench/import.json"),
) -> None:
    """Time every importer on the real datasets (one process each, for honest peak RSS)."""
    from foryou.bench.offline import bench_imports

    result = bench_imports(data)
    _write_json(json_out, result)
    _print_summary("bench import", result)


@bench_app.command("timeline")
def bench_timeline(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    users: Annotated[int, typer.Option(help="how many random users to request for")] = 1000,
    seed: Annotated[int, typer.Option(help="which users")] = 0,
    json_out: Annotated[Path, typer.Option("--json", help="results file")] = Path("runs/bench/timeline.json"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="config override (repeatable)")] = None,
) -> None:
    """Request latency p50/p95/p99 (total and per step), candidates per source, posts per page."""
    from foryou.bench.offline import bench_timeline as run

    _dataset_dir(dataset)
    config = _config(set_)
    with progress_bars() as bar:
        result = run(dataset, users, seed, bar, config, set_ or [])
    _write_json(json_out, result)
    _print_summary(f"bench timeline {dataset}", {k: v for k, v in result.items() if k != "steps_ms"})


@bench_app.command("ranker")
def bench_ranker(
    dataset: Annotated[Path, typer.Argument(help="dataset directory with a promoted heavy ranker")],
    candidates: Annotated[int, typer.Option(help="candidates per request")] = 500,
    json_out: Annotated[Path, typer.Option("--json", help="results file")] = Path("runs/bench/ranker.json"),
    int8: Annotated[bool, typer.Option(help="also measure dynamic int8 quantisation (AUC and latency)")] = False,
    onnx: Annotated[bool, typer.Option(help="compare eager torch with ONNX Runtime (AUC and latency)")] = False,
) -> None:
    """Heavy-ranker feature hydration and inference time for one request's candidates, one thread."""
    import importlib.util

    from foryou.bench.offline import bench_ranker as run

    _dataset_dir(dataset)
    if onnx and importlib.util.find_spec("onnxruntime") is None:
        raise UserError("--onnx needs ONNX Runtime: pip install onnxruntime")
    result = run(dataset, candidates, compare_int8=int8, compare_onnx=onnx)
    _write_json(json_out, result)
    _print_summary(f"bench ranker {dataset}", result)


@bench_app.command("http")
def bench_http(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    workers: Annotated[int, typer.Option(help="server worker processes")] = 2,
    connections: Annotated[int, typer.Option(help="concurrent keep-alive connections")] = 16,
    seconds: Annotated[float, typer.Option(help="measured duration")] = 20.0,
    users: Annotated[int, typer.Option(help="distinct users requested (random, fixed by --seed)")] = 2000,
    warmup: Annotated[float, typer.Option(help="unmeasured seconds first (fills the cache)")] = 5.0,
    rate: Annotated[float | None, typer.Option(help="offered requests/s (paced); default: as fast as possible",
                                               show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="which users")] = 0,
    json_out: Annotated[Path, typer.Option("--json", help="results file")] = Path("runs/bench/http.json"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="server config override (repeatable)")] = None,
) -> None:
    """Timeline requests/s and latency p50/p99 over HTTP on loopback (wrk when installed)."""
    from foryou.bench.serving import bench_http as run

    _dataset_dir(dataset)
    _config(set_)
    with status(f"serving {dataset} and driving it for {warmup + seconds:.0f} s"):
        result = run(dataset, workers, connections, seconds, users, seed, warmup, overrides=set_ or [], rate=rate)
    _write_json(json_out, result)
    _print_summary(f"bench http {dataset}", {k: v for k, v in result.items() if k != "machine"})


@bench_app.command("ingest")
def bench_ingest(
    dataset: Annotated[Path, typer.Argument(help="dataset directory")],
    batch: Annotated[int, typer.Option(help="engagements per POST")] = 1000,
    clients: Annotated[int, typer.Option(help="concurrent clients posting batches")] = 2,
    seconds: Annotated[float, typer.Option(help="how long to post batches")] = 10.0,
    singles: Annotated[int, typer.Option(help="single-event writes timed one at a time afterwards")] = 500,
    json_out: Annotated[Path, typer.Option("--json", help="results file")] = Path("runs/bench/ingest.json"),
) -> None:
    """Durable ingestion over HTTP: events/s in batches, then single-event write latency."""
    from foryou.bench.serving import bench_ingest as run

    _dataset_dir(dataset)
    with status(f"serving {dataset} and posting engagements"):
        result = run(dataset, batch, clients, seconds, singles)
    _write_json(json_out, result)
    _print_summary(f"bench ingest {dataset}", {k: v for k, v in result.items() if k != "machine"})


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    """`--set key=value ...` as a nested dict; a pair without `=` is a usage error."""
    from foryou.config import parse_overrides

    try:
        return parse_overrides(pairs or [])
    except ValueError as exc:
        raise _bad("--set", str(exc)) from None


def _config(overrides: list[str] | None) -> ForYouConfig:
    """The config with `--set` overrides; an unknown key or a bad value is a usage error."""
    from foryou.config import ForYouConfig

    try:
        return ForYouConfig.model_validate(_overrides(overrides))
    except ValidationError as exc:
        raise _bad("--set", _validation_message(exc)) from None


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def _raised_in(exc: BaseException, package: str) -> bool:
    """Whether `exc` came from a `raise` in foryou/<package>/ itself (a message written for the user), not
    from deeper down (numpy, torch: a bug)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().parent == Path(__file__).resolve().parent / package


def _write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"results → {path}")


# -- entry point --------------------------------------------------------------------------------


# Errors a user can act on from modules whose classes are not (yet) ForYouError subclasses, as
# "module:Class"; matched once their module is loaded (an error of a module never imported cannot occur).
FOREIGN_USER_ERRORS = ("foryou.experiments.store:ExperimentError", "foryou.service.compact:ServerRunning")
# An OS error the user can fix (permissions, read-only or full disk) rather than a bug.
ACTIONABLE_ERRNOS = frozenset(getattr(errno, n) for n in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT")
                              if hasattr(errno, n))
# typer >= 0.22 vendors click: take its exception classes from typer's own BadParameter.
_CLICK = {c.__name__: c for c in typer.BadParameter.__mro__}
ClickException, UsageError = _CLICK["ClickException"], _CLICK["UsageError"]
_NO_ARGS = tuple(c for c in (getattr(sys.modules[UsageError.__module__], "NoArgsIsHelpError", None),) if c)


def _user_error(exc: BaseException) -> str | None:
    """The one-line message of an error the user can act on; None for anything else (a bug)."""
    if isinstance(exc, ValidationError):
        return _validation_message(exc)
    if isinstance(exc, OSError) and exc.errno in ACTIONABLE_ERRNOS:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror)
    ours = isinstance(exc, ForYouError) or any(
        isinstance(exc, getattr(sys.modules[module], name))
        for module, _, name in (spec.partition(":") for spec in FOREIGN_USER_ERRORS) if module in sys.modules)
    if not ours:
        return None
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _usage_message(exc: Exception) -> str:
    text = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    return f"{text} (see '{ctx.command_path} --help')" if ctx is not None else text


def _fail(message: str, code: int, kind: str) -> NoReturn:
    log.warning(kind, extra={"error": message, "exit_code": code, "argv": sys.argv[1:]})
    err.print(f"[red]error:[/] {message}", highlight=False)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: exactly one `error:` line for every mistake, exit 2 for a wrong command line, 1 for any
    other mistake; a bug keeps its traceback (and is logged)."""
    logs.configure()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="foryou", standalone_mode=False)
    except _NO_ARGS as exc:  # `foryou`, `foryou data`: their help, as with --help
        text = exc.format_message()  # typer's rich help has printed itself already; plain click's has not
        if text.strip():
            typer.echo(text)
        code = 0
    except UsageError as exc:
        _fail(_usage_message(exc), 2, "usage error")
    except ClickException as exc:
        _fail(" ".join(exc.format_message().split()), exc.exit_code, "user error")
    except typer.Abort:
        _fail("aborted", 1, "user error")
    except Exception as exc:
        message = _user_error(exc)
        if message is None:
            log.exception("unexpected error", extra={"argv": sys.argv[1:]})
            raise
        _fail(message, 1, "user error")
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
