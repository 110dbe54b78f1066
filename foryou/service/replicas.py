"""`foryou serve DATASET --replicas N --state redis://HOST:PORT`: the same FastAPI app as a Ray Serve
deployment of N replicas behind Ray Serve's HTTP proxy (Ray's own load balancing, health checks and
replacement of a replica that dies), their live state shared through the Redis event log.

Each replica builds the app on its own process (`serve.ingress` with a builder), so the app's lifespan
opens the Service there: the serving snapshot (memory-mapped, built once before the deployment starts)
and the Redis log, which every replica tails before it answers. `ray.init` starts a local Ray cluster
with this machine's cores unless `RAY_ADDRESS` names an existing one (then the replicas run wherever Ray
places them; each needs the dataset and its snapshot at the same path).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from foryou.service.app import ServeSettings, create_app

log = logging.getLogger("foryou.service")


def application(settings: ServeSettings, replicas: int, cpus_per_replica: float = 1.0) -> Any:
    """The bound Ray Serve application: the app built on each replica, with bounded queues."""
    from ray import serve

    def build_app() -> Any:  # a function: Serve calls it on each replica (a partial would be taken for the app)
        return create_app(settings)

    # Bounded queues, as in each worker (foryou.service.admission): a replica takes `max_pending` requests at
    # once and the proxy queues as many more per replica, then answers 503 at once instead of queueing for
    # seconds (measured: without the bound, past the sustainable rate every request timed out).
    pending = int(settings.config.get("service", {}).get("max_pending", 32))
    deployment = serve.deployment(name="foryou", num_replicas=replicas,
                                  ray_actor_options={"num_cpus": cpus_per_replica},
                                  max_ongoing_requests=pending, max_queued_requests=pending * replicas)
    return deployment(serve.ingress(build_app)()).bind()


def build(args: dict[str, Any]) -> Any:
    """Ray Serve application builder for a cluster's own config (`import_path: foryou.service.replicas:build`,
    e.g. deploy/kuberay-rayservice.yaml): `args` are `ServeSettings` fields plus `replicas`."""
    args = dict(args)
    replicas = int(args.pop("replicas", 2))
    return application(ServeSettings.model_validate(args), replicas)


def serve_replicas(settings: ServeSettings, replicas: int, host: str, port: int) -> None:
    """Deploy and serve until SIGINT/SIGTERM; then Serve and the local Ray cluster are shut down."""
    import ray
    from ray import serve

    cores, cluster = len(os.sched_getaffinity(0)), os.environ.get("RAY_ADDRESS")
    ray.init(address=cluster, num_cpus=None if cluster else cores,
             include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             configure_logging=False)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the CLI owns the terminal
    try:
        serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
        # Replicas share the cores: a replica ranks a miss on one thread, more than one per core only queues.
        serve.run(application(settings, replicas, min(1.0, cores / replicas)), name="foryou", route_prefix="/",
                  blocking=False)
        log.info("replicas ready", extra={"replicas": replicas, "host": host, "port": port})
        stop.wait()
    finally:
        if cluster:  # someone else's cluster: take our application down, leave Serve and Ray running
            serve.delete("foryou")
        ray.shutdown()  # a local cluster goes down whole (Serve's controller, proxy and replicas with it)
