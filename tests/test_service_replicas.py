"""`foryou serve --replicas 2 --state redis://…`: two Ray Serve replicas behind Ray's proxy, sharing the Redis
event log — a write answered by one replica is read through the other; a replica killed with -9 is replaced
by Ray Serve and no acknowledged write is lost."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest
from redis_server import RedisServer, needs_redis

from foryou.bench.serving import running_server

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'foryou[scale]')")
DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


@pytest.fixture()
def world(tiny_world_dir, tmp_path):
    path = tmp_path / "world"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns(".service"))
    return path


def _until(predicate, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (found := predicate()) is not None:
            return found
        time.sleep(0.05)
    pytest.fail(f"not within {seconds:.0f} s")


def test_the_checked_in_rayservice_manifest_builds_the_application():
    """deploy/kuberay-rayservice.yaml names `foryou.service.replicas:build` with settings it accepts."""
    import yaml

    from foryou.service.replicas import build

    manifest = yaml.safe_load((DEPLOY / "kuberay-rayservice.yaml").read_text())
    spec = yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"][0]
    assert spec["import_path"] == "foryou.service.replicas:build"
    app = build(spec["args"])  # binding needs no running cluster
    deployment = app._bound_deployment
    assert deployment.num_replicas == spec["args"]["replicas"]
    assert deployment._deployment_config.max_queued_requests > 0  # bounded: 503 past it, not minutes of queue


@needs_redis
@pytest.mark.slow
def test_two_replicas_share_writes_and_a_killed_replica_is_replaced(world, tmp_path):
    redis = RedisServer(tmp_path / "redis")
    try:
        with running_server(world, replicas=2, redis=redis.url, trace_log=tmp_path / "trace.jsonl") as server, \
                httpx.Client(base_url=server.url, timeout=30) as c:
            post = 11
            likes = c.get(f"/v1/posts/{post}").json()["counters"].get("like", 0)
            ack = c.post("/v1/engagements", json={"user_id": 6, "post_id": post, "kind": "like"})
            assert ack.status_code == 200
            writer = ack.headers["x-worker"]

            def read_by_the_other() -> httpx.Response | None:
                r = c.get(f"/v1/posts/{post}")
                return r if r.headers["x-worker"] != writer else None

            other = _until(read_by_the_other)  # Ray's proxy spreads requests: the other replica answers soon
            assert other.json()["counters"]["like"] == likes + 1  # its first read already shows the write

            os.kill(int(writer), signal.SIGKILL)  # a replica dies (its process: the x-worker header's pid)
            failed = 0

            def replaced() -> set[str] | None:
                nonlocal failed
                r = c.get("/healthz")
                failed += r.status_code != 200
                seen.add(r.headers.get("x-worker", ""))
                fresh = seen - {writer, other.headers["x-worker"], ""}
                return fresh or None

            seen: set[str] = set()
            assert _until(replaced, 120)  # Ray Serve started a new replica, and the proxy routes to it
            assert failed <= 5  # only requests caught in flight on (or routed to) the dying replica
            for _ in range(10):  # every replica, the new one included, has every acknowledged write
                r = c.get(f"/v1/posts/{post}")
                assert r.status_code == 200 and r.json()["counters"]["like"] == likes + 1
    finally:
        redis.stop()
