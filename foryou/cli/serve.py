"""`foryou serve`: the For You timeline over HTTP, in one process or several sharing the event store."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from foryou.cli.params import (
    DatasetArg,
    SetOption,
    StateOption,
    UserError,
    bad,
    dataset_dir,
    load_config,
    set_overrides,
)
from foryou.cli.render import console, status

TRACE_LOG = Path("runs/logs/trace.jsonl")


def serve(
    dataset: DatasetArg,
    host: Annotated[str, typer.Option(help="interface to listen on (non-loopback needs --token)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 8000,
    workers: Annotated[int | None, typer.Option(help="worker processes, sharing the event store and the serving "
                                                "snapshot [default: one per available core]", min=1, max=64,
                                                show_default=False)] = None,
    token: Annotated[str | None, typer.Option(envvar="FORYOU_TOKEN", help="bearer token for writes",
                                              show_default=False)] = None,
    set_: SetOption = None,
    trace_log: Annotated[Path, typer.Option(help="JSON-lines trace log (rotated)")] = TRACE_LOG,
    store: Annotated[Path | None, typer.Option(help="event store file (default: STATE_DIR/service/events.sqlite)",
                                               show_default=False)] = None,
    state_dir: StateOption = None,
    state: Annotated[str | None, typer.Option(help="shared live state: redis://HOST:PORT keeps the event log in "
                                              "Redis (fsynced before each acknowledgement), for workers on several "
                                              "machines [default: the SQLite --store]", show_default=False)] = None,
    replicas: Annotated[int | None, typer.Option(help="serve as a Ray Serve deployment of N replicas (a local Ray "
                                                 "cluster, or RAY_ADDRESS's); needs --state redis://…", min=1,
                                                 max=256, show_default=False)] = None,
    web: Annotated[bool, typer.Option("--web/--no-web", help="the web app at / (timeline explorer, experiments, "
                                      "models, reports); --no-web serves the API only")] = True,
) -> None:
    """Serve the For You timeline over HTTP (OpenAPI docs at /docs): pages, durable real-time writes,
    /metrics. Writes are acknowledged after they are committed to the event store."""
    serve_dataset(dataset, host, port, workers, token, set_ or [], trace_log, store, state_dir, state, replicas, web)


def serve_dataset(dataset: Path, host: str = "127.0.0.1", port: int = 8000, workers: int | None = None,
                  token: str | None = None, overrides: list[str] | None = None, trace_log: Path = TRACE_LOG,
                  store: Path | None = None, state: Path | None = None, redis: str | None = None,
                  replicas: int | None = None, web: bool = True) -> None:
    """Check everything a user can get wrong (dataset, bind, config, port, event store) as one line each,
    before any worker starts; then serve until Ctrl-C. `workers`: one per core this process may run on unless
    given (a miss ranks on one core; more workers than cores only queue)."""
    from foryou.service.app import SETTINGS_ENV, ServeSettings, create_app
    from foryou.service.files import store_path
    from foryou.service.server import run
    from foryou.service.service import Service, ServiceOptions
    from foryou.service.store import check_writable

    dataset_dir(dataset)  # a missing or broken dataset is a one-line error
    if replicas is not None and redis is None:
        raise bad("--replicas", "replicas share their live state through Redis: add --state redis://HOST:PORT")
    if replicas is not None and workers is not None:
        raise bad("--replicas", "give --replicas (Ray Serve) or --workers (uvicorn), not both")
    _check_listen(host, port, token)
    config = load_config(overrides)
    _check_port_free(host, port)
    if redis is None:
        check_writable(store_path(dataset, store, state))  # a read-only store: one line here, not one per worker
    else:
        _check_redis(redis, dataset, state)
    settings = ServeSettings(dataset=dataset, config=set_overrides(overrides), token=token, trace_log=trace_log,
                             store=store, state=state, redis=redis, web=web)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    if replicas is not None:
        _serve_replicas(settings, config, replicas, host, port, url)
        return
    workers = workers or min(len(os.sched_getaffinity(0)), 64)
    if workers == 1:
        with status("opening the serving index and replaying the event store"):
            svc = Service(dataset, config, ServiceOptions(trace_log=trace_log, store=store, state=state, redis=redis))
        target: Any = create_app(settings, service=svc)
        user: Any = svc.engine.ids.users.show(int(svc.engine.user_ids[0]))  # the dataset's own id
        extra: dict[str, Any] = {}
    else:
        from foryou.timeline.engine import RecommendationEngine

        with status("building the serving snapshot the workers will share"):
            RecommendationEngine.open(dataset, config, state=state).close()
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        os.environ["FORYOU_WORKER_SUFFIX"] = "1"
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="foryou-metrics-")
        from foryou.data.ids import IdMap

        user = IdMap.load(dataset).users.show(int(np.sort(_user_ids(dataset))[0]))
        target, extra = "foryou.service.app:app_from_env", {"factory": True, "workers": workers}
    console.print(f"serving [bold]{dataset}[/] on [bold]{url}[/] ({workers} worker{'s' * (workers > 1)}); "
                  f"API docs {url}/docs; writes {'need the bearer token' if token else 'open (loopback only)'}; "
                  "Ctrl-C stops", highlight=False)
    console.print((f"web app: [bold]{url}/[/] (timeline explorer, experiments, models, reports) · " if web else "")
                  + f"try: curl '{url}/v1/users/{user}/timeline?n=5'", highlight=False, soft_wrap=True)
    run(target, host, port, config.service.header_timeout_s, **extra)


def _serve_replicas(settings: Any, config: Any, replicas: int, host: str, port: int, url: str) -> None:
    from foryou.service.replicas import serve_replicas
    from foryou.timeline.engine import RecommendationEngine

    with status("building the serving snapshot the replicas will share"):
        RecommendationEngine.open(settings.dataset, config, state=settings.state).close()
    console.print(f"serving [bold]{settings.dataset}[/] on [bold]{url}[/] as {replicas} Ray Serve "
                  f"replica{'s' * (replicas > 1)} sharing the event log in Redis; web app {url}/; API docs {url}/docs; "
                  "Ctrl-C stops",
                  highlight=False)
    serve_replicas(settings, replicas, host, port)


def _check_listen(host: str, port: int, token: str | None) -> None:
    from foryou.service.security import check_bind

    if not 1 <= port <= 65535:
        raise bad("--port", f"{port} is not a TCP port (1 to 65535)")
    check_bind(host, token)  # a non-loopback host without a token: BindRefused, one line


def _check_redis(url: str, dataset: Path, state: Path | None) -> None:
    """Redis reachable and fsyncing every write, or one line (before any worker starts)."""
    from foryou.data.state import state_dir
    from foryou.service.redis_store import RedisEventStore, redis_url

    if not redis_url(url):
        raise bad("--state", f"{url!r} is not a redis:// URL")
    RedisEventStore(url, state_dir(dataset, state).name).close()  # StoreError: the CLI prints its one line


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}; pass --port") from None


def _user_ids(dataset: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(dataset / "users.parquet", columns=["user_id"])["user_id"].to_numpy()
