"""The FastAPI application: routers from `foryou.service.routes`; around them, outermost first,
per-route latency metrics, the write token (`security.WriteAuth`), request limits
(`limits.RequestLimits`); one error shape (`errors`); API docs whose assets are served from the
installed package (no CDN); and the service opened once per worker process at startup.

    foryou serve runs/default --port 8000                  # the CLI
    create_app(ServeSettings(dataset=...))                  # tests, embedding
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foryou import logs
from foryou.config import ForYouConfig
from foryou.service import errors, metrics, web
from foryou.service.limits import RequestLimits
from foryou.service.ratelimit import limiter_for
from foryou.service.routes import ROUTERS
from foryou.service.security import SAFE_METHODS, WriteAuth
from foryou.service.service import Service, ServiceOptions

log = logging.getLogger("foryou.service")
SETTINGS_ENV = "FORYOU_SERVE_SETTINGS"
GIL_SWITCH_INTERVAL_S = 0.0005  # how `foryou serve --workers N` hands settings to each worker


class ServeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: Path
    config: dict = {}  # a ForYouConfig override tree (validated at startup)
    token: str | None = None
    trace_log: Path = Path("runs/logs/trace.jsonl")
    store: Path | None = None
    state: Path | None = None
    redis: str | None = None  # --state redis://…: the event log in Redis
    web: bool = True  # the web app at / (foryou.service.web); False: the API only


def create_app(settings: ServeSettings, service: Service | None = None) -> FastAPI:
    config = ForYouConfig.model_validate(settings.config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.configure()
        # Cache misses run in worker threads; with CPython's default 5 ms GIL switch interval the
        # event loop thread waits up to 5 ms for the GIL after each socket operation while a miss
        # computes (the convoy effect); 0.5 ms hands it back to the loop quickly (BENCHMARKS.md).
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        if getattr(app.state, "service", None) is None:
            app.state.service = Service(settings.dataset, config,
                                        ServiceOptions(trace_log=settings.trace_log, store=settings.store,
                                                       state=settings.state, redis=settings.redis))
        try:
            yield
        finally:
            app.state.service.close()

    limits = config.service
    app = FastAPIOffline(title="foryou", version="1", lifespan=lifespan,
                         description="X's For You timeline over HTTP: pages, durable real-time writes, metrics. "
                         + ("State-changing routes need `Authorization: Bearer <token>`." if settings.token else
                            "Writes are open: this server has no token (a loopback bind)."))
    app.state.service = service
    app.state.rate_limiter = limiter_for(limits)  # timeline reads per client (routes/reads.py); per worker
    for router in ROUTERS:
        app.include_router(router)
    if settings.web:  # the web app at / (its own routes, outside the API schema)
        app.state.token_required = settings.token is not None  # it asks for the token only then
        web.install(app)
    errors.install(app, limits.max_error_bytes)
    app.openapi = lambda: _openapi(app, bearer=settings.token is not None)  # type: ignore[method-assign]
    # add_middleware wraps: the last added runs first.
    app.add_middleware(RequestLimits, max_body_bytes=limits.max_body_bytes, max_json_depth=limits.max_json_depth)
    app.add_middleware(WriteAuth, token=settings.token)
    app.add_middleware(RouteMetrics)
    return app


def _openapi(app: FastAPI, bearer: bool) -> dict[str, Any]:
    """FastAPI's schema, plus the bearer scheme on every state-changing operation when the server
    has a token (what `WriteAuth` enforces), so /docs offers "Authorize" and clients know."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        if bearer:
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the server's --token"}}
            for operations in schema["paths"].values():
                for method, op in operations.items():
                    if method.upper() not in SAFE_METHODS:
                        op["security"] = [{"bearer": []}]
        app.openapi_schema = schema
    return app.openapi_schema


WORKER = str(os.getpid()).encode()


class RouteMetrics:
    """Pure ASGI middleware (no per-request task): latency histogram per route template and status, and the
    answering worker's process id as the `x-worker` header."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # which worker answered: clients (and the cross-worker tests and benchmarks) can tell
                message["headers"] = [*message.get("headers", ()), (b"x-worker", WORKER)]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            metrics.request(getattr(route, "path", "unmatched"), scope["method"], status).observe(
                time.perf_counter() - t0)


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes (`foryou serve --workers N`)."""
    return create_app(ServeSettings.model_validate(json.loads(os.environ[SETTINGS_ENV])))
