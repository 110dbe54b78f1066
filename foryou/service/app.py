"""The FastAPI application: routers from `foryou.service.routes`, body limits, per-route latency
metrics, and the service opened once per worker process at startup.

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

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from foryou import logs
from foryou.config import ForYouConfig
from foryou.service import metrics
from foryou.service.routes import ROUTERS
from foryou.service.security import BodyLimit, WriteToken
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
                                        ServiceOptions(trace_log=settings.trace_log, store=settings.store))
        try:
            yield
        finally:
            app.state.service.close()

    app = FastAPI(title="foryou", version="1", lifespan=lifespan,
                  description="X's For You timeline over HTTP: pages, durable real-time writes, metrics.")
    app.state.service = service
    app.state.write_token = WriteToken(settings.token)
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        metrics.ERRORS.labels("http_5xx").inc()
        log.exception("request failed", extra={"path": request.url.path})
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_middleware(RouteMetrics)
    app.add_middleware(BodyLimit, max_bytes=config.service.max_body_bytes)
    return app


class RouteMetrics:
    """Pure ASGI middleware (no per-request task): latency histogram per route template and status."""

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
