"""What the web app costs the API: the same requests against one service through two apps, with and without
the web app's routes, called in process at the ASGI interface (no sockets, no client library: routing and
middleware are most of what is timed), interleaved in rounds so both see the same machine load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Message

from foryou.service.app import ServeSettings, create_app
from foryou.service.service import Service, ServiceOptions


async def _call(app: ASGIApp, method: str, path: str, body: bytes = b"") -> int:
    """One request; the response's status."""
    target, _, query = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": target, "raw_path": target.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("bench", 80)}
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # no disconnect while the app answers
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def bench_web_overhead(dataset: Path, requests: int = 2000, rounds: int = 10,
                       trace_log: Path = Path("runs/logs/bench-web-trace.jsonl")) -> dict[str, Any]:
    """Median ms per API timeline request (a cache hit) and per refused write (401: the auth check walks the
    routes) with the web app's routes mounted and without; the overhead is with − without."""
    svc = Service(dataset, options=ServiceOptions(trace_log=trace_log))
    try:
        user = svc.engine.ids.users.show(int(svc.engine.state.index.user_ids[0]))
        unlimited = {"service": {"rate_limit_per_minute": 0}}  # one client asks thousands of times
        apps = {name: create_app(ServeSettings(dataset=dataset, web=web, token="bench", trace_log=trace_log,
                                               config=unlimited),
                                 service=svc) for name, web in (("with_web", True), ("without_web", False))}
        calls = {"timeline_hit": ("GET", f"/v1/users/{user}/timeline?n=10", 200),
                 "write_401": ("POST", "/v1/engagements", 401)}
        ms: dict[str, dict[str, list[float]]] = {k: {name: [] for name in apps} for k in calls}

        async def run() -> None:
            for app in apps.values():  # warm: the page cached, the middleware stacks built
                for method, path, _ in calls.values():
                    await _call(app, method, path)
            for _ in range(rounds):
                for kind, (method, path, expected) in calls.items():
                    for name, app in apps.items():
                        for _ in range(requests // rounds):
                            t0 = time.perf_counter()
                            status = await _call(app, method, path)
                            ms[kind][name].append((time.perf_counter() - t0) * 1000)
                            if status != expected:
                                raise RuntimeError(f"{method} {path}: {status}, expected {expected}")

        asyncio.run(run())
        out: dict[str, Any] = {"requests_per_app": requests, "rounds": rounds}
        for kind, arms in ms.items():
            med = {name: float(np.median(v)) for name, v in arms.items()}
            out[kind] = {f"p50_ms_{name}": round(m, 4) for name, m in med.items()} | {
                "overhead_ms": round(med["with_web"] - med["without_web"], 4)}
        return out
    finally:
        svc.close()
