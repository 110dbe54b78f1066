"""`foryou bench ladder`: an open-loop load ladder against a real `foryou serve` process.

A closed-loop generator (each connection waits for its answer before sending the next, as wrk does)
slows down with the server and hides queueing. Here requests arrive on a seeded Poisson schedule at the
offered rate whatever the server does, over a pool of keep-alive connections (a raw asyncio HTTP/1.1
client: cheap enough that one core offers ~2,000 req/s), and each latency runs from the request's
scheduled arrival — time spent waiting for a free connection counts, as it would for a real user.

Each rung reports achieved req/s (answered 200 per second), p50/p95/p99/max of those, the share shed
(503 with Retry-After: admission control), other errors (other statuses, sockets, timeouts), for cache
misses (`service.cache_ttl_s=0`: every request ranks) or hits (a warmed set of users), and a plot. With
`writes`, that share of the requests are engagements (a like by a random user on a random post) and the
writes' own latency is reported beside; `repeat` runs each rate that many times in a row: a soak, whose
server RSS per rung shows whether memory stays flat.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from foryou.bench.serving import running_server

TIMEOUT_S = 5.0  # a request unanswered this long after its arrival is an error (a timeout)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: loadgen\r\n\r\n".encode()


def _post(path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: loadgen\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def _open_loop(host: str, port: int, reads: list[bytes], rate: float, seconds: float, connections: int,
                     seed: int, writes: list[bytes] | None = None, write_share: float = 0.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes, bool] | None] = asyncio.Queue()
    done: list[tuple[float, float, int, bool]] = []  # (scheduled, finished, status (0 = socket error), a write)

    async def connection() -> None:
        reader = writer = None
        while (item := await queue.get()) is not None:
            scheduled, request, is_write = item
            try:
                for fresh in (writer is None, True):  # a kept-alive connection the server closed: resent once
                    if fresh:
                        if writer is not None:
                            writer.close()
                        reader, writer = await asyncio.open_connection(host, port)
                    writer.write(request)  # type: ignore[union-attr]
                    left = scheduled + TIMEOUT_S - loop.time()
                    try:
                        status = await asyncio.wait_for(_read_response(reader), max(left, 0.001))  # type: ignore[arg-type]
                        break
                    except asyncio.IncompleteReadError as exc:  # uvicorn closes idle keep-alive sockets after 5 s
                        if fresh or exc.partial:
                            raise
            except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                    IndexError):
                status = 0
                if writer is not None:
                    writer.close()
                reader = writer = None
            done.append((scheduled, loop.time(), status, is_write))
        if writer is not None:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    rng = np.random.default_rng(seed)
    start = loop.time() + 0.05
    gaps = rng.exponential(1.0 / rate, int(rate * seconds * 1.5) + 10)
    arrivals = start + np.cumsum(gaps)
    arrivals = arrivals[arrivals < start + seconds]
    is_write = (rng.random(len(arrivals)) < write_share) if writes else np.zeros(len(arrivals), bool)
    picks = rng.integers(len(reads), size=len(arrivals))
    write_picks = rng.integers(len(writes) if writes else 1, size=len(arrivals))
    for at, pick, w, wpick in zip(arrivals.tolist(), picks.tolist(), is_write.tolist(), write_picks.tolist(),
                                  strict=True):
        wait = at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        queue.put_nowait((at, writes[wpick] if w and writes else reads[pick], w))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.wait(workers, timeout=TIMEOUT_S + 5)
    for w in workers:
        w.cancel()
    a = np.array(done, np.float64).reshape(-1, 4)
    status = a[:, 2].astype(int)
    ok = status == 200
    ms = (a[ok, 1] - a[ok, 0]) * 1000
    wrote = a[:, 3] > 0
    write_ms = (a[ok & wrote, 1] - a[ok & wrote, 0]) * 1000
    span = max(float(a[:, 1].max() - start) if len(a) else seconds, seconds)
    pct = {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) if len(ms) else None for q in (50, 95, 99)}
    shed = status == 503
    return {"offered_per_s": rate, "sent": len(arrivals), "answered": int(ok.sum()),
            "achieved_per_s": round(int(ok.sum()) / span, 1), **pct,
            "max_ms": round(float(ms.max()), 2) if len(ms) else None,
            "shed": int(shed.sum()), "shed_share": round(float(shed.mean()), 4) if len(a) else 0,
            "errors": int((~ok & ~shed).sum()),  # other statuses, socket errors, timeouts
            "error_statuses": {str(k): int(v) for k, v in zip(*np.unique(status[~ok & ~shed], return_counts=True),
                                                               strict=True)},  # 0: socket error or timeout
            "lost": len(arrivals) - len(a),  # never finished, not even as an error (the generator's own fault)
            "over_1s": int((ms > 1000).sum()),
            **({"writes": int(wrote.sum()), "writes_answered": int((ok & wrote).sum()),
                "write_p99_ms": round(float(np.percentile(write_ms, 99)), 2) if len(write_ms) else None}
               if write_share else {})}


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the server's workers), MB."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return round(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20, 1)
    except psutil.Error:
        return float("nan")


def bench_ladder(dataset: Path, rates: list[float], seconds: float = 10.0, workers: int = 2, users: int = 2000,
                 cache: str = "miss", connections: int = 256, seed: int = 0, n: int = 35,
                 overrides: list[str] | None = None, plot: Path | None = None, writes: float = 0.0,
                 repeat: int = 1, redis: str | None = None, replicas: int | None = None) -> dict[str, Any]:
    """One server; each offered rate in turn (ascending; `repeat` times each) for `seconds`, open loop, a
    `writes` share of them engagements (module doc)."""
    from foryou.bench.offline import machine

    ids = pq.read_table(Path(dataset) / "users.parquet", columns=["user_id"])["user_id"].to_numpy()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(users, len(ids)), replace=False)
    reads = [_get(f"/v1/users/{int(u)}/timeline?n={n}") for u in chosen]
    likes = None
    if writes > 0:
        posts = pq.read_table(Path(dataset) / "posts.parquet", columns=["post_id"])["post_id"].to_numpy()
        likes = [_post("/v1/engagements", {"user_id": str(u), "post_id": str(p), "kind": "like"})
                 for u, p in zip(rng.choice(chosen, 5000), rng.choice(posts, 5000), strict=True)]
    server_set = [*(overrides or []), "service.rate_limit_per_minute=0"]  # one client address: no rate limit
    if cache == "miss":
        server_set.append("service.cache_ttl_s=0")
    rungs = []
    with tempfile.TemporaryDirectory() as tmp, running_server(
            Path(dataset), workers=workers, overrides=server_set, trace_log=Path(tmp) / "trace.jsonl",
            store=Path(tmp) / "events.sqlite", redis=redis, replicas=replicas) as server:
        host, port = "127.0.0.1", server.port
        # warm-up, unmeasured: every user once for the hit ladder (fills the cache); else 2 s (lazy structures)
        warm_s = min(max(len(reads) / 100, 2.0), 60.0) if cache == "hit" else 2.0
        asyncio.run(_open_loop(host, port, reads, 100.0, warm_s, 8, seed + 99))
        for i, rate in enumerate(r for r in sorted(rates) for _ in range(repeat)):
            t0 = time.perf_counter()
            rung = asyncio.run(_open_loop(host, port, reads, rate, seconds, connections, seed + i, likes, writes))
            rung["server_rss_mb"] = _rss_mb(server.proc.pid)
            rung["wall_s"] = round(time.perf_counter() - t0, 1)
            rungs.append(rung)
    out = {"bench": "ladder", "dataset": str(dataset), "cache": cache, "workers": workers, "seconds": seconds,
           "replicas": replicas, "store": "redis" if redis else "sqlite",
           "write_share": writes, "repeat": repeat,
           "connections": connections, "users": len(reads), "page": n, "overrides": overrides or [],
           "rungs": rungs, "machine": machine()}
    if plot is not None:
        _plot(out, plot)
        out["plot"] = str(plot)
    return out


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rungs = result["rungs"]
    offered = [r["offered_per_s"] for r in rungs]
    fig, (lat, thr) = plt.subplots(1, 2, figsize=(11, 4))
    for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        lat.plot(offered, [r[q] if r[q] is not None else np.nan for r in rungs], marker="o", label=q[:-3])
    lat.set(xlabel="offered requests/s", ylabel="latency of answered requests (ms)", yscale="log",
            title=f"cache {result['cache']}es, " + (f"{result['replicas']} Ray Serve replicas" if result.get("replicas")
                                                    else f"{result['workers']} workers"))
    lat.legend()
    thr.plot(offered, offered, ls=":", color="grey", label="offered")
    thr.plot(offered, [r["achieved_per_s"] for r in rungs], marker="o", label="answered 200 /s")
    shed = thr.twinx()
    shed.bar(offered, [100 * r["shed_share"] for r in rungs], width=[0.15 * o for o in offered], alpha=0.3,
             color="red", label="shed (503) %")
    shed.set_ylabel("shed %")
    thr.set(xlabel="offered requests/s", ylabel="requests/s", xscale="log", yscale="log")
    lat.set_xscale("log")
    thr.legend(loc="upper left")
    shed.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
