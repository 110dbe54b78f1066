"""`foryou bench world|import|interactions|timeline|batch|ranker|http|ingest`: benchmarks that write their
results as JSON (`--json`) and show them as one table."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Any

import typer

from foryou.cli.params import (
    DatasetArg,
    JsonOption,
    SetOption,
    UserError,
    bad,
    check_preset,
    dataset_dir,
    load_config,
    refuse_to_replace,
)
from foryou.cli.render import console, print_summary, progress_bars, status, write_json

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that write JSON.")

# The real datasets live next to the repository, never in it (their licences forbid copies): by default
# ../shared/data beside the checkout, else wherever --data or FORYOU_DATA says.
DATA_ENV = "FORYOU_DATA"
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _report(title: str, result: dict[str, Any], json_out: Path, *, leave_out: tuple[str, ...] = ()) -> None:
    """Write the results file, then show the results (less the keys too long for a table)."""
    write_json(json_out, result)
    print_summary(title, {k: v for k, v in result.items() if k not in leave_out})


@bench_app.command("world")
def bench_world(
    preset: Annotated[str, typer.Option(help="world preset: tiny | small (the default world, ~1 min) | medium | "
                                             "large (the figures in BENCHMARKS.md; minutes and GBs)")] = "small",
    seed: Annotated[int, typer.Option(help="seed")] = 0,
    out: Annotated[Path | None, typer.Option(help="keep the world here (default: written to a scratch directory "
                                                  "under runs/ and removed)", show_default=False)] = None,
    force: Annotated[bool, typer.Option(help="replace an existing dataset at --out")] = False,
    json_out: JsonOption = Path("runs/bench/world.json"),
) -> None:
    """Time world generation and writing, with peak RSS."""
    from foryou.bench.offline import bench_world as run

    checked = check_preset(preset)
    if out is not None:
        refuse_to_replace(out, force)
    _report(f"bench world {preset}", run(checked, seed, out), json_out)


@bench_app.command("import")
def bench_import(
    data: Annotated[Path, typer.Option(envvar=DATA_ENV, show_default="../shared/data beside the repository",
                                       help="folder with the real datasets (each in a folder of its own, "
                                            "recognised by its files)")] = DEFAULT_DATA,
    json_out: JsonOption = Path("runs/bench/import.json"),
) -> None:
    """Time every importer on the real datasets (one process each, for honest peak RSS)."""
    from foryou.bench.offline import SIGNATURES, bench_imports, find_real_datasets

    where = f"pass --data or set {DATA_ENV} to the folder holding the real datasets"
    if not data.is_dir():
        raise UserError(f"{data}: no such directory; {where}")
    sources = find_real_datasets(data)
    if not sources:
        raise UserError(f"{data} holds none of the real datasets (no folder with "
                        f"{' / '.join(SIGNATURES.values())}); {where}")
    for name in SIGNATURES.keys() - sources.keys():
        console.print(f"[yellow]not found[/] under {data}: {name} (no folder with {SIGNATURES[name]})",
                      highlight=False)
    _report("bench import", bench_imports(sources), json_out)


@bench_app.command("interactions")
def bench_interactions(
    rows: Annotated[int, typer.Option(help="rows in the generated CSV", min=1)] = 10_000_000,
    users: Annotated[int, typer.Option(help="distinct users (activity skewed)", min=1)] = 100_000,
    items: Annotated[int, typer.Option(help="distinct items (popularity Zipf-like)", min=1)] = 20_000,
    times: Annotated[str, typer.Option(help="time column: iso (date-times) | unix (seconds)")] = "iso",
    seed: Annotated[int, typer.Option(help="seed of the generated file")] = 0,
    keep: Annotated[Path | None, typer.Option(help="keep the CSV and the dataset in this directory (default: "
                                                   "a temporary one, removed)", show_default=False)] = None,
    json_out: JsonOption = Path("runs/bench/interactions.json"),
) -> None:
    """Generate a CSV of ratings and time `foryou import interactions` on it (its own process: peak RSS)."""
    from foryou.bench.interactions import bench_interactions as run

    if times not in ("iso", "unix"):
        raise UserError(f"--times: {times!r} is not iso or unix")
    if keep is not None:
        refuse_to_replace(keep / "dataset", False)
    with status(f"generating {rows:,} rows and importing them"):
        result = run(rows, users, items, seed, times, keep)  # type: ignore[arg-type]
    _report(f"bench interactions {rows:,} rows", result, json_out, leave_out=("options",))


@bench_app.command("timeline")
def bench_timeline(
    dataset: DatasetArg,
    users: Annotated[int, typer.Option(help="how many random users to request for")] = 1000,
    seed: Annotated[int, typer.Option(help="which users")] = 0,
    json_out: JsonOption = Path("runs/bench/timeline.json"),
    set_: SetOption = None,
) -> None:
    """Request latency p50/p95/p99 (total and per step), candidates per source, posts per page."""
    from foryou.bench.offline import bench_timeline as run

    dataset_dir(dataset)
    config = load_config(set_)
    with progress_bars() as bar:
        result = run(dataset, users, seed, bar, config, set_ or [])
    _report(f"bench timeline {dataset}", result, json_out, leave_out=("steps_ms",))


@bench_app.command("web")
def bench_web(
    dataset: DatasetArg,
    requests: Annotated[int, typer.Option(help="requests per app and kind", min=10)] = 2000,
    json_out: JsonOption = Path("runs/bench/web.json"),
) -> None:
    """What the web app's routes add to API requests: cache-hit timelines and refused writes, with and without."""
    from foryou.bench.web import bench_web_overhead

    dataset_dir(dataset)
    with status(f"serving {dataset} through two apps, {requests:,} requests each"):
        result = bench_web_overhead(dataset, requests)
    _report(f"bench web {dataset}", result, json_out)


@bench_app.command("shards")
def bench_shards(
    posts: Annotated[int, typer.Option(help="posts in the index", min=1000)] = 1_000_000,
    shards: Annotated[int, typer.Option(help="shards (by author hash)", min=2, max=64)] = 4,
    queries: Annotated[int, typer.Option(help="single-user searches per layout", min=10)] = 200,
    k: Annotated[int, typer.Option(help="posts retrieved per search", min=1)] = 500,
    json_out: JsonOption = Path("runs/bench/shards.json"),
) -> None:
    """Scatter-gather retrieval: one index vs the same posts on N shards, in process and as Ray actors."""
    from foryou.bench.shards import bench_shards as run

    with status(f"indexing {posts:,} posts three ways and searching each {queries} times"):
        result = run(posts, shards=shards, queries=queries, k=k)
    _report(f"bench shards {posts:,} posts", result, json_out)


@bench_app.command("ddp")
def bench_ddp(
    dataset: DatasetArg,
    workers: Annotated[int, typer.Option(help="data-parallel workers (one core each)", min=2, max=64)] = 2,
    epochs: Annotated[int, typer.Option(help="epochs fitted by each layout", min=1)] = 2,
    json_out: JsonOption = Path("runs/bench/ddp.json"),
) -> None:
    """Heavy-ranker training: in process vs 1 vs N Ray Train workers (seconds per epoch, test AUC)."""
    from foryou.bench.training import bench_ddp as run

    dataset_dir(dataset)
    with status(f"training the heavy ranker three ways, {epochs} epochs each"):
        result = run(dataset, workers, epochs)
    _report(f"bench ddp {dataset}", result, json_out)


@bench_app.command("batch")
def bench_batch(
    dataset: DatasetArg,
    users: Annotated[int, typer.Option(help="how many random users get a page", min=1)] = 1000,
    json_out: JsonOption = Path("runs/bench/batch.json"),
    set_: SetOption = None,
) -> None:
    """Pages for many users at once (recommend_many) against one recommend call per user."""
    from foryou.bench.batch import bench_batch as run

    dataset_dir(dataset)
    config = load_config(set_)
    with progress_bars() as bar:
        result = run(dataset, users, config=config, progress=bar)
    _report(f"bench batch {dataset}", result, json_out,
            leave_out=tuple(k for k, v in result.items() if isinstance(v, list)))


@bench_app.command("ranker")
def bench_ranker(
    dataset: Annotated[Path, typer.Argument(help="dataset directory with a promoted heavy ranker")],
    candidates: Annotated[int, typer.Option(help="candidates per request")] = 500,
    json_out: JsonOption = Path("runs/bench/ranker.json"),
    int8: Annotated[bool, typer.Option(help="also measure dynamic int8 quantisation (AUC and latency)")] = False,
    onnx: Annotated[bool, typer.Option(help="compare eager torch with ONNX Runtime (AUC and latency)")] = False,
) -> None:
    """Heavy-ranker feature hydration and inference time for one request's candidates, one thread."""
    from foryou.bench.offline import bench_ranker as run

    dataset_dir(dataset)
    if onnx and importlib.util.find_spec("onnxruntime") is None:
        raise UserError("--onnx needs ONNX Runtime: pip install onnxruntime")
    _report(f"bench ranker {dataset}", run(dataset, candidates, compare_int8=int8, compare_onnx=onnx), json_out)


@bench_app.command("phoenix")
def bench_phoenix(
    dataset: Annotated[Path, typer.Argument(help="dataset directory with a promoted Phoenix")],
    candidates: Annotated[int, typer.Option(help="candidates per request")] = 500,
    json_out: JsonOption = Path("runs/bench/phoenix.json"),
) -> None:
    """Phoenix's input building and inference (ONNX Runtime and eager) for one request, one thread, beside
    MaskNet's where promoted; parameters and FLOPs."""
    from foryou.bench.offline import bench_phoenix as run

    dataset_dir(dataset)
    _report(f"bench phoenix {dataset}", run(dataset, candidates), json_out)


@bench_app.command("http")
def bench_http(
    dataset: DatasetArg,
    workers: Annotated[int, typer.Option(help="server worker processes")] = 2,
    connections: Annotated[int, typer.Option(help="concurrent keep-alive connections")] = 16,
    seconds: Annotated[float, typer.Option(help="measured duration")] = 20.0,
    users: Annotated[int, typer.Option(help="distinct users requested (random, fixed by --seed)")] = 2000,
    warmup: Annotated[float, typer.Option(help="unmeasured seconds first (fills the cache)")] = 5.0,
    rate: Annotated[float | None, typer.Option(help="offered requests/s (paced); default: as fast as possible",
                                               show_default=False)] = None,
    seed: Annotated[int, typer.Option(help="which users")] = 0,
    json_out: JsonOption = Path("runs/bench/http.json"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="server config override (repeatable)")] = None,
) -> None:
    """Timeline requests/s and latency p50/p99 over HTTP on loopback (wrk when installed)."""
    from foryou.bench.serving import bench_http as run

    dataset_dir(dataset)
    load_config(set_)
    with status(f"serving {dataset} and driving it for {warmup + seconds:.0f} s"):
        result = run(dataset, workers, connections, seconds, users, seed, warmup, overrides=set_ or [], rate=rate)
    _report(f"bench http {dataset}", result, json_out, leave_out=("machine",))


StateUrlOption = Annotated[str | None, typer.Option(help="the server's --state: redis://HOST:PORT (the event log in "
                                                  "Redis) [default: SQLite]", show_default=False)]


@bench_app.command("ladder")
def bench_ladder(
    dataset: DatasetArg,
    rates: Annotated[str, typer.Option(help="offered requests/s, comma-separated, one rung each")] = \
        "50,100,200,400,800",
    cache: Annotated[str, typer.Option(help="miss: every request ranks (the server's cache off); hit: a warmed set "
                                             "of users")] = "miss",
    workers: Annotated[int, typer.Option(help="server worker processes", min=1, max=64)] = 2,
    seconds: Annotated[float, typer.Option(help="measured seconds per rung", min=1)] = 10.0,
    users: Annotated[int, typer.Option(help="distinct users requested (random, fixed by --seed)", min=1)] = 2000,
    connections: Annotated[int, typer.Option(help="keep-alive connections of the generator", min=1)] = 256,
    seed: Annotated[int, typer.Option(help="users and arrival times")] = 0,
    json_out: JsonOption = Path("runs/bench/ladder.json"),
    plot: Annotated[Path, typer.Option(help="latency and throughput per rung (PNG)")] = Path("runs/bench/ladder.png"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="server config override (repeatable)")] = None,
    writes: Annotated[float, typer.Option(help="share of requests that are engagements (likes): a mixed load",
                                          min=0.0, max=1.0)] = 0.0,
    repeat: Annotated[int, typer.Option(help="run each rate this many times in a row (a soak: RSS per rung)",
                                        min=1)] = 1,
    state: StateUrlOption = None,
    replicas: Annotated[int | None, typer.Option(help="serve with Ray Serve replicas instead of workers (needs "
                                                 "--state)", min=1, show_default=False)] = None,
) -> None:
    """Open-loop load ladder over HTTP: requests arrive at each offered rate whatever the server does; achieved
    req/s, p50/p95/p99/max from arrival, shed (503) share and errors per rung, for cache misses or hits."""
    from foryou.bench.ladder import bench_ladder as run

    dataset_dir(dataset)
    load_config(set_)
    try:
        offered = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise bad("--rates", f"{rates!r} is not a comma-separated list of numbers") from None
    if not offered or min(offered) <= 0:
        raise bad("--rates", "give at least one rate, each above 0")
    if cache not in ("miss", "hit"):
        raise bad("--cache", f"{cache!r} is not miss or hit")
    with status(f"serving {dataset} and offering {len(offered)} rates for {seconds:.0f} s each"):
        result = run(dataset, offered, seconds, workers, users, cache, connections, seed, overrides=set_ or [],
                     plot=plot, writes=writes, repeat=repeat, redis=state, replicas=replicas)
    _report(f"bench ladder {dataset}", result, json_out, leave_out=("machine",))


@bench_app.command("visibility")
def bench_visibility(
    dataset: DatasetArg,
    writes: Annotated[int, typer.Option(help="likes written through one worker", min=1)] = 200,
    json_out: JsonOption = Path("runs/bench/visibility.json"),
    state: StateUrlOption = None,
) -> None:
    """Two workers: how long after a write is acknowledged by one the other's reads show it."""
    from foryou.bench.serving import bench_visibility as run

    dataset_dir(dataset)
    with status(f"serving {dataset} with 2 workers, writing through one and reading through the other"):
        result = run(dataset, writes, redis=state)
    _report(f"bench visibility {dataset}", result, json_out, leave_out=("machine",))


@bench_app.command("ingest")
def bench_ingest(
    dataset: DatasetArg,
    batch: Annotated[int, typer.Option(help="engagements per POST")] = 1000,
    clients: Annotated[int, typer.Option(help="concurrent clients posting batches")] = 2,
    seconds: Annotated[float, typer.Option(help="how long to post batches")] = 10.0,
    singles: Annotated[int, typer.Option(help="single-event writes timed one at a time afterwards")] = 500,
    json_out: JsonOption = Path("runs/bench/ingest.json"),
    state: StateUrlOption = None,
) -> None:
    """Durable ingestion over HTTP: events/s in batches, then single-event write latency."""
    from foryou.bench.serving import bench_ingest as run

    dataset_dir(dataset)
    with status(f"serving {dataset} and posting engagements"):
        result = run(dataset, batch, clients, seconds, singles, redis=state)
    _report(f"bench ingest {dataset}", result, json_out, leave_out=("machine",))
