"""`foryou bench http` and `foryou bench ingest`: drive a real `foryou serve` process on loopback.

http: wrk (when installed; a Python client otherwise) with N connections for a bounded time over
timeline requests of a fixed set of users → req/s, latency percentiles, cache hit share.
ingest: batches of engagements from concurrent clients → durable events/s; then single-event
writes one at a time → their latency percentiles (each one committed and fsynced before the reply);
then single-event writes from several clients at once (they share commits: group commit).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq

CLI = [sys.executable, "-c", "from foryou.cli.main import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`foryou serve` as a child process (its own process group, so kill() takes its workers too)."""

    def __init__(self, dataset: Path, port: int | None = None, workers: int = 1, token: str | None = None,
                 overrides: list[str] | None = None, trace_log: Path | None = None, env: dict | None = None,
                 store: Path | None = None, redis: str | None = None, replicas: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [*CLI, "serve", str(dataset), "--port", str(self.port),
               *(["--replicas", str(replicas)] if replicas else ["--workers", str(workers)])]
        for o in overrides or []:
            cmd += ["--set", o]
        if trace_log is not None:
            cmd += ["--trace-log", str(trace_log)]
        if store is not None:
            cmd += ["--store", str(store)]
        if redis is not None:
            cmd += ["--state", redis]
        full_env = {**os.environ, **(env or {})}
        if token:
            full_env["FORYOU_TOKEN"] = token
        self.log = tempfile.NamedTemporaryFile(prefix="foryou-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env,
                                     start_new_session=True)

    def wait_ready(self, timeout: float = 300.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}): {self.output()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout:.0f} s: {self.output()[-2000:]}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
        Path(self.log.name).unlink(missing_ok=True)


@contextlib.contextmanager
def running_server(dataset: Path, **kwargs: Any) -> Iterator[ServerProcess]:
    server = ServerProcess(dataset, **kwargs)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def clients_per_worker(url: str, workers: int, attempts: int = 200) -> list[Any]:
    """One keep-alive `httpx.Client` pinned to each of the server's `workers` (by the `x-worker` header of
    its first answer: the kernel hands each new connection to some worker); the caller closes them."""
    import httpx

    pinned: dict[str, httpx.Client] = {}
    for _ in range(attempts):
        if len(pinned) == workers:
            break
        c = httpx.Client(base_url=url, timeout=30)
        worker = c.get("/healthz").headers["x-worker"]
        if worker in pinned:
            c.close()
        else:
            pinned[worker] = c
    if len(pinned) < workers:
        for c in pinned.values():
            c.close()
        raise RuntimeError(f"reached {len(pinned)} of {workers} workers in {attempts} connections")
    return list(pinned.values())


def bench_visibility(dataset: Path, writes: int = 200, seed: int = 0, redis: str | None = None) -> dict[str, Any]:
    """Two workers: a like acknowledged by one, then the other's post counters polled until they show it;
    ack → visible per write (the read path catches up with the event store — or the Redis log — first)."""
    from foryou.bench.offline import machine

    users = pq.read_table(Path(dataset) / "users.parquet", columns=["user_id"])["user_id"].to_numpy()
    posts = pq.read_table(Path(dataset) / "posts.parquet", columns=["post_id"])["post_id"].to_numpy()
    rng = np.random.default_rng(seed)
    lag, polls = [], []
    with tempfile.TemporaryDirectory() as tmp, running_server(
            Path(dataset), workers=2, trace_log=Path(tmp) / "trace.jsonl", store=Path(tmp) / "events.sqlite",
            overrides=["service.rate_limit_per_minute=0"], redis=redis) as server:
        writer, reader = clients_per_worker(server.url, 2)
        try:
            for _ in range(writes):
                user, post = int(rng.choice(users)), int(rng.choice(posts))
                before = reader.get(f"/v1/posts/{post}").json()["counters"].get("click", 0)
                writer.post("/v1/engagements", json={"user_id": user, "post_id": post, "kind": "click"}
                            ).raise_for_status()
                acked = time.perf_counter()
                for k in range(1, 10_000):
                    if reader.get(f"/v1/posts/{post}").json()["counters"].get("click", 0) > before:
                        lag.append((time.perf_counter() - acked) * 1000)
                        polls.append(k)
                        break
        finally:
            writer.close()
            reader.close()
    a = np.asarray(lag)
    return {"bench": "visibility", "dataset": str(dataset), "workers": 2, "writes": writes, "seen": len(a),
            "store": "redis" if redis else "sqlite",
            **_percentiles_ms(a, "ack_to_visible_"), "ack_to_visible_max_ms": round(float(a.max()), 3),
            "reads_until_visible_max": int(max(polls)), "machine": machine()}


def _cache_counts(url: str) -> dict[str, float]:
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    out = {"hit": 0.0, "miss": 0.0}
    for m in re.finditer(r'^foryou_cache_requests_total\{result="(hit|miss)"\} ([0-9.e+]+)$', text, re.M):
        out[m.group(1)] += float(m.group(2))
    return out


WRK_SCRIPT = """
local paths = {%s}
local i = 0
math.randomseed(%d)
request = function()
  i = math.random(#paths)
  return wrk.format("GET", paths[i])
end
%s
done = function(summary, latency, requests)
  local s = string.format('{"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "errors": %%d, ',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout)
  s = s .. string.format('"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}',
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max)
  io.write("RESULT " .. s .. "\\n")
end
"""


def bench_http(dataset: Path, workers: int, connections: int, seconds: float, users: int, seed: int = 0,
               warmup_s: float = 5.0, n: int = 35, overrides: list[str] | None = None,
               rate: float | None = None) -> dict[str, Any]:
    from foryou.bench.offline import machine

    ids = pq.read_table(Path(dataset) / "users.parquet", columns=["user_id"])["user_id"].to_numpy()
    chosen = np.random.default_rng(seed).choice(ids, size=min(users, len(ids)), replace=False)
    paths = [f"/v1/users/{int(u)}/timeline?n={n}" for u in chosen]
    with tempfile.TemporaryDirectory() as tmp, running_server(
            # one load generator from one address would meet the per-client rate limit: off for the bench
            Path(dataset), workers=workers, overrides=[*(overrides or []), "service.rate_limit_per_minute=0"],
            trace_log=Path(tmp) / "trace.jsonl",
            store=Path(tmp) / "events.sqlite") as server:
        tool = "wrk" if shutil.which("wrk") else "python"
        if warmup_s > 0:
            _drive(tool, server.url, paths, connections, warmup_s, seed + 1)
        before = _cache_counts(server.url)
        result = _drive(tool, server.url, paths, connections, seconds, seed, rate)
        after = _cache_counts(server.url)
    hits, misses = after["hit"] - before["hit"], after["miss"] - before["miss"]
    return {"bench": "http", "dataset": str(dataset), "tool": tool, "workers": workers,
            "connections": connections, "target_rate": rate, "seconds": seconds, "users": len(paths), "page": n,
            "warmup_s": warmup_s, **result,
            "cache_hit_share": round(hits / max(hits + misses, 1), 3), "overrides": overrides or [],
            "machine": machine()}


def _drive(tool: str, url: str, paths: list[str], connections: int, seconds: float, seed: int,
           rate: float | None = None) -> dict[str, Any]:
    if tool == "wrk":
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            # With a target rate, each connection waits connections/rate between requests (wrk's delay
            # hook): an offered load, so latency is measured below saturation rather than at it.
            pacing = f"delay = function() return {connections * 1000.0 / rate:.3f} end" if rate else ""
            f.write(WRK_SCRIPT % (", ".join(f'"{p}"' for p in paths), seed, pacing))
        try:
            out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(int(seconds), 1)}s",
                                  "--timeout", "5s", "-s", f.name, url], capture_output=True, text=True, check=True)
        finally:
            os.unlink(f.name)
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
        r = orjson.loads(line[len("RESULT "):])
        secs = r["duration_us"] / 1e6
        return {"requests": r["requests"], "req_per_s": round(r["requests"] / secs, 1), "non_2xx": r["non_2xx"],
                "socket_errors": r["errors"], "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000,
                "p99_ms": r["p99_us"] / 1000, "max_ms": r["max_us"] / 1000}
    return _python_drive(url, paths, connections, seconds, seed, rate)


def _python_drive(url: str, paths: list[str], connections: int, seconds: float, seed: int,
                  rate: float | None = None) -> dict[str, Any]:
    """Fallback load generator (threads with keep-alive clients); slower than wrk, so it under-reports."""
    import httpx

    lat: list[float] = []
    bad = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def client(k: int) -> None:
        rng = np.random.default_rng(seed + k)
        mine = []
        with httpx.Client(base_url=url, timeout=10) as c:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                r = c.get(paths[int(rng.integers(len(paths)))])
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    bad[0] += 1
                if rate:
                    time.sleep(connections / rate)
        with lock:
            lat.extend(mine)

    secs = _run_clients(client, connections)
    a = np.asarray(lat) * 1000
    return {"requests": len(a), "req_per_s": round(len(a) / secs, 1), "non_2xx": bad[0], "socket_errors": 0,
            **_percentiles_ms(a), "max_ms": round(float(a.max()), 3)}


def _percentiles_ms(ms: np.ndarray, prefix: str = "") -> dict[str, float]:
    """p50/p90/p99 of latencies in milliseconds, as `{prefix}p50_ms` ... (wrk's percentiles)."""
    return {f"{prefix}p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 90, 99)}


def _run_clients(client: Callable[[int], None], n: int) -> float:
    """Run client(0..n-1) on n threads at once; wall seconds until the last one finishes."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def bench_ingest(dataset: Path, batch: int, clients: int, seconds: float, singles: int,
                 seed: int = 0, single_clients: int = 8, redis: str | None = None) -> dict[str, Any]:
    import httpx

    from foryou.bench.offline import machine

    rng = np.random.default_rng(seed)
    users = pq.read_table(Path(dataset) / "users.parquet", columns=["user_id"])["user_id"].to_numpy()
    posts = pq.read_table(Path(dataset) / "posts.parquet", columns=["post_id"])["post_id"].to_numpy()
    kinds = ("like", "click", "dwell", "impression", "repost", "profile_click")

    def events(k: int) -> list[dict]:
        u, p = rng.choice(users, k), rng.choice(posts, k)
        kk = rng.integers(len(kinds), size=k)
        return [{"user_id": int(a), "post_id": int(b), "kind": kinds[c]} for a, b, c in zip(u, p, kk, strict=True)]

    bodies = [orjson.dumps({"events": events(batch)}) for _ in range(32)]
    singles_bodies = [orjson.dumps(e) for e in events(singles)]
    headers = {"content-type": "application/json"}
    with tempfile.TemporaryDirectory() as tmp, running_server(
            Path(dataset), trace_log=Path(tmp) / "trace.jsonl", store=Path(tmp) / "events.sqlite",
            redis=redis) as server:
        accepted = [0] * clients
        stop = time.monotonic() + seconds

        def client(k: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                i = k
                while time.monotonic() < stop:
                    r = c.post("/v1/engagements", content=bodies[i % len(bodies)], headers=headers)
                    r.raise_for_status()
                    accepted[k] += r.json()["accepted"]
                    i += clients

        batch_s = _run_clients(client, clients)
        lat = []
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for body in singles_bodies:
                t1 = time.perf_counter()
                c.post("/v1/engagements", content=body, headers=headers).raise_for_status()
                lat.append((time.perf_counter() - t1) * 1000)
        concurrent: list[list[float]] = [[] for _ in range(single_clients)]

        def single_client(k: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as c:
                for body in singles_bodies[k::single_clients]:
                    t1 = time.perf_counter()
                    c.post("/v1/engagements", content=body, headers=headers).raise_for_status()
                    concurrent[k].append((time.perf_counter() - t1) * 1000)

        concurrent_s = _run_clients(single_client, single_clients)
    a, b = np.asarray(lat), np.concatenate([np.asarray(x) for x in concurrent])
    return {"bench": "ingest", "dataset": str(dataset), "batch": batch, "clients": clients, "seconds": seconds,
            "events": int(sum(accepted)), "events_per_s": round(sum(accepted) / batch_s, 1),
            "single_writes": len(a), **_percentiles_ms(a, "single_"),
            "concurrent_single_clients": single_clients, "concurrent_singles_per_s": round(len(b) / concurrent_s, 1),
            **_percentiles_ms(b, "concurrent_single_"),
            "durability": "Redis stream, AOF appendfsync always: fsynced by Redis before each reply" if redis else
                          "SQLite WAL, synchronous=FULL: committed and fsynced before each reply",
            "machine": machine()}
