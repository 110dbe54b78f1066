"""Prometheus metrics (`GET /metrics`). With several workers, `foryou serve` points
PROMETHEUS_MULTIPROC_DIR at a shared folder before they start and /metrics aggregates all of them."""

from __future__ import annotations

import os
from functools import lru_cache

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUEST_SECONDS = Histogram("foryou_http_request_seconds", "HTTP request latency by route",
                            ("route", "method", "status"), buckets=LATENCY)
STEP_SECONDS = Histogram("foryou_pipeline_step_seconds", "For You pipeline step latency (cache misses)",
                         ("step",), buckets=LATENCY)
CANDIDATES = Histogram("foryou_candidates", "candidates each source contributed per pipeline run", ("source",),
                       buckets=(0, 10, 25, 50, 100, 200, 300, 500, 1000, 2000))
ERRORS = Counter("foryou_errors_total", "errors by kind (source failures, 5xx, rejected writes)", ("kind",))
EVENTS = Counter("foryou_events_total", "events applied to this worker's real-time overlay", ("type",))
INGESTION_LAG = Histogram("foryou_ingestion_lag_seconds", "commit → applied to the overlay of this worker",
                          buckets=LATENCY)
SHED = Counter("foryou_shed_total", "requests answered 503 by admission control, by why (queue full, deadline)",
               ("reason",))
CACHE = Counter("foryou_cache_requests_total", "scored-candidate cache lookups", ("result",))


@lru_cache(maxsize=4096)
def step(name: str):
    return STEP_SECONDS.labels(name)


@lru_cache(maxsize=256)
def source(name: str):
    return CANDIDATES.labels(name)


@lru_cache(maxsize=1024)
def request(route: str, method: str, status: int):
    return REQUEST_SECONDS.labels(route, method, str(status))


def render() -> tuple[bytes, str]:
    """The exposition text: this process's registry, or every worker's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
