"""Error responses, one shape everywhere: `{"detail": "<one readable line>"}`; a validation error
adds `errors` (where and what, at most `MAX_ITEMS`), and never echoes the input. A body is cut to
about `ServiceConfig.max_error_bytes`, so a 1 MB bad batch gets a small answer, not a 6 MB one.
A 405 names every method the path takes in `Allow` (Starlette names only the first route's)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match

from foryou.service import metrics
from foryou.service.admission import Overloaded

MAX_ITEMS = 20
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_PART = 120  # characters kept of one location part or message: a key can be attacker-sized
log = logging.getLogger("foryou.service")


def install(app: FastAPI, max_error_bytes: int) -> None:
    """Register the handlers on `app`."""

    def reply(status: int, detail: str, errors: list[dict[str, Any]] | None = None,
              headers: dict[str, str] | None = None) -> Response:
        body: dict[str, Any] = {"detail": _cut(detail, max_error_bytes // 2)}
        if errors is not None:
            kept, size = [], len(body["detail"])
            for e in errors:
                size += len(orjson.dumps(e))
                if size > max_error_bytes // 2:
                    break
                kept.append(e)
            body["errors"] = kept
        return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": [_cut(p, _PART) if isinstance(p, str) else p for p in e.get("loc", ())],
                   "msg": _cut(str(e.get("msg", "")), _PART), "type": str(e.get("type", ""))}
                  for e in exc.errors()[:MAX_ITEMS]]
        lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:3]]
        more = len(exc.errors()) - len(lines)
        return reply(422, "; ".join(lines) + (f" (and {more} more)" if more > 0 else ""), errors)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return reply(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> Response:
        return reply(503, str(exc), headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        metrics.ERRORS.labels("http_5xx").inc()
        log.exception("request failed", extra={"path": request.url.path})
        return reply(500, "internal error")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on this path (asked of the router itself, so included routers
    and mounts answer too)."""
    routes = request.app.router.routes
    return [m for m in _METHODS
            if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "…"
